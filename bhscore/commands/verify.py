"""``bhscore verify``: do the computed BH scores reproduce the published ones?"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, common) -> None:
    from bhscore.verify import TOLERANCES

    p = subparsers.add_parser(
        "verify",
        parents=[common],
        help="compare the computed BH scores with the published ones (exit status 1 if any differs)",
        description="Compares the scores of the settings' DNNs with reference/published_bhscores.csv: "
        + ", ".join(f"{c} within {t:g}" for c, t in TOLERANCES.items())
        + ", ImageNet top-1 equal. Prints a per-DNN table of differences. Needs the paper's score settings "
        "(legacy filter, voxel subsample 1000).",
    )
    p.add_argument(
        "--table",
        type=Path,
        metavar="CSV",
        help="a score table computed with these settings (e.g. figures/bhscores.csv); default: compute now",
    )
    p.add_argument(
        "--published",
        type=Path,
        metavar="CSV",
        help="published table (default: reference/published_bhscores.csv)",
    )
    p.add_argument(
        "--dnn",
        action="append",
        metavar="NAME",
        help="check only this DNN (repeatable; default: all published)",
    )
    p.add_argument(
        "-o", "--output", type=Path, metavar="CSV", help="also write the per-DNN comparison table here"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.formats import atomic_write_text
    from bhscore.settings import load_settings
    from bhscore.verify import format_report, verify

    result = verify(load_settings(args.settings), table=args.table, published=args.published, dnns=args.dnn)
    print(format_report(result))
    if args.output:
        atomic_write_text(args.output, result.table.to_csv(index=False))
        print(f"wrote {args.output}")
    return 0 if result.ok else 1
