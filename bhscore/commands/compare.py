"""``bhscore compare``: is DNN A more brain-hierarchical than DNN B? (paired bootstrap, layer-order null)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "compare",
        parents=[common],
        help="compare the BH scores of two DNNs (paired bootstrap difference, CI, p) or of every pair (--all)",
        description="Difference of the decoding-, encoding-based and averaged BH score of A and B with its "
        "bootstrap CI and two-sided p-value (units resampled within layers, voxels within subjects and shared by "
        "both DNNs, fresh layer draws: docs/method.md), each subject's scores, and each DNN's layer-order null "
        "p-value. --all: every pair of the settings' DNNs with Holm-adjusted decisions, written as a CSV.",
    )
    p.add_argument("dnns", nargs="*", metavar="DNN", help="the two DNNs to compare (A B)")
    p.add_argument(
        "--all", action="store_true", help="every pair of the settings' DNNs (or of the DNNs given)"
    )
    p.add_argument(
        "--n-bootstrap", type=int, metavar="N", help="resamples (default: analysis.score.n_bootstrap)"
    )
    p.add_argument("--seed", type=int, help="seed (default: analysis.score.seed)")
    p.add_argument(
        "--p-method", choices=("legacy", "corrected"), help="significance filter (default: settings)"
    )
    p.add_argument(
        "--n-permutations", type=int, metavar="N", help="random layer orderings of the null (default: 1000)"
    )
    p.add_argument("-o", "--output", type=Path, metavar="CSV", help="write the pairwise table here")
    p.set_defaults(func=run)


def _fmt(x: float, spec: str = "+.4f") -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _p(x: float) -> str:
    return "nan" if math.isnan(x) else (f"{x:.3g}" if x >= 1e-3 else f"{x:.1e}")


def run(args: argparse.Namespace) -> int:
    from bhscore import stats
    from bhscore.score import ScoreOptions
    from bhscore.settings import load_settings

    settings = load_settings(args.settings)
    names = _dnn_names(args, settings)
    options = ScoreOptions.from_settings(settings, p_method=args.p_method, seed=args.seed)
    n_perm = args.n_permutations or stats.N_PERMUTATIONS
    tops = [stats.read_item_tops(settings, name, options) for name in names]
    if args.all:
        return _run_all(args, settings, tops, options, n_perm)
    return _run_pair(args, tops, options, n_perm)


def _dnn_names(args: argparse.Namespace, settings) -> list[str]:
    """The DNNs to compare: the two given, or with --all those given or every DNN of the settings."""
    from bhscore.errors import UserError

    if args.all:
        names = args.dnns or list(settings.dnns)
    elif len(args.dnns) == 2:
        names = args.dnns
    else:
        raise UserError("give two DNNs to compare (bhscore compare A B), or --all for every pair")
    if len(set(names)) != len(names):
        raise UserError(f"a DNN is listed twice: {names}")
    for name in names:
        settings.dnn(name)  # an unknown name fails here, listing the valid ones
    return names


def _run_all(args: argparse.Namespace, settings, tops: list, options, n_perm: int) -> int:
    """Every pair: write the pairwise table, print the ranking with letters and null p-values."""
    from bhscore import stats
    from bhscore.formats import atomic_write_text
    from bhscore.paths import results_root

    tables = stats.compute_stats(tops, options, n_boot=args.n_bootstrap, n_permutations=n_perm)
    out = args.output or results_root(settings) / "pairwise.csv"
    atomic_write_text(out, tables.pairwise.to_csv(index=False))
    st = tables.dnn_stats.sort_values("averaged", ascending=False)
    n_dnns = len(tops)
    n_pairs = n_dnns * (n_dnns - 1) // 2
    avg = tables.pairwise[tables.pairwise.component == "averaged"]
    n_diff = int(avg.significant.sum()) // 2
    print(
        f"{n_dnns} DNNs, {n_pairs} pairs, {int(st.n_boot.iloc[0])} paired resamples ({options.p_method} filter)"
    )
    print(f"{'DNN':<24} {'averaged':>9}  letters  null p")
    for _, r in st.iterrows():
        print(f"{r.dnn:<24} {r.averaged:9.4f}  {r.averaged_letters:<7}  {_p(r.averaged_null_p)}")
    print(
        f"{n_diff} of {n_pairs} pairs differ in the averaged score (Holm, alpha {stats.ALPHA}); wrote {out}"
    )
    return 0


def _run_pair(args: argparse.Namespace, tops: list, options, n_perm: int) -> int:
    """Two DNNs: print their difference per component, each subject's score and each DNN's null p-value."""
    from bhscore import stats
    from bhscore.formats import atomic_write_text

    boot = stats.bootstrap_scores(tops, options, n_boot=args.n_bootstrap)
    pairs = stats.pairwise_table(boot, options.ci_level)
    a, b = boot.dnns
    rows = pairs[(pairs.dnn_a == a) & (pairs.dnn_b == b)].set_index("component")
    level = int(round(100 * options.ci_level))
    print(
        f"{a} vs {b}: {boot.n_boot} paired resamples ({options.p_method} filter; units within layers, voxels "
        f"within subjects{' shared by both' if rows['paired'].all() else ' (NOT paired: voxel counts differ)'}, "
        "fresh layer draws)"
    )
    w = max(9, len(a), len(b))
    print(f"{'component':<10} {a:>{w}} {b:>{w}} {'A - B':>9}  {f'{level}% CI':<19} {'p':>8}")
    for c in stats.COMPONENTS:
        r = rows.loc[c]
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        print(
            f"{c:<10} {r.score_a:{w}.4f} {r.score_b:{w}.4f} {_fmt(r['diff']):>9}  {ci:<19} {_p(r.p_value):>8}"
        )
    print(
        "\neach subject alone (averaged score), and the layer-order null (is the score above a random layer order?):"
    )
    for t in tops:
        per = stats.subject_scores(t, options)["averaged"]
        null = stats.layer_order_null(t, options, n_perm)
        subj = ", ".join(f"{s} {v:.4f}" for s, v in zip(t.subjects, per, strict=True))
        print(
            f"  {t.dnn}: {subj}; null p {_p(null.p_value['averaged'])} ({null.method}, {null.n_orderings} orderings)"
        )
    if args.output:
        atomic_write_text(args.output, pairs.to_csv(index=False))
        print(f"wrote {args.output}")
    return 0
