"""``bhscore demo``: the whole pipeline on a simulated experiment (no download)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "demo",
        parents=[common],
        help="run the whole pipeline on a simulated experiment (stimuli, features, brain, decode, encode, figures)",
        description="Procedural stimuli -> features of three small CNNs and a control (random weights) -> a "
        "simulated brain driven by AlexNet -> decoding and encoding -> BH scores -> every figure: the commands "
        "of `make demo`, run one after the other. Steps skip what exists, so an interrupted demo resumes. "
        "--settings is not used: the demo writes its own.",
    )
    p.add_argument("--root", type=Path, default=None, help="demo data root (default: <repository>/data/demo)")
    p.add_argument("--figures", type=Path, default=None, help="figures directory (default: <figures root>/demo)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (scores only)")
    p.add_argument("--quick", action="store_true", help="a smaller experiment (about a third of the time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--step",
        choices=("all", "prepare", "summary"),
        default="all",
        help="'prepare': stimuli, features and fMRI only; 'summary': print the summary of a finished demo "
        "(what `make demo` uses around its decode/encode/figures rules)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore import demo
    from bhscore.paths import figures_root
    from bhscore.settings import REPO_ROOT

    root = args.root or REPO_ROOT / "data" / "demo"
    figures = None if args.no_figures else (args.figures or figures_root() / "demo")
    size = "quick" if args.quick else "full"
    if args.step == "prepare":
        print(demo.prepare(root, demo.SIZES[size], seed=args.seed, progress=not args.no_progress))
        return 0
    if args.step == "summary":
        print(demo.summary(Path(root) / "settings.json", figures))
        return 0
    return _run_pipeline(demo.pipeline(root, figures, args.quick, args.seed, not args.no_progress), args)


def _run_pipeline(commands: list[list[str]], args: argparse.Namespace) -> int:
    """Run each ``bhscore`` command line in this process, in order; stop at the first that fails."""
    from bhscore.cli import main
    from bhscore.demo import StepLog

    log = StepLog()
    global_options = [option for option in ("verbose", "debug") if getattr(args, option, False)]
    for argv in commands:
        log("bhscore " + " ".join(argv))
        status = main([*(f"--{option}" for option in global_options), *argv])
        if status:
            return status
    return 0
