"""The fit/predict core of both directions: z-scoring, the ridge fit with its solver, accuracy per column.

One job fits FastL2LiR (:mod:`bhscore.ridge`, or the reference package with ``solver='fastl2lir'``) from
z-scored training inputs to z-scored training outputs, predicts the image-averaged test inputs, un-z-scores
the prediction and scores each output column by Pearson r across the test images. Decoding and encoding
(:mod:`bhscore.decoding`, :mod:`bhscore.encoding`) differ only in what they feed it (:mod:`bhscore.kinds`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bhscore import ridge
from bhscore.errors import UserError
from bhscore.settings.model import PRECISIONS

log = logging.getLogger(__name__)


@dataclass
class ZScore:
    """Column statistics for z-scoring: ``(x - mean) / norm``.

    Attributes
    ----------
    mean : ndarray of shape (n_cols,), float64
    norm : ndarray of shape (n_cols,), float64
        Standard deviation with ddof=1; 1 for constant columns (whose mean is their value, so they z-score
        to exactly 0).
    constant : ndarray of shape (n_cols,), bool
    """

    mean: np.ndarray
    norm: np.ndarray
    constant: np.ndarray

    def apply(self, X: np.ndarray, dtype="float64") -> np.ndarray:
        """``(X - mean) / norm`` computed in float64, returned as ``dtype``; X (n, n_cols)."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.norm
        return Z.astype(dtype, copy=False)

    def invert(self, Z: np.ndarray) -> np.ndarray:
        """``Z * norm + mean`` in float64."""
        return np.asarray(Z, dtype=np.float64) * self.norm + self.mean

    def rounded(self) -> ZScore:
        """The statistics rounded to float32 (as the original scripts save them), held as float64."""
        as32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
        return ZScore(as32(self.mean), as32(self.norm), self.constant)


def _nan_columns(X, zs: ZScore, rows: np.ndarray | None) -> np.ndarray:
    """Inputs that the original scripts z-score to 0/0 = NaN: constant, and equal to their float32 mean.

    The originals compute the mean in float32 (numpy's sum down the rows, C order); a constant column whose
    float32 mean is inexact gives (x - mean) / 0 = +-inf instead, which bdpy's ModelTraining sets to 0.

    Returns
    -------
    ndarray of shape (n_inputs,), bool
    """
    cols = np.flatnonzero(zs.constant)
    if cols.size == 0:
        return zs.constant.copy()
    block = np.ascontiguousarray(np.take(X, cols, axis=1), dtype=np.float32)
    if rows is not None:
        block = block[rows]
    out = np.zeros(zs.constant.shape, dtype=bool)
    out[cols] = np.mean(block, axis=0) == block[0]
    return out


def zscore_stats(X, rows: np.ndarray | None = None, chunk: int = 4096) -> ZScore:
    """Training statistics of the columns of ``X[rows]`` (ddof=1, zero-std guard).

    Parameters
    ----------
    X : array_like of shape (n_rows, n_cols)
        May be a memory map; read ``chunk`` columns at a time.
    rows : ndarray of shape (n_samples,) of int, optional
        The samples as rows of X (an image shown several times appears several times). Default: all rows.

    Returns
    -------
    ZScore
    """
    n_cols = X.shape[1]
    mean = np.empty(n_cols)
    norm = np.empty(n_cols)
    const = np.empty(n_cols, dtype=bool)
    for a in range(0, n_cols, chunk):
        block = np.asarray(X[:, a : a + chunk], dtype=np.float64)
        if rows is not None:
            block = block[rows]
        if block.shape[0] < 2:
            raise ValueError(f"need at least 2 training samples, got {block.shape[0]}")
        c = block.max(axis=0) == block.min(axis=0)
        m = block.mean(axis=0)
        s = block.std(axis=0, ddof=1)
        m[c] = block[0, c]
        s[c] = 1.0
        mean[a : a + chunk], norm[a : a + chunk], const[a : a + chunk] = m, s, c
    return ZScore(mean, norm, const)


def pearson_columns(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns, vectorised.

    Parameters
    ----------
    pred, true : ndarray of shape (n_samples, n_cols)

    Returns
    -------
    ndarray of shape (n_cols,), float64
        NaN where either column is constant (all values equal).
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {true.shape}")
    pc = pred - pred.mean(axis=0)
    tc = true - true.mean(axis=0)
    num = np.einsum("ij,ij->j", pc, tc)
    den = np.sqrt(np.einsum("ij,ij->j", pc, pc) * np.einsum("ij,ij->j", tc, tc))
    constant = (np.ptp(pred, axis=0) == 0) | (np.ptp(true, axis=0) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r[constant | ~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def sample_rows(sample_names: Sequence[str], image_names: Sequence[str], what: str) -> np.ndarray:
    """Row of ``image_names`` for each sample, by name.

    Raises
    ------
    UserError
        Some samples show images that ``image_names`` lacks; the message names them.
    """
    pos = {n: i for i, n in enumerate(image_names)}
    missing = sorted({n for n in sample_names if n not in pos})
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise UserError(f"{what}: no data for image(s) {shown}")
    return np.fromiter((pos[n] for n in sample_names), dtype=np.int64, count=len(sample_names))


#: The solvers' names (:data:`bhscore.ridge.SOLVERS`): bhscore's batched FastL2LiR, the reference package.
SOLVERS = tuple(ridge.SOLVERS)


@dataclass
class RidgeOptions:
    """How to fit: FastL2LiR parameters, solver and device.

    Attributes
    ----------
    alpha, n_feat, dtype : from ``settings.analysis.decoding`` / ``.encoding``
    solver : {'batched', 'fastl2lir'}
    device : str or None
        For solver 'batched': 'cpu', 'cuda', ... ; None: CUDA when available.
    exact_rows : bool
        Solver 'batched' on the row-expanded samples instead of the per-image sums (for checking).
    solve_dtype : str or None
        Precision of the Gram and the solves when it differs from ``dtype`` (settings dtype
        ``'float32_mixed'``: ``dtype='float32'``, ``solve_dtype='float64'``, fastl2lir <= 0.7's arithmetic).
    constant_inputs, zscore_over, float32_rounding
        How the original scripts' numerics are reproduced (``RidgeSettings``; docs/method.md, "Reproducing the
        published accuracies: options").
    """

    alpha: float = 100.0
    n_feat: int = 500
    dtype: str = "float64"
    solve_dtype: str | None = None
    solver: str = "batched"
    exact_rows: bool = False
    constant_inputs: str = "original"
    zscore_over: str = "images"
    float32_rounding: bool = True
    device: str | None = None
    progress: bool = False

    @classmethod
    def from_settings(cls, ridge_settings, **overrides) -> RidgeOptions:
        """Options from ``settings.analysis.decoding`` / ``.encoding`` (None overrides are ignored)."""
        return cls.from_params(ridge_settings.model_dump(), **overrides)

    @classmethod
    def from_params(cls, params, **overrides) -> RidgeOptions:
        """Options from a parameter set's parameters (:class:`bhscore.provenance.ParamSet`)."""
        names = {f for f in cls.__dataclass_fields__ if f not in ("device", "progress")}
        kw = {k: v for k, v in params.items() if k in names}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        if "dtype" in kw:  # a settings dtype: the selection's dtype, and the solves' where it differs
            dtype, solve_dtype = PRECISIONS[kw["dtype"]]
            kw["dtype"], kw["solve_dtype"] = dtype, (solve_dtype if solve_dtype != dtype else None)
        return cls(**kw)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise UserError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")


class TrainingInputs:
    """The z-scored training inputs of one (subject, ROI) or layer, prepared once for many fits.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_inputs)
        Raw inputs; with ``rows``, the inputs of sample i are ``X[rows[i]]`` (features per image).
    options : RidgeOptions
    rows : ndarray of shape (n_samples,) of int, optional
    """

    def __init__(self, X, options: RidgeOptions, rows: np.ndarray | None = None):
        self.options = options
        # the original encoding script z-scores the features over the distinct training images
        over_images = rows is not None and options.zscore_over == "images"
        self.zs = zscore_stats(X, None if over_images else rows)
        self.n_inputs = X.shape[1]
        #: original scripts: constant inputs z-score to 0/0 = NaN, which every output selects (all-NaN result)
        self.nan_everything = options.constant_inputs == "original" and bool(
            _nan_columns(X, self.zs, None if over_images else rows).any()
        )
        batched = options.solver == "batched"
        self.exact_rows = bool(getattr(options, "exact_rows", False))
        self.wide = self.n_inputs > ridge.MAX_GRAM_INPUTS and batched
        if options.float32_rounding:
            self.zs = self.zs.rounded()
        if options.float32_rounding and np.dtype(options.dtype) != np.float32:
            # bdpy's ModelTraining(dtype=float32) rounds the z-scored inputs before the float64 fit
            X = self.zs.apply(X, np.float32).astype(np.float64)
            self.source = ridge.InputMatrix(X, rows, None, None, options.dtype)
        else:
            # z-scored and row-expanded on the fly; per image (the rows' sums) unless exact_rows
            self.source = ridge.InputMatrix(X, rows, self.zs.mean, self.zs.norm, options.dtype)
        self.X = None
        if not self.wide and not (batched and rows is not None and not self.exact_rows):
            self.X = self.source.materialize()  # the row-expanded samples
        self._gram: ridge.GramInputs | None = None

    def fit(self, Y: np.ndarray) -> ridge.RidgeFit:
        """Fit z-scored outputs Y (n_samples, n_outputs).

        Outputs that repeat per image (decoding: the features of the image shown in each sample) are fitted
        from their distinct rows (the per-image algebra of :class:`bhscore.ridge.GramInputs`) unless
        ``exact_rows``.
        """
        o = self.options
        if self.wide or o.solver != "batched":  # one call of the solver; the batched one's Gram is kept below
            X = self.X if self.X is not None else self.source
            return ridge.SOLVERS[o.solver](X, Y, o.alpha, o.n_feat, dtype=o.dtype, device=o.device,
                                           progress=o.progress, exact_rows=self.exact_rows,
                                           solve_dtype=o.solve_dtype)  # fmt: skip
        if self._gram is None:
            X = self.X if self.X is not None else self.source
            self._gram = ridge.GramInputs(X, o.dtype, o.device, exact_rows=self.exact_rows,
                                          solve_dtype=o.solve_dtype)  # fmt: skip
        groups = None
        if not self.exact_rows and not self._gram.per_image and 0 < o.n_feat < self.n_inputs:
            groups = ridge.distinct_rows(Y)
        if groups is not None and groups.worthwhile:
            return self._gram.fit(Y[groups.source_rows], o.alpha, o.n_feat, progress=o.progress,
                                  y_rows=groups.inverse)  # fmt: skip
        return self._gram.fit(Y, o.alpha, o.n_feat, progress=o.progress)


@dataclass
class Outcome:
    """Result of one fit + prediction.

    Attributes
    ----------
    accuracy : ndarray of shape (n_outputs,)
    prediction : ndarray of shape (n_test, n_outputs), float64, in the units of Y
    fit : RidgeFit
    y_stats : ZScore
    """

    accuracy: np.ndarray
    prediction: np.ndarray
    fit: ridge.RidgeFit
    y_stats: ZScore = field(repr=False)

    def subset(self, cols: slice) -> Outcome:
        """The outcome of the outputs ``cols`` only (e.g. one ROI of a multi-ROI encoding fit)."""
        f = self.fit
        if f.selection is None:
            sub = ridge.RidgeFit(f.coef[:, cols], f.b[:, cols], None, f.n_inputs)
        else:
            sub = ridge.RidgeFit(f.coef[cols], f.b[:, cols], f.selection[cols], f.n_inputs)
        ys = ZScore(self.y_stats.mean[cols], self.y_stats.norm[cols], self.y_stats.constant[cols])
        return Outcome(self.accuracy[cols], self.prediction[:, cols], sub, ys)


def fit_predict(
    inputs: TrainingInputs, Y_train: np.ndarray, X_test: np.ndarray, Y_test: np.ndarray
) -> Outcome:
    """Train on z-scored (X, Y), predict the z-scored test inputs, un-z-score, score per output.

    Parameters
    ----------
    inputs : TrainingInputs
    Y_train : ndarray of shape (n_samples, n_outputs)
    X_test : ndarray of shape (n_test, n_inputs)
        Image-averaged test inputs (raw; z-scored here with the training statistics).
    Y_test : ndarray of shape (n_test, n_outputs)
        The true test outputs.
    """
    o = inputs.options
    groups = ridge.distinct_rows(Y_train) if o.zscore_over == "images" else None
    # the original decoding script takes the features' statistics over the distinct training images
    ys = zscore_stats(Y_train if groups is None else Y_train[groups.source_rows])
    if o.float32_rounding:
        # bdpy's ModelTraining / ModelTest with dtype float32: z-scored Y, saved statistics, weights and the
        # z-scored test X are float32 (the fit itself in ``dtype``)
        ys = ys.rounded()
        res = inputs.fit(ys.apply(Y_train, np.float32).astype(o.dtype, copy=False))
        Xt = inputs.zs.apply(X_test, np.float32)
        weights = ridge.RidgeFit(res.coef.astype(np.float32), res.b.astype(np.float32), res.selection,
                                 res.n_inputs)  # fmt: skip
        pred = (weights.predict(Xt) * ys.norm.astype(np.float32) + ys.mean.astype(np.float32)).astype(np.float64)
    else:
        res = inputs.fit(ys.apply(Y_train, o.dtype))
        Xt = inputs.zs.apply(X_test, o.dtype)
        pred = ys.invert(res.predict(Xt))
    if inputs.nan_everything:
        pred = np.full_like(pred, np.nan)
    return Outcome(pearson_columns(pred, Y_test), pred, res, ys)


def require_outputs(n: int, what: str) -> None:
    """A fit needs at least one output (an empty ROI or layer gives no accuracy file)."""
    if n == 0:
        raise UserError(f"{what} has no columns: nothing to fit (check the ROI definition or the features)")
