"""``bhscore figure-tables`` and ``bhscore figure``: the figures' tables and the notebooks that plot them."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

#: Exit status of ``figure-tables --check`` when only published accuracy files are missing (make then
#: downloads them; downloads write only into published/, never over computed results).
EXIT_MISSING = 3


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "figure-tables",
        parents=[common],
        help="compute the score table and every figure's table (figures/bhscores.csv, figures/tables/)",
        description="Reads each DNN's accuracy trees once and writes <out>/bhscores.csv (the score table with "
        "the settings' filter) and the tidy tables of every figure under <out>/tables/.",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="figures directory (default: $BHSCORE_FIGURES or figures/)"
    )
    p.add_argument("--dnn", action="append", metavar="NAME", help="only this DNN (repeatable; default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--check",
        action="store_true",
        help=f"only check that every accuracy file exists (exit status {EXIT_MISSING} when only published files "
        "are missing, 2 when computed ones are, with a message)",
    )
    what.add_argument(
        "--list-inputs",
        action="store_true",
        help="only print the accuracy files that exist, one per line (make's prerequisites of the table)",
    )
    p.set_defaults(func=run_tables)

    f = subparsers.add_parser(
        "figure",
        parents=[common],
        help="build figures: run their notebooks (analysis/<name>.ipynb) with papermill",
        description="Runs the notebook of each named figure (default: all) with papermill; each writes "
        "<out>/<name>.pdf and .png, the executed notebook goes to <out>/notebooks/. The tables are computed "
        "first if <out>/bhscores.csv is absent. `make figures` does the same incrementally.",
    )
    f.add_argument("names", nargs="*", metavar="NAME", help="figures to build (default: all; see --list)")
    f.add_argument("--list", action="store_true", help="list the figures and what each shows")
    f.add_argument(
        "--strip-outputs",
        action="store_true",
        help="remove outputs from the notebooks (analysis/*.ipynb) in place, as they are committed; build nothing",
    )
    f.add_argument(
        "--out", type=Path, metavar="DIR", help="figures directory (default: $BHSCORE_FIGURES or figures/)"
    )
    f.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="override the settings' data root (read only when the tables must be computed first; "
        "$BHSCORE_DATA, when set, still wins as everywhere)",
    )
    f.add_argument(
        "--notebook-dir", type=Path, metavar="DIR", help="where the notebooks are (default: analysis/)"
    )
    f.add_argument("--timeout", type=float, metavar="S", help="per-cell timeout in seconds (default: none)")
    f.set_defaults(func=run_figures)


def run_tables(args: argparse.Namespace) -> int:
    from bhscore import figures
    from bhscore.paths import figures_root
    from bhscore.settings import load_settings

    settings = load_settings(args.settings)
    if args.list_inputs:
        print("\n".join(str(p) for p in figures.accuracy_files(settings, args.dnn) if p.is_file()))
        return 0
    missing = figures.missing_accuracies(settings, args.dnn)
    if args.check:
        if any(missing.values()):
            print(figures.describe_missing(missing, settings), file=sys.stderr)
            # only published files can be fetched; missing computed ones need decode/encode
            return 2 if missing["computed"] else EXIT_MISSING
        return 0
    if any(missing.values()):
        from bhscore.errors import UserError

        raise UserError(figures.describe_missing(missing, settings))
    out = args.out or figures_root()
    t0 = time.perf_counter()
    tables = figures.compute_tables(settings, args.dnn, progress=not args.no_progress)
    written = figures.write_tables(tables, out)
    print(
        f"wrote {len(written)} tables for {len(tables.scores)} DNN(s) under {out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def run_figures(args: argparse.Namespace) -> int:
    from bhscore import figures
    from bhscore.errors import UserError
    from bhscore.paths import figures_root
    from bhscore.settings import default_settings_path, load_settings

    if not args.verbose:
        logging.getLogger("papermill").setLevel(logging.WARNING)  # its INFO lines repeat what we print
    names = figures.figure_names(args.notebook_dir)
    if args.list:
        for name in names:
            print(f"{name:<28} {figures.FIGURES.get(name, '(no description in bhscore.figures.FIGURES)')}")
        return 0
    if args.strip_outputs:
        for path in (figures.notebook_path(name, args.notebook_dir) for name in args.names or names):
            if figures.strip_outputs(path):
                print(f"stripped {path}")
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        raise UserError(f"unknown figure(s) {unknown}; figures: {', '.join(names)}")
    settings_path = Path(args.settings) if args.settings else default_settings_path()
    settings = load_settings(settings_path, data_root=args.data_root)  # fails early on a bad file
    out = args.out or figures_root()
    if not figures.tables_complete(out):  # the notebooks only read the tables: compute them first
        figures.write_tables(figures.compute_tables(settings), out)
    for name in args.names or names:
        t0 = time.perf_counter()
        nb = figures.run_notebook(name, settings_path, out, notebook_dir=args.notebook_dir, timeout=args.timeout)
        print(f"{name}: {out / name}.pdf, .png ({time.perf_counter() - t0:.1f} s; notebook {nb})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bhscore.commands.figures``: these two subcommands without loading the others' modules.

    ``make`` lists the table's prerequisites with it on every ``make figures``, where ``bhscore``'s start-up
    (every subcommand's imports) would cost seconds.
    """
    parser = argparse.ArgumentParser(prog="bhscore")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", default=None, metavar="PATH", help="settings file")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True), common)
    return _run(parser, argv)


def _run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    from bhscore.cli import dispatch

    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
