"""Feature decoding: DNN units predicted from brain activity, one accuracy per unit.

One job = (DNN, layer, subject, ROI):

1. X = the ROI's voxels of the training samples, Y = the layer's units of the image shown in each sample,
   matched by stimulus name (never by position). Both are z-scored with the training mean and the standard
   deviation with ddof=1; a constant column (zero spread) becomes exactly 0 instead of inf/NaN.
2. FastL2LiR (:mod:`bhscore.ridge`, or the reference package with ``solver='fastl2lir'``).
3. The test samples are averaged per image, z-scored with the training X statistics, predicted, and
   un-z-scored with the training Y statistics.
4. Accuracy per unit = Pearson r across the test images (NaN for a unit whose prediction or truth is
   constant), written to ``decoding_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat``.

Shared work: the voxels of one (subject, ROI) and their Gram serve every layer of every DNN, so jobs are run
in groups (:func:`run_decoding_group`). Optional outputs (decoded features, bdmodel decoders) are written
before the accuracy file, which is written last and atomically: it is the job's completion marker.

The pieces shared with encoding (z-scoring, the fit/predict core, accuracy, data access) live here too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bhscore import ridge
from bhscore.errors import UserError

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------
# numerics shared by decoding and encoding
# -------------------------------------------------------------------------------------------------


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


# -------------------------------------------------------------------------------------------------
# the fit / predict core (both directions)
# -------------------------------------------------------------------------------------------------


@dataclass
class RidgeOptions:
    """How to fit: FastL2LiR parameters, solver and device.

    Attributes
    ----------
    alpha, n_feat, dtype : from ``settings.analysis.decoding`` / ``.encoding``
    solver : {'ours', 'fastl2lir'}
    device : str or None
        For solver 'ours': 'cpu', 'cuda', ... ; None: CUDA when available.
    """

    alpha: float = 100.0
    n_feat: int = 500
    dtype: str = "float64"
    solver: str = "ours"
    device: str | None = None
    progress: bool = False

    @classmethod
    def from_settings(cls, ridge_settings, **overrides) -> RidgeOptions:
        kw = dict(alpha=ridge_settings.alpha, n_feat=ridge_settings.n_feat, dtype=ridge_settings.dtype)
        kw.update({k: v for k, v in overrides.items() if v is not None})
        if kw.get("solver", "ours") not in ridge.SOLVERS:
            raise UserError(f"solver must be one of {', '.join(ridge.SOLVERS)}, got {kw['solver']!r}")
        return cls(**kw)


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
        self.zs = zscore_stats(X, rows)
        self.n_inputs = X.shape[1]
        self.wide = self.n_inputs > ridge.MAX_GRAM_INPUTS and options.solver == "ours"
        if self.wide:  # never materialise: z-score and expand rows on the fly
            self.source = ridge.InputMatrix(X, rows, self.zs.mean, self.zs.norm, options.dtype)
            self.X = None
        else:
            Xs = np.asarray(X) if rows is None else np.asarray(X)[rows]
            self.X = self.zs.apply(Xs, options.dtype)
            self.source = None
        self._gram: ridge.GramInputs | None = None

    def fit(self, Y: np.ndarray) -> ridge.RidgeFit:
        """Fit z-scored outputs Y (n_samples, n_outputs)."""
        o = self.options
        if o.solver == "fastl2lir":
            return ridge.fit_reference(self.X, Y, o.alpha, o.n_feat, o.dtype)
        if self.wide:
            return ridge.fit(
                self.source, Y, o.alpha, o.n_feat, dtype=o.dtype, device=o.device, progress=o.progress
            )
        if self._gram is None:
            self._gram = ridge.GramInputs(self.X, o.dtype, o.device)
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
    ys = zscore_stats(Y_train)
    res = inputs.fit(ys.apply(Y_train, inputs.options.dtype))
    Xt = inputs.zs.apply(X_test, inputs.options.dtype)
    pred = ys.invert(res.predict(Xt))
    return Outcome(pearson_columns(pred, Y_test), pred, res, ys)


# -------------------------------------------------------------------------------------------------
# data access (fMRI per subject, features per layer), cached for a group of jobs
# -------------------------------------------------------------------------------------------------


@dataclass
class SubjectFMRI:
    """One subject's training samples and image-averaged test data for some ROIs."""

    train: dict[str, np.ndarray]  # roi -> (n_samples, n_voxels)
    train_labels: list[str]
    test: dict[str, np.ndarray]  # roi -> (n_test_images, n_voxels)
    test_names: list[str]

    @property
    def train_images(self) -> list[str]:
        return sorted(set(self.train_labels))


class DataStore:
    """Reads fMRI and features through :mod:`bhscore.formats`, keeping the last subject and a few layers.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    """

    def __init__(self, settings, max_layers: int = 2):
        from bhscore.paths import Layout

        self.settings = settings
        self.layout = Layout.from_settings(settings)
        self._subject: tuple[str, SubjectFMRI] | None = None
        self._layers: dict[tuple, np.ndarray] = {}
        self.max_layers = max_layers

    def fmri(self, subject: str) -> SubjectFMRI:
        from bhscore.formats import average_by_label, read_fmri
        from bhscore.paths import TEST, TRAINING

        if self._subject is not None and self._subject[0] == subject:
            return self._subject[1]
        self._subject = None
        rois = list(self.settings.rois)
        tr = read_fmri(self.layout.fmri_file(subject, TRAINING), rois)
        te = read_fmri(self.layout.fmri_file(subject, TEST), rois)
        test, names = {}, None
        for roi in rois:
            test[roi], names = average_by_label(te.rois[roi], te.labels)
        data = SubjectFMRI(tr.rois, tr.labels, test, names)
        self._subject = (subject, data)
        return data

    def features(self, dnn: str, layer: str, split: str, images: Sequence[str]) -> np.ndarray:
        """Features (len(images), n_units) float32 of ``images`` (error naming any image without a file)."""
        from bhscore.formats import read_layer

        d = self.settings.dnn(dnn)
        key = (dnn, layer, split, tuple(images))
        if key not in self._layers:
            while len(self._layers) >= self.max_layers:
                self._layers.pop(next(iter(self._layers)))
            self._layers[key] = read_layer(
                self.layout.features_dir(split, d.dir),
                layer,
                labels=list(images),
                cache_dir=self.layout.feature_cache_dir(split, d.dir),
            )
        return self._layers[key]


# -------------------------------------------------------------------------------------------------
# writing one job's outputs
# -------------------------------------------------------------------------------------------------


def write_outputs(
    layout,
    kind: str,
    dnn_dir: str,
    layer: str,
    subject: str,
    roi: str,
    outcome: Outcome,
    x_stats: ZScore,
    test_names: Sequence[str],
    save_predictions: bool = False,
    save_model: bool = False,
) -> None:
    """Write the optional outputs, then the accuracy file (atomic, last: the completion marker)."""
    from bhscore import formats

    if save_predictions and kind == "decoding":
        out_dir = layout.decoded_features_dir(dnn_dir, layer, subject, roi)
        for name, row in zip(test_names, outcome.prediction, strict=True):
            formats.save_feature(out_dir / f"{name}.mat", row[None, :])
    if save_model:
        formats.save_bdmodel(
            layout.model_dir(kind, dnn_dir, layer, subject, roi),
            outcome.fit.W,
            outcome.fit.b,
            x_stats.mean[None, :],
            x_stats.norm[None, :],
            outcome.y_stats.mean[None, :],
            outcome.y_stats.norm[None, :],
        )
    formats.write_accuracy(
        layout.accuracy_file(kind, dnn_dir, layer, subject, roi), outcome.accuracy, n_samples=len(test_names)
    )


# -------------------------------------------------------------------------------------------------
# decoding jobs
# -------------------------------------------------------------------------------------------------


def run_decoding_group(
    store: DataStore,
    subject: str,
    roi: str,
    items: Sequence[tuple[str, str]],
    options: RidgeOptions,
    save_predictions: bool = False,
    save_model: bool = False,
    on_done=None,
) -> None:
    """Decode several (dnn, layer) pairs from one (subject, ROI), sharing the voxels' preparation.

    Parameters
    ----------
    store : DataStore
    subject, roi : str
    items : sequence of (dnn name, layer)
    options : RidgeOptions
    save_predictions, save_model : bool
        Also write decoded test features / the trained decoders (bdmodel).
    on_done : callable, optional
        Called with each (dnn, layer) once its accuracy file is written.
    """
    from bhscore.paths import TEST, TRAINING

    fm = store.fmri(subject)
    X = fm.train[roi]
    inputs = TrainingInputs(X, options)
    train_images = fm.train_images
    for dnn, layer in items:
        what = f"{dnn} layer {layer!r} for {subject}"
        F_train = store.features(dnn, layer, TRAINING, train_images)
        Y_train = F_train[sample_rows(fm.train_labels, train_images, what)]
        Y_test = store.features(dnn, layer, TEST, fm.test_names)
        log.debug("decoding %s %s %s %s: X %s, Y %s", dnn, layer, subject, roi, X.shape, Y_train.shape)
        outcome = fit_predict(inputs, Y_train, fm.test[roi], Y_test)
        write_outputs(
            store.layout,
            "decoding",
            store.settings.dnn(dnn).dir,
            layer,
            subject,
            roi,
            outcome,
            inputs.zs,
            fm.test_names,
            save_predictions=save_predictions,
            save_model=save_model,
        )
        if on_done is not None:
            on_done((dnn, layer))
