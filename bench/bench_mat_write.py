"""Benchmark: writing small MAT v7.3 files, hdf5storage vs bhscore's dense-array writer.

A paper run writes ~21k accuracy files (1 x n float32 + the scalar n_samples) and feature extraction one
file per image and layer; both used to go through ``hdf5storage.savemat``. Times per file, each file
written atomically (temporary file + rename) into a fresh directory:

- ``hdf5storage (old)``: what ``bhscore.formats.mat.savemat_v73`` did before: ``hdf5storage.savemat`` on the
  temporary file that ``atomic_path`` had already created (hdf5storage then writes no MATLAB header);
- ``hdf5storage (new file)``: ``hdf5storage.savemat`` on a new file, as bdpy writes (with the header) — the
  fallback path for structs etc.;
- ``ours, first of a shape``: the h5py writer (template cache emptied before every file);
- ``ours``: steady state (the file built from the template of the shape);
- ``floor: atomic write``: writing the same bytes atomically, without any encoding (the file-system cost).

Usage::

    python bench/bench_mat_write.py [--files 300] [--repeats 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import hdf5storage
import numpy as np

from bhscore.atomic import atomic_path
from bhscore.formats import mat


def _hdf5storage_old(path: Path, mapping: dict) -> None:
    with atomic_path(path) as tmp:
        hdf5storage.savemat(
            str(tmp), dict(mapping), format="7.3", oned_as="column", store_python_metadata=True
        )


def _hdf5storage_new_file(path: Path, mapping: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.unlink()
        hdf5storage.savemat(
            str(tmp), dict(mapping), format="7.3", oned_as="column", store_python_metadata=True
        )


def _floor(path: Path, mapping: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_FLOOR_BYTES[id(mapping)])


_FLOOR_BYTES: dict[int, bytes] = {}


def _ours_cold(path: Path, mapping: dict) -> None:
    mat._mat73_templates.clear()
    mat.savemat_v73(path, mapping)


WRITERS = {
    "hdf5storage (old)": _hdf5storage_old,
    "hdf5storage (new file)": _hdf5storage_new_file,
    "ours, first of a shape": _ours_cold,
    "ours": mat.savemat_v73,
    "floor: atomic write": _floor,
}


def _time_per_file(writer, mapping: dict, root: Path, n_files: int) -> float:
    """Seconds per file for ``n_files`` files into a new directory (removed afterwards)."""
    out = Path(tempfile.mkdtemp(dir=root))
    paths = [out / f"{i:05d}.mat" for i in range(n_files)]
    writer(out / "warmup.mat", mapping)
    t = time.perf_counter()
    for p in paths:
        writer(p, mapping)
    dt = (time.perf_counter() - t) / n_files
    shutil.rmtree(out)
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=300, help="files per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (median reported)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: the system temp dir)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    cases = {
        "accuracy (1, 1000) float32 + n_samples": {
            "accuracy": rng.standard_normal((1, 1000)).astype(np.float32),
            "n_samples": np.array([[50.0]]),
        },
        "feature (1, 1000) float32": {"feat": rng.standard_normal((1, 1000)).astype(np.float32)},
    }
    root = Path(tempfile.mkdtemp(prefix="bench_mat_", dir=args.dir))
    try:
        # the files compared are the same files: bytes equal after the 128-byte header (which holds the time)
        for mapping in cases.values():
            _hdf5storage_new_file(root / "ref.mat", mapping)
            mat.savemat_v73(root / "ours.mat", mapping)
            mat.savemat_v73(root / "ours.mat", mapping)  # from the template
            if (root / "ref.mat").read_bytes()[128:] != (root / "ours.mat").read_bytes()[128:]:
                raise SystemExit("the writers' files differ: not comparing")
            _FLOOR_BYTES[id(mapping)] = (root / "ours.mat").read_bytes()
        print(
            f"{args.files} files per measurement, {args.repeats} interleaved repeats, median; in {root.parent}"
        )
        print(f"load average {os.getloadavg()[0]:.2f}")
        for case, mapping in cases.items():
            times: dict[str, list[float]] = {w: [] for w in WRITERS}
            for _ in range(args.repeats):
                for name, writer in WRITERS.items():
                    times[name].append(_time_per_file(writer, mapping, root, args.files))
            med = {w: statistics.median(t) * 1e3 for w, t in times.items()}
            print(f"\n{case}")
            for w, ms in med.items():
                print(
                    f"  {w:24s} {ms:7.3f} ms/file   (min {min(times[w]) * 1e3:.3f}, max {max(times[w]) * 1e3:.3f})"
                )
            base = med["hdf5storage (old)"]
            print(f"  ratio hdf5storage (old) / ours: {base / med['ours']:.1f}x "
                  f"(first of a shape: {base / med['ours, first of a shape']:.1f}x; "
                  f"vs hdf5storage (new file): {med['hdf5storage (new file)'] / med['ours']:.1f}x)")  # fmt: skip
        print(f"\nload average {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
