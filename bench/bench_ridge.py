"""Benchmark: bhscore.ridge (batched FastL2LiR) against the reference package fastl2lir 0.11 (0.7 for float32_mixed).

Default: one decoding-sized fit (6000 samples = 1200 images x 5 presentations, 2000 voxels -> 1000 units,
n_feat 500, alpha 100), on the same seeded inputs in one run, interleaved and repeated: fastl2lir, ours on the
row-expanded samples (``exact_rows``, the previous path) and ours per image (the outputs' 1200 distinct rows);
prints the times (whole fit and the correlation/selection step), the ratios, the maximum differences
(selection, W, b) and the peak memory of each call (resident set size above the baseline, sampled every few
milliseconds).

    python bench/bench_ridge.py                      # float32 and float64, CPU
    python bench/bench_ridge.py --device cuda         # ours on the GPU (fastl2lir stays on the CPU)
    python bench/bench_ridge.py --sweep               # paper-scale sweep of ROI sizes, extrapolated total
    python bench/bench_ridge.py --wide                # encoding: 1200 x 300k memory-mapped features -> 2000 voxels

``--json PATH`` appends one JSON line per result (for scripts, e.g. bench/bench_gpu.sh). Targets on a
2-core CPU: >= 2.5x fastl2lir in float32, >= 1.7x in float64; wide encoding per image >= 3x the row-expanded
path; on a GPU >= 100x fastl2lir and the paper's 10,575 decoding fits extrapolated to under 10 minutes.
Results and the machine: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
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


def _emit(args, record: dict) -> None:
    """Append a result as one JSON line to ``--json`` (if given)."""
    if getattr(args, "json", None):
        record = {"bench": "ridge", "load": _load(), **record}
        with open(args.json, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")


def make_data(n: int, m: int, q: int, seed: int = 0, images: int = 0):
    """Seeded decoding-like data, z-scored like the pipeline's.

    Returns X (n, m) "voxels", G (r, q) "features" per image and rows (n,) the image of each sample
    (``images`` images shown n / images times each, in random order; with ``images`` 0 every sample is its
    own image, r = n). The outputs are ``G[rows]``: they depend on a few hundred inputs, plus noise.
    """
    rng = np.random.default_rng(seed)
    r = images if images else n
    rows = rng.permutation(np.repeat(np.arange(r), -(-n // r))[:n])
    G = rng.standard_normal((r, q))
    informative = min(m, 300)
    X = G[rows] @ rng.standard_normal((q, informative)) * (0.5 / np.sqrt(q))
    X = np.hstack([X + rng.standard_normal(X.shape), rng.standard_normal((n, m - informative))])
    X = (X - X.mean(0)) / X.std(0, ddof=1)
    Ge = G[rows]
    G = (G - Ge.mean(0)) / Ge.std(0, ddof=1)
    return X, G, rows


def _selection_from_W(W: np.ndarray) -> list[frozenset]:
    return [frozenset(np.flatnonzero(W[:, j])) for j in range(W.shape[1])]


def _diffs(ours, ref) -> dict:
    """Max relative |dW|, |db| (on the coefficients' scale: b is ~0 for z-scored data), differing selections."""
    W_ref, b_ref = ref.W, ref.b
    scale_W = np.abs(W_ref).max()
    scale = max(scale_W, np.abs(b_ref).max())
    sel_ref = _selection_from_W(W_ref)
    sel = _selection_from_W(ours.W) if ours.selection is None else [frozenset(s) for s in ours.selection]
    return {
        "dW": float(np.abs(ours.W - W_ref).max() / scale_W),
        "db": float(np.abs(ours.b - b_ref).max() / scale),
        "sel_diff": int(sum(s != r for s, r in zip(sel, sel_ref, strict=True))),
    }


# -------------------------------------------------------------------------------------------------
# benchmarks
# -------------------------------------------------------------------------------------------------


def compare(args, dtype: str) -> dict:
    """One decoding-sized fit: fastl2lir, ours row-expanded, ours per image; interleaved repetitions."""
    from bhscore.ridge import fit, fit_reference
    from bhscore.settings import PRECISIONS

    # float32_mixed: fastl2lir <= 0.7's arithmetic, referenced by fastl2lir 0.7 itself
    dt, sd = PRECISIONS[dtype]
    X, G, rows = make_data(args.samples, args.inputs, args.outputs, args.seed, args.images)
    Y = G[rows]
    print(
        f"\n== {dtype}: {args.samples} samples ({args.images or args.samples} images) x {args.inputs} inputs -> "
        f"{args.outputs} outputs, n_feat {args.n_feat}, alpha {args.alpha}, device {args.device} (load {_load()})"
    )
    solvers = {
        "per_image": lambda: fit(X, G, args.alpha, args.n_feat, dtype=dt, solve_dtype=sd, device=args.device,
                                 y_rows=rows),
        "expanded": lambda: fit(
            X, Y, args.alpha, args.n_feat, dtype=dt, solve_dtype=sd, device=args.device, exact_rows=True
        ),
    }
    if not args.no_reference:
        solvers["fastl2lir"] = lambda: fit_reference(X, Y, args.alpha, args.n_feat, dt, solve_dtype=sd)
    fit(X[:300], Y[:300, :50], args.alpha, min(args.n_feat, args.inputs - 1), dtype=dt, device=args.device)
    times = {s: [] for s in solvers}
    select = {s: [] for s in solvers}
    mem = {s: 0.0 for s in solvers}
    last = {}
    for rep in range(args.repeat):
        for name, fn in solvers.items():
            last[name], t, m = _timed(fn, args.device)
            times[name].append(t)
            select[name].append(last[name].info.get("select", float("nan")))
            mem[name] = max(mem[name], m.mib)
        print(f"  rep {rep + 1}: " + ", ".join(f"{s} {times[s][-1]:.2f} s" for s in solvers) + f"  (load {_load()})",
              flush=True)  # fmt: skip
    res = {"what": "decoding-fit", "dtype": dtype, "device": args.device, "samples": args.samples,
           "inputs": args.inputs, "outputs": args.outputs}  # fmt: skip
    for s in solvers:
        res[f"{s}_s"] = statistics.median(times[s])
        res[f"{s}_select_s"] = statistics.median(select[s])
        res[f"{s}_mib"] = mem[s]
        step = f", correlation + selection {res[f'{s}_select_s']:.2f} s" if s != "fastl2lir" else ""
        print(f"  {s:10s} median {res[f'{s}_s']:.2f} s{step}, peak +{mem[s]:.0f} MiB")
    res["per_image_vs_expanded"] = res["expanded_s"] / res["per_image_s"]
    res["select_ratio"] = res["expanded_select_s"] / res["per_image_select_s"]
    res.update({f"vs_expanded_{k}": v for k, v in _diffs(last["per_image"], last["expanded"]).items()})
    print(
        f"  per image vs row-expanded: {res['per_image_vs_expanded']:.2f}x the fit, {res['select_ratio']:.2f}x "
        f"the correlation step; max|dW|/max|W| {res['vs_expanded_dW']:.1e}, selections that differ "
        f"{res['vs_expanded_sel_diff']}/{args.outputs}"
    )
    if "fastl2lir" in solvers:
        res["ratio"] = res["fastl2lir_s"] / res["per_image_s"]
        res.update(_diffs(last["per_image"], last["fastl2lir"]))
        target = {"float32": 2.5, "float64": 1.7, "float32_mixed": 1.7}[dtype] if args.device == "cpu" else 100.0
        print(
            f"  fastl2lir / ours (per image): {res['ratio']:.2f}x (medians); target >= {target}x: "
            f"{'met' if res['ratio'] >= target else 'NOT met'}; max|dW|/max|W| {res['dW']:.1e}, "
            f"max|db| {res['db']:.1e}, selections that differ {res['sel_diff']}/{args.outputs}"
        )
    if args.device.startswith("cuda"):
        res["paper_fits_min"] = res["per_image_s"] * N_PAPER_FITS / 60
        print(f"  extrapolated {N_PAPER_FITS} fits of this shape: {res['paper_fits_min']:.1f} min")
    _emit(args, res)
    return res


def sweep(args) -> None:
    """Paper-scale sweep: ROI sizes of the real data; time per layer with the voxels' Gram shared; the 10,575
    fits extrapolated."""
    from bhscore.ridge import GramInputs

    sizes = [int(s) for s in args.sweep_inputs.split(",")]
    dtype = args.dtype[0]
    print(
        f"\n== sweep ({dtype}, device {args.device}): {args.samples} samples ({args.images} images) -> "
        f"{args.outputs} outputs, n_feat {args.n_feat} (load {_load()})"
    )
    per = {"per_image": [], "expanded": []}
    for m in sizes:
        X, G, rows = make_data(args.samples, m, args.outputs, args.seed, args.images)
        prep, t_prep, _ = _timed(lambda X=X: GramInputs(X, dtype, args.device), args.device)
        # a (subject, ROI)'s Gram serves every layer: time one layer's fit with it prepared
        prep.fit(G[:, :8], args.alpha, args.n_feat, y_rows=rows)  # warm up (and the per-image voxel sums)
        _, t_img, _ = _timed(
            lambda p=prep, G=G, r=rows: p.fit(G, args.alpha, args.n_feat, y_rows=r), args.device
        )
        _, t_exp, _ = _timed(lambda p=prep, Y=G[rows]: p.fit(Y, args.alpha, args.n_feat), args.device)
        per["per_image"].append(t_img)
        per["expanded"].append(t_exp)
        print(
            f"  {m:6d} inputs: Gram {t_prep:.2f} s once; per layer {t_img:.2f} s per image, {t_exp:.2f} s row-expanded"
        )
    res = {"what": "sweep", "dtype": dtype, "device": args.device, "sizes": sizes}
    for s, ts in per.items():
        mean = sum(ts) / len(ts)
        res[f"{s}_mean_s"] = mean
        res[f"{s}_paper_min"] = N_PAPER_FITS * mean / 60
        print(f"  extrapolated ({s}): {N_PAPER_FITS} fits x {mean:.2f} s (mean over the sizes) = "
              f"{N_PAPER_FITS * mean / 3600:.2f} h = {N_PAPER_FITS * mean / 60:.1f} min")  # fmt: skip
    _emit(args, res)


def _wide_inputs(args, n_images: int, m: int, rng) -> tuple[np.ndarray, Path]:
    """The memory-mapped (n_images, m) float32 features (written once under --tmpdir)."""
    tmpdir = Path(args.tmpdir or tempfile.gettempdir())
    path = tmpdir / f"bhscore_bench_wide_{n_images}x{m}.f32.npy"
    if not path.exists() or path.stat().st_size < n_images * m * 4:
        t0 = time.perf_counter()
        tmp = path.with_name(path.name + ".part")
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_images, m))
        for a in range(0, n_images, 200):
            z = min(a + 200, n_images)
            block = rng.standard_normal((z - a, m), dtype=np.float32)
            np.maximum(block, 0, out=block)  # ReLU-like, non-centred features
            mm[a:z] = block
        mm.flush()
        del mm
        os.replace(tmp, path)
        print(f"  wrote the inputs in {time.perf_counter() - t0:.0f} s")
    return np.load(path, mmap_mode="r"), path


def wide(args) -> None:
    """Encoding from all units of a wide layer: memory-mapped features per image, expanded to samples by a
    row index and z-scored on the fly (as the pipeline does), never forming the units' Gram; ours per image
    and ours row-expanded side by side."""
    from bhscore.ridge import InputMatrix, fit

    n, m, q, k = args.samples, args.wide_inputs, args.wide_outputs, args.n_feat
    n_images = args.images or n
    rng = np.random.default_rng(args.seed)
    F, path = _wide_inputs(args, n_images, m, rng)
    rows = rng.permutation(np.repeat(np.arange(n_images), -(-n // n_images))[:n])
    counts = np.bincount(rows, minlength=n_images).astype(np.float64)
    mean, sq = np.zeros(m), np.zeros(m)
    for a in range(0, m, 8192):  # training statistics of the samples (weighted by the presentations)
        block = np.asarray(F[:, a : a + 8192], dtype=np.float64)
        mean[a : a + 8192] = counts @ block / n
        sq[a : a + 8192] = counts @ (block - mean[a : a + 8192]) ** 2
    scale = np.sqrt(sq / (n - 1))
    scale[scale == 0] = 1.0
    informative = 300
    Y = ((np.asarray(F[:, :informative], dtype=np.float64) - mean[:informative]) / scale[:informative])[rows]
    Y = Y @ rng.standard_normal((informative, q)) / np.sqrt(informative) + rng.standard_normal((n, q))
    Y = Y.astype(np.float32)
    src = InputMatrix(F, rows=rows, center=mean, scale=scale, dtype="float32")
    gib = n * m * 4 / 2**30
    print(
        f"\n== wide: {n} samples ({n_images} images, memory-mapped {path}, {n_images * m * 4 / 2**30:.2f} GiB) "
        f"x {m} units (row-expanded {gib:.1f} GiB in float32) -> {q} outputs, n_feat {k}, device {args.device} "
        f"(load {_load()})"
    )
    # name -> (exact_rows, solve_dtype); float32_mixed among --dtype adds the per-image path in that precision
    paths = {"per_image": (False, None)} if args.no_exact else {"per_image": (False, None), "expanded": (True, None)}
    if "float32_mixed" in args.dtype:
        paths["per_image_mixed"] = (False, "float64")
    out, res = {}, {"what": "wide", "device": args.device, "samples": n, "inputs": m, "outputs": q}
    for name, (exact, sd) in paths.items():
        out[name], t, mem = _timed(lambda e=exact, sd=sd: fit(src, Y, args.alpha, k, dtype="float32", mode="wide",
                                                              device=args.device, exact_rows=e, solve_dtype=sd),
                                   args.device)  # fmt: skip
        info = out[name].info
        res.update({f"{name}_s": t, f"{name}_select_s": info["select"], f"{name}_solve_s": info["solve"],
                    f"{name}_anon_gib": mem.anon_mib / 1024})  # fmt: skip
        counts_txt = (f"; outputs decided by per-image values {info['clear']}, by the near-tie band "
                      f"{info['band']}, by whole exact columns {info['full']}") if exact is False else ""  # fmt: skip
        print(
            f"  {name}: {t:.0f} s (correlation + selection {info['select']:.0f} s, sub-Grams + solves "
            f"{info['solve']:.0f} s){counts_txt} (load {_load()}); peak anonymous memory (working set) "
            f"+{mem.anon_mib / 1024:.2f} GiB, file-backed (page cache of the map) +{mem.file_mib / 1024:.2f} GiB",
            flush=True,
        )
    if "per_image_mixed" in out:
        a, b = out["per_image_mixed"], out["per_image"]
        res["mixed_cost"] = res["per_image_mixed_s"] / res["per_image_s"]
        res["mixed_sel_diff"] = int((a.selection != b.selection).any(axis=1).sum())
        print(f"  float32_mixed per image / float32 per image: {res['mixed_cost']:.2f}x the time; selections that "
              f"differ {res['mixed_sel_diff']}/{q} (the same float32 selection)")  # fmt: skip
    if "expanded" in out:
        res["ratio"] = res["expanded_s"] / res["per_image_s"]
        a, b = out["per_image"], out["expanded"]
        res["sel_diff"] = int((a.selection != b.selection).any(axis=1).sum())
        res["dW"] = float(np.abs(a.coef - b.coef).max() / np.abs(b.coef).max())
        print(
            f"  per image vs row-expanded: {res['ratio']:.2f}x (target >= 3x: "
            f"{'met' if res['ratio'] >= 3 else 'NOT met'}); selections that differ {res['sel_diff']}/{q}; "
            f"max|dW|/max|W| {res['dW']:.1e}"
        )
    _emit(args, res)
    if args.delete:
        path.unlink()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64", "float32_mixed"])
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument(
        "--images", type=int, default=1200, help="distinct images among the samples (0: all distinct)"
    )
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
    p.add_argument("--wide", action="store_true", help="the wide-input (encoding) benchmark instead")
    p.add_argument("--wide-inputs", type=int, default=300_000)
    p.add_argument("--wide-outputs", type=int, default=2000)
    p.add_argument("--no-exact", action="store_true", help="wide: per image only, not the row-expanded path")
    p.add_argument("--tmpdir", help="where the wide benchmark writes its input matrix (default: system temp)")
    p.add_argument("--delete", action="store_true", help="delete the wide input file afterwards")
    p.add_argument("--json", help="append one JSON line per result to this file")
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
