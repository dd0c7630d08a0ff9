"""``bhscore score``: the score table from the accuracy trees."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "score",
        parents=[common],
        help="compute BH scores from the accuracy trees and write the table (CSV)",
        description="Decoding-, encoding-based and averaged BH scores, bootstrap CIs and kept-unit counts, "
        "one row per DNN, from decoding_accuracy/ and encoding_accuracy/ under the data root.",
    )
    p.add_argument("--dnn", action="append", metavar="NAME", help="score only this DNN (repeatable; default: all)")
    p.add_argument("--p-method", choices=("legacy", "corrected"), help="significance filter (default: from the settings)")
    p.add_argument(
        "--layer-selection", choices=("random", "exact"), help="decoding layer subsets (default: from the settings)"
    )
    p.add_argument("--n-bootstrap", type=int, metavar="N", help="bootstrap resamples for CIs (0: none)")
    p.add_argument("--seed", type=int, help="seed of layer draws and bootstrap (default: from the settings)")
    p.add_argument(
        "-o", "--output", type=Path, help="CSV to write (default: <results root>/bhscores[_<p-method>].csv)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bhscore.formats import atomic_path
    from bhscore.paths import results_root
    from bhscore.score import score_table
    from bhscore.settings import load_settings

    settings = load_settings(args.settings)
    method = args.p_method or settings.analysis.score.p_method
    table = score_table(
        settings,
        dnns=args.dnn,
        p_method=method,
        layer_selection=args.layer_selection,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
    )
    default_name = "bhscores.csv" if method == settings.analysis.score.p_method else f"bhscores_{method}.csv"
    out = args.output or results_root(settings) / default_name
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.precision", 4):
        print(table[["dnn", "decoding", "encoding", "averaged", "averaged_ci_low", "averaged_ci_high",
                     "decoding_n_kept", "encoding_n_kept"]].to_string(index=False))  # fmt: skip
    print(f"\nwrote {out}")
    return 0
