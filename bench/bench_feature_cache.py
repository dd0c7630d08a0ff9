"""Benchmark: reading one layer of a features tree, from the per-file MAT files vs the per-layer cache.

A layer of the real data has 1200 (training) + 50 (test) files, one per image. Reading them one by one
(bdpy's ``Features.get_features`` or our uncached ``read_layer``) costs a file open per image; the per-layer
cache turns every later read into one array load. Target: >= 20x on re-read.

Usage::

    python bench/bench_feature_cache.py [--images 1250] [--units 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the timings

from bdpy.dataform import Features  # noqa: E402

from bhscore.formats import read_layer, save_feature  # noqa: E402
from bhscore.simulate import stimulus_names  # noqa: E402


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1250, help="files in the layer (real data: 1200 + 50)")
    ap.add_argument("--units", type=int, default=1000, help="units per file (the released features: 1000)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        names = stimulus_names(args.images, np.random.default_rng(0))
        rng = np.random.default_rng(1)
        layer_dir = tmp / "features" / "fc6"
        t = time.perf_counter()
        for n in names:
            save_feature(layer_dir / f"{n}.mat", rng.standard_normal((1, args.units)))
        print(f"wrote {args.images} files of {args.units} units (MAT v7.3) in {time.perf_counter() - t:.1f} s")

        root, cache = tmp / "features", tmp / "cache"
        t_bdpy = _best_of(lambda: Features(str(root)).get_features("fc6"), args.repeats)
        t_files = _best_of(lambda: read_layer(root, "fc6"), args.repeats)
        t = time.perf_counter()
        first = read_layer(root, "fc6", cache_dir=cache)
        t_build = time.perf_counter() - t
        t_cached = _best_of(lambda: read_layer(root, "fc6", cache_dir=cache), args.repeats)
        again = read_layer(root, "fc6", cache_dir=cache)
        assert np.array_equal(first, again), "cache returned different values"
        assert np.array_equal(first, Features(str(root)).get_features("fc6")), "differs from bdpy"

        print(f"{'bdpy Features.get_features':<34} {t_bdpy * 1e3:9.1f} ms")
        print(f"{'read_layer, per-file':<34} {t_files * 1e3:9.1f} ms")
        print(f"{'read_layer, first read + cache':<34} {t_build * 1e3:9.1f} ms")
        print(f"{'read_layer, cached re-read':<34} {t_cached * 1e3:9.1f} ms")
        print(f"speed-up of the cached re-read: {t_bdpy / t_cached:.0f}x vs bdpy, {t_files / t_cached:.0f}x vs per-file")
        return 0 if t_bdpy / t_cached >= 20 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
