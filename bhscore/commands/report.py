"""``bhscore report``: the self-contained report page of a figures directory (figures/index.html)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "report",
        parents=[common],
        help="write the report page <figures>/index.html (tables, pairwise matrix, figures, verify, provenance)",
        description="One self-contained HTML page (no server, no network) from what `make figures` wrote: the "
        "sortable score table with CIs, per-subject scores and null p-values, the pairwise comparison matrix, "
        "every figure, the comparison with the published scores and the provenance of the accuracies.",
    )
    p.add_argument(
        "--figures",
        type=Path,
        metavar="DIR",
        help="figures directory (default: $BHSCORE_FIGURES or figures/)",
    )
    p.add_argument(
        "-o", "--output", type=Path, metavar="HTML", help="the page (default: <figures>/index.html)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.paths import figures_root
    from bhscore.report import build_report
    from bhscore.settings import default_settings_path

    settings = Path(args.settings) if args.settings else default_settings_path()
    path = build_report(args.figures or figures_root(), settings_path=settings, out=args.output)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bhscore.commands.report`` (make's recipe) without loading every other subcommand."""
    from bhscore.cli import dispatch

    parser = argparse.ArgumentParser(prog="bhscore")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", default=None, metavar="PATH", help="settings file")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True), common)
    return dispatch(parser, ["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
