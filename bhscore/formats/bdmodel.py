"""Trained linear models in bdpy's "bdmodel" directory layout.

``W.mat`` holds the weights as a bdpy sparse array; ``b.mat``, ``x_mean.mat``, ``x_norm.mat``, ``y_mean.mat``
and ``y_norm.mat`` hold the bias and the normalisation vectors (MAT v7.3, shape (1, n)).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bhscore.atomic import atomic_path
from bhscore.errors import MissingDataError
from bhscore.formats.mat import savemat_v73

_BDMODEL_VECTORS = ("b", "x_mean", "x_norm", "y_mean", "y_norm")


def save_bdmodel(
    model_dir: str | os.PathLike,
    W: np.ndarray,
    b: np.ndarray,
    x_mean: np.ndarray,
    x_norm: np.ndarray,
    y_mean: np.ndarray,
    y_norm: np.ndarray,
    dtype: type = np.float32,
) -> Path:
    """Save a trained linear model in bdpy's bdmodel layout (each file atomic; ``W.mat`` written last).

    Parameters
    ----------
    W : ndarray of shape (n_inputs, n_outputs)
        Stored as a bdpy sparse array (most weights are 0 after input selection).
    b : ndarray of shape (1, n_outputs)
    x_mean, x_norm : ndarray of shape (1, n_inputs)
    y_mean, y_norm : ndarray of shape (1, n_outputs)
    """
    from bdpy.dataform import SparseArray

    model_dir = Path(model_dir)
    for name, arr in zip(_BDMODEL_VECTORS, (b, x_mean, x_norm, y_mean, y_norm), strict=True):
        savemat_v73(model_dir / f"{name}.mat", {name: np.asarray(arr, dtype=dtype).reshape(1, -1)})
    with atomic_path(model_dir / "W.mat") as tmp:
        tmp.unlink()  # hdf5storage adds the MATLAB header only to files it creates
        SparseArray(np.asarray(W, dtype=dtype)).save(str(tmp), key="W", dtype=dtype)
    return model_dir


def load_bdmodel(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a bdmodel directory; returns dict with W (n_inputs, n_outputs), b, x_mean, x_norm, y_mean, y_norm."""
    from bdpy.dataform import load_array

    model_dir = Path(model_dir)
    out = {}
    for name in ("W", *_BDMODEL_VECTORS):
        p = model_dir / f"{name}.mat"
        if not p.exists():
            raise MissingDataError(p, how="bhscore decode --save-model", what="trained model file")
        out[name] = np.asarray(load_array(str(p), key=name))
    return out
