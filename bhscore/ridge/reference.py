"""The reference implementation, PyPI ``fastl2lir`` 0.11, behind :func:`bhscore.ridge.fit`'s signature."""

from __future__ import annotations

import warnings

import numpy as np

from bhscore.ridge.backend import resolve_dtype
from bhscore.ridge.inputs import InputMatrix
from bhscore.ridge.result import RidgeFit


def fit_reference(
    X,
    Y,
    alpha: float = 1.0,
    n_feat: int = 0,
    dtype="float64",
    *,
    device=None,
    mode: str = "auto",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    budget: int | None = None,
    progress: bool = False,
    y_rows: np.ndarray | None = None,
    exact_rows: bool = False,
) -> RidgeFit:
    """Fit with the reference implementation, PyPI ``fastl2lir`` 0.11 (for legacy runs and tests).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), or InputMatrix (materialised first)
    Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
    alpha, n_feat, dtype : see :func:`bhscore.ridge.fit`
    device, mode, batch_size, chunk_size, budget, progress, exact_rows
        Accepted for :func:`bhscore.ridge.fit`'s signature and ignored: the reference computes on the CPU,
        on the row-expanded samples, with its own loop over outputs.
    y_rows : ndarray of shape (n_samples,) of int, optional
        The outputs of sample i are ``Y[y_rows[i]]`` (expanded before the fit).

    Returns
    -------
    RidgeFit
        Dense weights (n_inputs, n_outputs), no selection record.
    """
    import fastl2lir
    import fastl2lir.fastl2lir as impl

    dt = resolve_dtype(dtype)
    X = X.materialize() if isinstance(X, InputMatrix) else np.asarray(X)
    Y = np.asarray(Y)
    if y_rows is not None:
        Y = Y[np.asarray(y_rows, dtype=np.int64)]
    if Y.ndim == 1:
        Y = Y[:, None]
    real_tqdm = impl.tqdm
    impl.tqdm = lambda it, *a, **kw: it  # silence its per-output progress bar
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in corrmat for constant outputs
            # its numpy.matrix and per-element conversions
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            model = fastl2lir.FastL2LiR().fit(X, Y, alpha=alpha, n_feat=n_feat, dtype=dt.type)
    finally:
        impl.tqdm = real_tqdm
    return RidgeFit(coef=np.asarray(model.W), b=np.asarray(model.b), selection=None, n_inputs=X.shape[1])
