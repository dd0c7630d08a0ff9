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
        "one row per DNN, from the accuracy source the settings choose per DNN (analysis.score.accuracy_source: "
        "published/ or computed/<parameter set>/ under the data root). The table records each DNN's source, "
        "parameter set and file count; <table>.provenance.json beside it the digests and versions.",
    )
    p.add_argument("--dnn", action="append", metavar="NAME", help="score only this DNN (repeatable; default: all)")
    p.add_argument("--p-method", choices=("legacy", "corrected"), help="significance filter (default: from the settings)")
    p.add_argument(
        "--layer-selection", choices=("random", "exact"), help="decoding layer subsets (default: from the settings)"
    )
    p.add_argument("--n-bootstrap", type=int, metavar="N", help="bootstrap resamples for CIs (0: none)")
    p.add_argument("--seed", type=int, help="seed of layer draws and bootstrap (default: from the settings)")
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="score computed accuracies even if some files are of another parameter set or input version "
        "(recorded in the provenance file)",
    )
    p.add_argument(
        "-o", "--output", type=Path, help="CSV to write (default: <results root>/bhscores[_<p-method>].csv)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bhscore.paths import results_root
    from bhscore.score import score_table, write_score_table
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
        allow_mixed=args.allow_mixed,
    )
    default_name = "bhscores.csv" if method == settings.analysis.score.p_method else f"bhscores_{method}.csv"
    out = args.output or results_root(settings) / default_name
    meta, _ = write_score_table(table, out, settings)
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.precision", 4):
        print(table[["dnn", "decoding", "encoding", "averaged", "averaged_ci_low", "averaged_ci_high",
                     "decoding_n_kept", "encoding_n_kept", "decoding_params", "encoding_params"]]
              .to_string(index=False))  # fmt: skip
    print(f"\nwrote {out}\n  and {meta} (what the scores were computed from)")
    return 0
