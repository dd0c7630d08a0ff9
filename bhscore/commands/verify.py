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
    p.add_argument(
        "--accuracies",
        action="store_true",
        help="instead: compare the computed accuracy files (current parameter set) with the published ones, file "
        "by file (tolerances: settings analysis.verify); exit 1 outside them",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="--accuracies: write accuracy_{files,summary,scores}.csv and verify_accuracies.{png,pdf} here",
    )
    p.add_argument(
        "--write-reference",
        action="store_true",
        help="--accuracies: first compute the published tree the original scripts' way (bdpy ModelTraining + "
        "fastl2lir) from this data root's fMRI and features: for simulated data and the demo only",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.atomic import atomic_write_text
    from bhscore.settings import load_settings
    from bhscore.verify import format_report, verify

    if args.accuracies:
        return _run_accuracies(args)
    result = verify(load_settings(args.settings), table=args.table, published=args.published, dnns=args.dnn)
    print(format_report(result))
    if args.output:
        atomic_write_text(args.output, result.table.to_csv(index=False))
        print(f"wrote {args.output}")
    return 0 if result.ok else 1


def _run_accuracies(args: argparse.Namespace) -> int:
    from bhscore.errors import UserError
    from bhscore.paths import KINDS, data_root
    from bhscore.settings import load_settings
    from bhscore.verify_accuracies import format_accuracy_report, run, write_reference_tree

    settings = load_settings(args.settings)
    if args.write_reference:
        downloaded = [k for k in KINDS if (data_root(settings) / "downloads" / f"{k}_accuracy.done.json").exists()]
        if downloaded:
            raise UserError(
                f"--write-reference refused: {data_root(settings)} holds the downloaded published "
                f"{' and '.join(downloaded)} accuracies, which it would overwrite (it is for simulated data only)"
            )
        root = write_reference_tree(settings, dnns=args.dnn)
        print(f"wrote the reference (original scripts') accuracies under {root}")
    result, paths = run(settings, dnns=args.dnn, out_dir=args.out)
    print(format_accuracy_report(result))
    for path in paths:
        print(f"wrote {path}")
    return 0 if result.ok else 1
