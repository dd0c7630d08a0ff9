"""Peak memory of one ``bhscore decode`` / ``encode`` worker, estimated from the data's sizes.

For batch systems that need a memory request (SLURM's ``--mem``)::

    python -m bhscore.resources decoding --settings settings.json [--dnn AlexNet]

prints the sizes read from the data (fMRI metadata and one feature file per layer; no voxels are loaded),
the estimate split into its terms, the request to pass (estimate x 1.25, rounded up to whole GiB) and the
number of job groups (the most array tasks that get work). ``--mem-only`` prints the request alone.

Basis of the estimate
---------------------
The sum of the largest arrays that one worker can hold (see :func:`estimate_peak_bytes` for every term),
counted as if all were alive at once, so it errs high within its terms; plus the Python runtime with torch
(:data:`RUNTIME_BYTES`) and the ridge solver's working set (at most its budget,
``bhscore.ridge.DEFAULT_BUDGET``; twice that for wide inputs). It is the CPU host memory of the default solver ('batched'); memory-mapped feature caches
are counted as resident. Peak resident sets measured on the 2-core VM (load 3-5) against the estimate:
quick demo decoding 0.94 GiB (1.00); simulated 2000 samples, 12.4k voxels (ROI of 2990), 2000-unit layer:
decoding 1.50 GiB (2.17), encoding 1.82 GiB (2.86).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bhscore.errors import CorruptFileError, MissingDataError, MissingItemError, UserError
from bhscore.kinds import DECODING, ENCODING, kind_of

GiB = 2**30
#: Resident memory of the runtime before any data: 0.70 GiB measured after ``import torch`` (2.14, CUDA
#: build, on CPU) on the 2-core VM, rounded up for numpy, bdpy and h5py.
RUNTIME_BYTES = 1 * GiB
#: Requested memory = estimate x this (allocator slack, interpreter objects, sizes that differ by subject).
HEADROOM = 1.25
#: Inputs wider than this use the ridge solver's wide mode (no Gram); ``bhscore.ridge.MAX_GRAM_INPUTS``.
MAX_GRAM_INPUTS = 16384
#: The ridge solver's working-set budget; ``bhscore.ridge.DEFAULT_BUDGET`` (not imported: that loads torch).
SOLVER_BUDGET = 512 * 2**20
#: Predictions use the dense weights up to this many elements; ``bhscore.ridge.RidgeFit.predict``.
DENSE_PREDICT_ELEMENTS = 50_000_000


@dataclass(frozen=True)
class Sizes:
    """The data sizes that set a worker's memory (the largest over subjects and layers).

    Attributes
    ----------
    n_samples : int
        Training samples of a subject (rows of X and Y; the paper: 6000).
    n_train_images, n_test_images : int
        Distinct training / test images (the paper: 1200 / 50).
    fmri_columns : int
        Columns of a training fMRI file (all voxels and label columns; read whole while selecting ROIs).
    subject_voxels : int
        Voxels of all the settings' ROIs of a subject (held for the subject's groups).
    roi_voxels : int
        Voxels of the largest ROI.
    layer_units : int
        Units of the layer (after the estimate is taken over layers: the one with the largest estimate).
    """

    n_samples: int
    n_train_images: int
    n_test_images: int
    fmri_columns: int
    subject_voxels: int
    roi_voxels: int
    layer_units: int


def estimate_peak_bytes(
    kind: str, sizes: Sizes, dtype: str = "float64", n_feat: int = 500, save_model: bool = False
) -> dict[str, int]:
    """Peak resident memory of one worker, by term (bytes); the estimate is the sum of the values.

    With n = samples, c = fMRI columns, V = subject voxels, u = layer units, w = bytes per value of
    ``dtype``, k = ``n_feat``, and (inputs, outputs) = (ROI voxels v, u) for decoding, (u, V) for encoding:

    - runtime: :data:`RUNTIME_BYTES`;
    - fMRI: ``8 n (c + V)`` (the training file as float64 while its ROIs are copied out) plus ``8 n_test V``;
    - features: ``2 x 4 (n_train_images + n_test_images) u`` (the layer's float32 cache and its array);
    - inputs: ``n x inputs x (8 + w)`` (float64 z-scoring, then ``dtype``; encoding also the float32 rows,
      +4) and the Gram ``2 (inputs + 1)^2 w`` (with its copy) -- unless inputs > :data:`MAX_GRAM_INPUTS`
      (wide mode: z-scored by chunks, no Gram);
    - outputs: ``n x outputs x (8 + w)`` (z-scoring) plus the raw rows (decoding: float32 units, +4;
      encoding: float64 voxels stacked, +8);
    - fit: coefficients and selection ``outputs x k x (w + 8)``, predictions ``3 x 8 n_test x outputs``,
      dense weights for prediction ``w x min(inputs x outputs, 5e7)`` (all of them with ``save_model``);
    - solver: the correlations of a block of outputs ``32 x inputs x outputs`` and the batched sub-Gram
      solves ``outputs x (k + 1)^2 w``, each capped by the solver's budget (1 and 1/2 x
      :data:`SOLVER_BUDGET`); in wide mode twice the budget.

    Parameters
    ----------
    kind : {'decoding', 'encoding'}
    sizes : Sizes
    dtype : {'float32', 'float64', 'float32_mixed'}
        The fit's dtype (settings ``analysis.<kind>.dtype``).
    n_feat : int
        Inputs selected per output (settings ``analysis.<kind>.n_feat``).
    save_model : bool
        The worker also writes the models (``--save-model``).

    Returns
    -------
    dict of str -> int
    """
    import numpy as np

    from bhscore.settings.model import PRECISIONS

    w = max(np.dtype(dt).itemsize for dt in PRECISIONS[dtype])  # the wider of the selection's and the solves'
    s = sizes
    n, u = s.n_samples, s.layer_units
    n_in, n_out, rows_bytes, out_raw = _FIT_SHAPES[kind_of(kind).name](s)
    wide = n_in > MAX_GRAM_INPUTS
    k = min(n_feat, n_in) if n_feat else n_in
    dense = n_in * n_out if save_model else min(n_in * n_out, DENSE_PREDICT_ELEMENTS)
    # correlations of a block of outputs (4 float64 per input and output), then batched sub-Gram solves
    solver = min(SOLVER_BUDGET, 32 * n_in * n_out) + min(SOLVER_BUDGET // 2, n_out * (k + 1) ** 2 * w)
    return {
        "runtime": RUNTIME_BYTES,
        "fMRI": 8 * n * (s.fmri_columns + s.subject_voxels) + 8 * s.n_test_images * s.subject_voxels,
        "features": 2 * 4 * (s.n_train_images + s.n_test_images) * u,
        "inputs": 0 if wide else n * n_in * (8 + w + rows_bytes) + 2 * (n_in + 1) ** 2 * w,
        "outputs": n * n_out * (8 + w + out_raw),
        "fit": n_out * k * (w + 8) + 3 * 8 * s.n_test_images * n_out + w * dense,
        "solver": 2 * SOLVER_BUDGET if wide else solver,
    }


#: Per kind, from the sizes: (inputs, outputs of one group's fit, extra bytes per input value for the
#: row-expansion index, bytes per raw output value): decoding predicts a layer's float32 units from one
#: ROI's voxels; encoding a subject's float64 voxels (every ROI of the group) from a layer's units.
_FIT_SHAPES = {
    DECODING: lambda s: (s.roi_voxels, s.layer_units, 0, 4),
    ENCODING: lambda s: (s.layer_units, s.subject_voxels, 4, 8),
}


def memory_request(n_bytes: float) -> str:
    """SLURM ``--mem`` value for an estimate: x :data:`HEADROOM`, rounded up to whole GiB (at least 1G)."""
    return f"{max(1, math.ceil(n_bytes * HEADROOM / GiB))}G"


# -------------------------------------------------------------------------------------------------
# sizes from the data
# -------------------------------------------------------------------------------------------------


def fmri_sizes(path: str | os.PathLike, rois: Sequence[str]) -> tuple[int, int, dict[str, int], int]:
    """Shape facts of a BData fMRI file from its metadata, without reading the voxels.

    Parameters
    ----------
    path : path-like
        A ``*_VC_v2.h5`` file.
    rois : sequence of str

    Returns
    -------
    n_samples : int
    n_columns : int
    roi_voxels : dict of str -> int
        Columns with ``ROI_<name> = 1``.
    n_images : int
        Distinct values of the ``image_index`` column.
    """
    import h5py
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise MissingDataError(path, how="make download-fmri", what="fMRI file")
    try:
        with h5py.File(path, "r") as f:
            n_samples, n_columns = f["dataset"].shape
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["metadata/key"][()]]
            marks = f["metadata/value"][()]  # (n_keys, n_columns)
            if "image_index" not in keys:
                raise KeyError("no image_index metadata row")
            column = np.flatnonzero(marks[keys.index("image_index")] == 1)
            if column.size != 1:
                raise KeyError(f"image_index marks {column.size} columns, not 1")
            n_images = int(np.unique(f["dataset"][:, int(column[0])]).size)
    except (OSError, KeyError, ValueError) as e:
        raise CorruptFileError(path, f"not a BData file ({type(e).__name__}: {e})") from None
    voxels = {}
    for roi in rois:
        if f"ROI_{roi}" not in keys:
            have = sorted(k.removeprefix("ROI_") for k in keys if k.startswith("ROI_"))
            raise MissingItemError(path, "ROI", roi, have)
        voxels[roi] = int(np.count_nonzero(marks[keys.index(f"ROI_{roi}")] == 1))
    return int(n_samples), int(n_columns), voxels, n_images


def layer_units(features_dir: str | os.PathLike, layer: str) -> int:
    """Units of one layer of a features tree, from its first feature file.

    Raises
    ------
    MissingDataError
        The layer has no feature files.
    """
    from bhscore.formats import load_feature

    layer_dir = Path(features_dir) / layer
    first = None
    if layer_dir.is_dir():
        with os.scandir(layer_dir) as entries:
            first = next(
                (e.path for e in entries if e.name.endswith(".mat") and not e.name.startswith(".")), None
            )
    if first is None:
        raise MissingDataError(layer_dir, how="bhscore extract (or make download-features)",
                               what=f"feature files of layer {layer!r}")  # fmt: skip
    return int(load_feature(first).size)


def measure(
    settings, kind: str, dnns: Sequence[str] | None = None, layers: Sequence[str] | None = None
) -> tuple[Sizes, dict[str, int]]:
    """The sizes of ``settings``' data and the largest estimate over the selected layers.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    kind : {'decoding', 'encoding'}
    dnns, layers : sequence of str, optional
        Restrict to these DNNs / layers (default: all of the settings).

    Returns
    -------
    sizes : Sizes
        With ``layer_units`` of the layer whose estimate is largest.
    parts : dict of str -> int
        :func:`estimate_peak_bytes` for those sizes.
    """
    from bhscore.jobs import list_jobs
    from bhscore.paths import TEST, TRAINING, Layout

    layout = Layout.from_settings(settings)
    rois = list(settings.rois)
    per_subject = []
    for subject in settings.subjects:
        n, cols, voxels, n_train_images = fmri_sizes(layout.fmri_file(subject, TRAINING), rois)
        _, _, _, n_test_images = fmri_sizes(layout.fmri_file(subject, TEST), rois)
        per_subject.append(
            (n, cols, sum(voxels.values()), max(voxels.values()), n_train_images, n_test_images)
        )
    n, cols, subject_voxels, roi_voxels, n_train_images, n_test_images = map(
        max, zip(*per_subject, strict=True)
    )
    pairs = dict.fromkeys((j.dnn, j.layer) for j in list_jobs(settings, kind, dnns, layers))
    units = {layer_units(layout.features_dir(TRAINING, settings.dnn(d).dir), layer) for d, layer in pairs}
    base = Sizes(n, n_train_images, n_test_images, cols, subject_voxels, roi_voxels, 0)
    ridge = kind_of(kind).ridge_settings(settings)
    best = None
    for u in sorted(units):
        sizes = replace(base, layer_units=u)
        parts = estimate_peak_bytes(kind, sizes, ridge.dtype, ridge.n_feat)
        if best is None or sum(parts.values()) > sum(best[1].values()):
            best = (sizes, parts)
    if best is None:
        raise UserError(f"no {kind} jobs selected in {settings.source}; check --dnn / --layer")
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bhscore.resources KIND [--settings S] [--dnn D ...] [--layer L ...] [--mem-only]``."""
    import argparse
    import sys

    from bhscore.jobs import grouped, list_jobs
    from bhscore.settings import SettingsError, load_settings

    p = argparse.ArgumentParser(
        prog="python -m bhscore.resources",
        description="Estimate the peak memory of one decode/encode worker from the data's sizes and print "
        "the SLURM --mem request (estimate x 1.25, whole GiB) and the number of job groups.",
    )
    p.add_argument("kind", choices=("decoding", "encoding"))
    p.add_argument(
        "--settings", metavar="PATH", help="settings file (default: $BHSCORE_SETTINGS or the repository's)"
    )
    p.add_argument("--dnn", action="append", metavar="NAME", help="only this DNN (repeatable; default: all)")
    p.add_argument("--layer", action="append", metavar="L", help="only this layer (repeatable)")
    p.add_argument("--mem-only", action="store_true", help="print only the --mem value, e.g. 5G")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.settings)
        sizes, parts = measure(settings, args.kind, args.dnn, args.layer)
        n_groups = len(grouped(list_jobs(settings, args.kind, args.dnn, args.layer)))
    except (UserError, SettingsError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    total = sum(parts.values())
    if args.mem_only:
        print(memory_request(total))
        return 0
    print(
        f"{args.kind}: {sizes.n_samples} training samples ({sizes.n_train_images} images), "
        f"{sizes.n_test_images} test images, {sizes.fmri_columns} fMRI columns, {sizes.subject_voxels} voxels "
        f"in the ROIs (largest ROI {sizes.roi_voxels}), layer of {sizes.layer_units} units"
    )
    print("estimated peak memory of one worker: " + f"{total / GiB:.2f} GiB ("
          + ", ".join(f"{k} {v / GiB:.2f}" for k, v in parts.items()) + ")")  # fmt: skip
    print(f"sbatch --mem={memory_request(total)}; {n_groups} job groups: --array=0-{n_groups - 1} at most")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
