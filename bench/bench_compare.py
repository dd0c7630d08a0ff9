"""Benchmark: every pairwise comparison of the paper's 29 DNNs (406 pairs x 1000 resamples) and their nulls.

Paper-size simulated item tops (:func:`bhscore.stats.simulate_tops`): the 29 DNNs of settings.json with their
layer counts (705 layers), 1000 units per layer decoded from each of 3 subjects, 1000 voxels per (subject,
ROI) after the paper's subsample, hierarchy strengths from 1 to 0. Times, each stage once per repetition:

- ``bootstrap``: :func:`bhscore.stats.bootstrap_scores`, all DNNs at once (units per layer, voxels per
  (subject, ROI) shared by the DNNs, fresh layer draws per replicate);
- ``pairs``: :func:`bhscore.stats.pairwise_table` + compact letters (406 pairs x 3 components, Holm);
- ``null``: :func:`bhscore.stats.layer_order_null` of every DNN (exact for <= 7 layers, else 1000 orderings).

``--calibrate``: the calibration of docs/method.md instead: the paired test's false-positive rate and power
on simulated pairs (:func:`bhscore.stats.calibrate_pairs`, paper-size: 1000 units, 1000 voxels, 8 layers) and
the uniformity of the null's p-values for DNNs without hierarchy (:func:`bhscore.stats.calibrate_null`);
prints the rates and writes ``--figure`` (p-value QQ plots and power).

Usage::

    python bench/bench_compare.py [--repeats 3] [--n-boot 1000] [--n-permutations 1000]
    python bench/bench_compare.py --calibrate [--pairs 400] [--power-pairs 200] [--figure docs/compare_calibration.png]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from bhscore import stats
from bhscore.score import ScoreOptions
from bhscore.settings import load_settings


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--n-permutations", type=int, default=stats.N_PERMUTATIONS)
    p.add_argument("--n-units", type=int, default=1000)
    p.add_argument("--n-voxels", type=int, default=1000)
    p.add_argument("--calibrate", action="store_true", help="the calibration study instead of the timing")
    p.add_argument("--pairs", type=int, default=400, help="simulated pairs without a difference")
    p.add_argument("--power-pairs", type=int, default=200, help="simulated pairs per planted difference")
    p.add_argument(
        "--deltas", type=float, nargs="+", default=[0.02, 0.04], help="planted strength differences"
    )
    p.add_argument(
        "--null-dnns", type=int, default=400, help="simulated DNNs without hierarchy per layer count"
    )
    p.add_argument("--figure", type=Path, help="write the calibration figure here (PNG)")
    args = p.parse_args(argv)
    if args.calibrate:
        return calibrate(args)

    settings = load_settings()
    names = list(settings.dnns)
    layers = [len(settings.dnns[n].layers) for n in names]
    t0 = time.perf_counter()
    tops = stats.simulate_tops(
        np.linspace(1.0, 0.0, len(names)),
        layers,
        rng=0,
        n_units=args.n_units,
        n_voxels=args.n_voxels,
        names=names,
    )
    print(
        f"simulated {len(names)} DNNs, {sum(layers)} layers, {args.n_units} units/layer x 3 subjects, "
        f"{args.n_voxels} voxels/(subject, ROI) in {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}"
    )
    options = ScoreOptions.from_settings(settings, n_bootstrap=args.n_boot)
    times: dict[str, list[float]] = {"bootstrap": [], "pairs": [], "null": []}
    for rep in range(args.repeats):
        load_before = _load()
        t = time.perf_counter()
        boot = stats.bootstrap_scores(tops, options)
        times["bootstrap"].append(time.perf_counter() - t)
        t = time.perf_counter()
        pairs = stats.pairwise_table(boot, options.ci_level)
        stats.letters_by_component(pairs, boot.dnns, boot.point)
        times["pairs"].append(time.perf_counter() - t)
        t = time.perf_counter()
        nulls = [stats.layer_order_null(x, options, args.n_permutations) for x in tops]
        times["null"].append(time.perf_counter() - t)
        print(
            f"repeat {rep + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            + f" (load average before: {load_before}; after: {_load()})"
        )
    n_pairs = len(names) * (len(names) - 1) // 2
    avg = pairs[pairs.component == "averaged"]
    half = avg[avg.dnn_a < avg.dnn_b]
    print(
        f"medians: bootstrap {statistics.median(times['bootstrap']):.2f} s, pairs {statistics.median(times['pairs']):.2f} s, "
        f"null {statistics.median(times['null']):.2f} s; {n_pairs} pairs x {boot.n_boot} resamples; "
        f"{int(half.significant.sum())} of {len(half)} averaged-score pairs differ (Holm 0.05); "
        f"{sum(n.method == 'exact' for n in nulls)} exact nulls"
    )
    return 0


def calibrate(args) -> int:
    """False-positive rate and power of the paired test, uniformity of the null; prints and plots them."""
    from scipy import stats as sps

    sim = {"n_units": args.n_units, "n_voxels": args.n_voxels}
    options = ScoreOptions()
    print(f"load average: {_load()}; {os.cpu_count()} CPUs")
    t = time.perf_counter()
    runs = {0.0: stats.calibrate_pairs(0.0, args.pairs, n_boot=args.n_boot, seed=1, options=options, **sim)}
    for i, delta in enumerate(args.deltas):
        runs[delta] = stats.calibrate_pairs(
            delta, args.power_pairs, n_boot=args.n_boot, seed=2 + i, options=options, **sim
        )
    print(f"pairs: {time.perf_counter() - t:.0f} s (load average {_load()})")
    for delta, df in runs.items():
        for c, g in df.groupby("component", sort=False):
            se = (g.ci_high - g.ci_low).mean() / (2 * sps.norm.ppf(0.975))
            rate = (g.p_value < 0.05).mean()
            lo, hi = sps.binomtest(int((g.p_value < 0.05).sum()), len(g)).proportion_ci(0.95)
            print(
                f"strength difference {delta:.2f}, {c:<8}: {len(g)} pairs, mean diff {g['diff'].mean():+.4f}, "
                f"sd {g['diff'].std(ddof=1):.4f}, mean bootstrap se {se:.4f}, "
                f"{'false-positive rate' if delta == 0 else 'power'} {rate:.3f} [{lo:.3f}, {hi:.3f}]"
            )
    t = time.perf_counter()
    nulls = {
        n_layers: stats.calibrate_null(args.null_dnns, n_layers, args.n_permutations, seed=n_layers, **sim)
        for n_layers in (6, 8)
    }
    print(f"nulls: {time.perf_counter() - t:.0f} s (load average {_load()})")
    for n_layers, df in nulls.items():
        for c, g in df.groupby("component", sort=False):
            ks = sps.kstest(g.p_value, "uniform")
            print(
                f"null, {n_layers} layers ({g.method.iloc[0]}), {c:<8}: {len(g)} DNNs, P(p <= 0.05) "
                f"{(g.p_value <= 0.05).mean():.3f}, P(p <= 0.1) {(g.p_value <= 0.1).mean():.3f}, "
                f"mean p {g.p_value.mean():.3f}, KS D {ks.statistic:.3f} (p {ks.pvalue:.2g})"
            )
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
        for ax, (title, dfs) in zip(
            axes[:2],
            [("paired test, no difference", {"": runs[0.0]}), ("layer-order null, no hierarchy", nulls)],
            strict=True,
        ):
            for key, df in dfs.items():
                for k, (c, g) in enumerate(df.groupby("component", sort=False)):
                    p = np.sort(g.p_value.to_numpy())
                    label = f"{c}" + (f", {key} layers" if key else "")
                    ax.plot((np.arange(len(p)) + 0.5) / len(p), p, lw=1, ls="-" if key in ("", 8) else "--",
                            color=f"C{k}", label=label)  # fmt: skip
            ax.plot([0, 1], [0, 1], color="0.5", lw=0.6)
            ax.set(xlabel="uniform quantile", ylabel="p-value", title=title, xlim=(0, 1), ylim=(0, 1))
            ax.legend(fontsize=7, frameon=False)
        ax = axes[2]
        deltas = sorted(runs)
        for k, c in enumerate(stats.COMPONENTS):
            diff = [runs[d][runs[d].component == c]["diff"].mean() for d in deltas]
            power = [(runs[d][runs[d].component == c].p_value < 0.05).mean() for d in deltas]
            ax.plot(diff, power, "o-", color=f"C{k}", label=c)
        ax.axhline(0.05, color="0.5", lw=0.6, ls=":")
        ax.set(xlabel="true score difference (mean over pairs)", ylabel="rejection rate (p < 0.05)",
               title="paired test: power", ylim=(0, 1.02))  # fmt: skip
        ax.legend(fontsize=7, frameon=False)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=110)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
