"""``bhscore simulate``: write a simulated experiment (or accuracy trees) in the real formats."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "simulate",
        parents=[common],
        help="write a simulated dataset with a planted hierarchy (fMRI + features + settings.json)",
        description="Without --accuracies: a simulated experiment under ROOT (BData fMRI files, features trees of "
        "a 'Planted' hierarchical DNN and a 'Control', and ROOT/settings.json). With --accuracies: accuracy "
        "trees for every DNN of --settings under its data root.",
    )
    p.add_argument("root", nargs="?", type=Path, help="data root to create (not with --accuracies)")
    p.add_argument("--accuracies", action="store_true", help="write accuracy trees for the DNNs of --settings")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.errors import UserError
    from bhscore.settings import load_settings
    from bhscore.simulate import simulate_accuracies, simulate_dataset

    if args.accuracies:
        root = simulate_accuracies(load_settings(args.settings), seed=args.seed)
        print(f"wrote accuracy trees under {root}")
        return 0
    if args.root is None:
        raise UserError("give the data root to create, e.g. `bhscore simulate data/simulated`")
    path = simulate_dataset(args.root, seed=args.seed)
    print(f"wrote a simulated experiment under {args.root}\nsettings: {path}")
    return 0
