"""Benchmark: bhscore.ridge (batched FastL2LiR) against the reference package fastl2lir 0.11.

Default: one decoding-sized fit (6000 samples x 2000 voxels -> 1000 units, n_feat 500, alpha 100), both
solvers on the same seeded inputs in one run, interleaved and repeated; prints the times, the ratio, the
maximum differences (selection, W, b) and the peak memory of each call (resident set size above the
baseline, sampled every few milliseconds).

    python bench/bench_ridge.py                      # float32 and float64, CPU
    python bench/bench_ridge.py --device cuda         # ours on the GPU (fastl2lir stays on the CPU)
    python bench/bench_ridge.py --sweep               # paper-scale sweep of ROI sizes, extrapolated total
    python bench/bench_ridge.py --wide                # 6000 x 300k float32 memory-mapped inputs -> 2000 outputs

Targets on a 2-core CPU: >= 2.5x fastl2lir in float32, >= 1.7x in float64; on a GPU >= 100x and the paper's
10,575 decoding fits extrapolated to under 30 minutes. Results and the machine: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

N_PAPER_FITS = 10_575  # 705 layers x 3 subjects x 5 ROIs


# -------------------------------------------------------------------------------------------------
# measuring
# -------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak resident memory (total and anonymous) above the baseline while the block runs."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_rss = self.peak_anon = self.peak_file = 0

    def _update(self) -> None:
        self.peak_rss = max(self.peak_rss, _status_kb("VmRSS") - self.base_rss)
        self.peak_anon = max(self.peak_anon, _status_kb("RssAnon") - self.base_anon)
        self.peak_file = max(self.peak_file, _status_kb("RssFile") - self.base_file)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._update()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.base_rss, self.base_anon = _status_kb("VmRSS"), _status_kb("RssAnon")
        self.base_file = _status_kb("RssFile")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._update()

    @property
    def mib(self) -> float:
        return self.peak_rss / 1024

    @property
    def anon_mib(self) -> float:
        return self.peak_anon / 1024

    @property
    def file_mib(self) -> float:
        return self.peak_file / 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _timed(fn, device: str = "cpu"):
    with PeakMemory() as mem:
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        dt = time.perf_counter() - t0
    return out, dt, mem


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_data(n: int, m: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs (n, m) and outputs (n, q): outputs depend on a few hundred inputs, plus noise; z-scored
    like the decoding pipeline's."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m))
    informative = min(m, 300)
    Y = X[:, :informative] @ rng.standard_normal((informative, q)) * (0.5 / np.sqrt(informative))
    Y += rng.standard_normal((n, q))
    X = (X - X.mean(0)) / X.std(0, ddof=1)
    Y = (Y - Y.mean(0)) / Y.std(0, ddof=1)
    return X, Y


def _selection_from_W(W: np.ndarray) -> list[frozenset]:
    return [frozenset(np.flatnonzero(W[:, j])) for j in range(W.shape[1])]


# -------------------------------------------------------------------------------------------------
# benchmarks
# -------------------------------------------------------------------------------------------------


def compare(args, dtype: str) -> dict:
    from bhscore.ridge import fit, fit_reference

    X, Y = make_data(args.samples, args.inputs, args.outputs, args.seed)
    print(
        f"\n== {dtype}: {args.samples} samples x {args.inputs} inputs -> {args.outputs} outputs, "
        f"n_feat {args.n_feat}, alpha {args.alpha}, device {args.device} (load {_load()})"
    )
    t_ours, t_ref, m_ours, m_ref = [], [], [], []
    ours = ref = None
    fit(
        X[:200], Y[:200, :50], args.alpha, min(args.n_feat, args.inputs - 1), dtype=dtype, device=args.device
    )  # warm up
    for rep in range(args.repeat):
        ours, t, mem = _timed(
            lambda: fit(X, Y, args.alpha, args.n_feat, dtype=dtype, device=args.device), args.device
        )
        t_ours.append(t)
        m_ours.append(mem.mib)
        if not args.no_reference:
            ref, t, mem = _timed(lambda: fit_reference(X, Y, args.alpha, args.n_feat, dtype=dtype))
            t_ref.append(t)
            m_ref.append(mem.mib)
        print(
            f"  rep {rep + 1}: ours {t_ours[-1]:.2f} s"
            + (f", fastl2lir {t_ref[-1]:.2f} s" if t_ref else "")
            + f"  (load {_load()})",
            flush=True,
        )
    res = {
        "dtype": dtype,
        "ours_s": statistics.median(t_ours),
        "ours_min_s": min(t_ours),
        "ours_mib": max(m_ours),
    }
    print(
        f"  ours:      median {res['ours_s']:.2f} s, best {res['ours_min_s']:.2f} s, peak +{res['ours_mib']:.0f} MiB"
    )
    if ref is not None:
        res.update(ref_s=statistics.median(t_ref), ref_min_s=min(t_ref), ref_mib=max(m_ref))
        res["ratio"] = res["ref_s"] / res["ours_s"]
        res["ratio_best"] = res["ref_min_s"] / res["ours_min_s"]
        W_ref, b_ref = ref.W, ref.b
        scale_W, scale_b = np.abs(W_ref).max(), np.abs(b_ref).max()
        scale = max(scale_W, scale_b)  # b is ~0 for z-scored data: compare it on the coefficients' scale
        res["dW"] = np.abs(ours.W - W_ref).max() / scale_W
        res["db"] = np.abs(ours.b - b_ref).max() / scale
        res["db_abs"] = np.abs(ours.b - b_ref).max()
        sel_ref = _selection_from_W(W_ref)
        res["sel_diff"] = sum(set(s) != set(r) for s, r in zip(ours.selection, sel_ref, strict=True))
        print(
            f"  fastl2lir: median {res['ref_s']:.2f} s, best {res['ref_min_s']:.2f} s, peak +{res['ref_mib']:.0f} MiB"
        )
        target = {"float32": 2.5, "float64": 1.7}[dtype] if args.device == "cpu" else 100.0
        print(
            f"  ratio fastl2lir/ours: {res['ratio']:.2f}x (medians), {res['ratio_best']:.2f}x (best times); "
            f"target >= {target}x: {'met' if res['ratio'] >= target else 'NOT met'}"
        )
        print(
            f"  max|dW|/max|W| = {res['dW']:.2e}, max|db|/max(|W|,|b|) = {res['db']:.2e} (max|db| = {res['db_abs']:.2e}), "
            f"outputs whose selected set differs: {res['sel_diff']}/{args.outputs}"
        )
    if args.device.startswith("cuda"):
        fits_s = res["ours_s"] * N_PAPER_FITS
        print(f"  extrapolated {N_PAPER_FITS} fits of this shape: {fits_s / 60:.1f} min")
    return res


def sweep(args) -> None:
    """Paper-scale sweep: ROI sizes of the real data; time per fit; the 10,575 fits extrapolated."""
    from bhscore.ridge import GramInputs, fit

    sizes = [int(s) for s in args.sweep_inputs.split(",")]
    dtype = args.dtype[0]
    print(
        f"\n== sweep ({dtype}, device {args.device}): {args.samples} samples -> 1000 outputs, n_feat {args.n_feat}"
    )
    per = []
    for m in sizes:
        X, Y = make_data(args.samples, m, 1000, args.seed)
        _, t_full, _ = _timed(
            lambda X=X, Y=Y: fit(X, Y, args.alpha, args.n_feat, dtype=dtype, device=args.device), args.device
        )
        prep = GramInputs(X, dtype, args.device)  # the Gram is shared by every layer of a (subject, ROI)
        _, t_layer, _ = _timed(lambda prep=prep, Y=Y: prep.fit(Y, args.alpha, args.n_feat), args.device)
        per.append(t_layer)
        print(
            f"  {m:6d} inputs: {t_full:.2f} s per fit from scratch, {t_layer:.2f} s per layer with a shared Gram"
        )
    mean = sum(per) / len(per)
    print(
        f"  extrapolated: {N_PAPER_FITS} fits x {mean:.2f} s (mean over the sizes) = {N_PAPER_FITS * mean / 3600:.2f} h"
        f" = {N_PAPER_FITS * mean / 60:.1f} min"
    )


def wide(args) -> None:
    """Wide inputs, never forming the inputs' Gram: a memory-mapped float32 matrix."""
    from bhscore.ridge import fit

    n, m, q, k = args.samples, args.wide_inputs, args.wide_outputs, args.n_feat
    gib = n * m * 4 / 2**30
    tmpdir = Path(args.tmpdir or tempfile.gettempdir())
    path = tmpdir / f"bhscore_bench_wide_{n}x{m}.f32"
    print(
        f"\n== wide: {n} x {m} float32 inputs ({gib:.1f} GiB, memory-mapped from {path}) -> {q} outputs, n_feat {k}"
    )
    rng = np.random.default_rng(args.seed)
    if not path.exists() or path.stat().st_size != n * m * 4:
        t0 = time.perf_counter()
        mm = np.lib.format.open_memmap(path.with_suffix(".npy"), mode="w+", dtype=np.float32, shape=(n, m))
        for a in range(0, n, 500):
            mm[a : a + 500] = rng.standard_normal((min(500, n - a), m), dtype=np.float32)
        mm.flush()
        del mm
        os.replace(path.with_suffix(".npy"), path)
        print(f"  wrote the inputs in {time.perf_counter() - t0:.0f} s")
    X = np.load(path, mmap_mode="r")
    informative = 300
    Y = (
        np.asarray(X[:, :informative], dtype=np.float64)
        @ rng.standard_normal((informative, q))
        / np.sqrt(informative)
    )
    Y += rng.standard_normal((n, q))
    Y = Y.astype(np.float32)
    before = {f: _status_kb(f) / 2**20 for f in ("VmRSS", "RssAnon", "RssFile")}
    res, t, mem = _timed(lambda: fit(X, Y, args.alpha, k, dtype="float32", mode="wide", device=args.device,
                                     progress=True), args.device)  # fmt: skip
    print(
        f"  time {t:.0f} s (load {_load()}); peak resident memory above the baseline: +{mem.mib / 1024:.2f} GiB in "
        f"all; anonymous (the working set) +{mem.anon_mib / 1024:.2f} GiB; file-backed (pages of the "
        f"memory-mapped input, reclaimable page cache) +{mem.file_mib / 1024:.2f} GiB"
    )
    after = {f: _status_kb(f) / 2**20 for f in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
    print(
        "  resident GiB before -> after the fit: "
        + ", ".join(f"{f} {before[f]:.2f} -> {after[f]:.2f}" for f in before)
        + f"; process peak (VmHWM) {after['VmHWM']:.2f}"
    )
    print(f"  input {gib:.2f} GiB; results: selection {res.selection.shape}, coef {res.coef.shape}")
    if args.delete:
        path.unlink()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--inputs", type=int, default=2000)
    p.add_argument("--outputs", type=int, default=1000)
    p.add_argument("--n-feat", type=int, default=500)
    p.add_argument("--alpha", type=float, default=100.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="device of our solver: cpu, cuda, ...")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-reference", action="store_true", help="time ours only")
    p.add_argument("--sweep", action="store_true", help="paper-scale sweep over ROI sizes instead")
    p.add_argument("--sweep-inputs", default="500,1000,2000,4000", help="input counts of the sweep")
    p.add_argument("--wide", action="store_true", help="the wide-input memory benchmark instead")
    p.add_argument("--wide-inputs", type=int, default=300_000)
    p.add_argument("--wide-outputs", type=int, default=2000)
    p.add_argument("--tmpdir", help="where the wide benchmark writes its input matrix (default: system temp)")
    p.add_argument("--delete", action="store_true", help="delete the wide input file afterwards")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"bhscore ridge benchmark: python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
        + (f", GPU {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else "")
    )
    if args.wide:
        import logging

        logging.basicConfig(format="  %(message)s")
        logging.getLogger("bhscore.ridge").setLevel(logging.DEBUG)
        wide(args)
    elif args.sweep:
        sweep(args)
    else:
        for dt in args.dtype:
            compare(args, dt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
