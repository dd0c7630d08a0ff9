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


# -------------------------------------------------------------------------------------------------
# the fit / predict core (both directions)
# -------------------------------------------------------------------------------------------------


#: The solvers: bhscore's batched FastL2LiR (CPU/CUDA) and the reference package.
SOLVERS = ("batched", "fastl2lir")


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
    constant_inputs, zscore_over, float32_rounding
        How the original scripts' numerics are reproduced (``RidgeSettings``; docs/method.md, "Reproducing the
        published accuracies: options").
    """

    alpha: float = 100.0
    n_feat: int = 500
    dtype: str = "float64"
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
        if kw.get("solver", "batched") not in SOLVERS:
            raise UserError(f"solver must be one of {', '.join(SOLVERS)}, got {kw['solver']!r}")
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
        if o.solver == "fastl2lir":
            X = self.X if self.X is not None else self.source.materialize()
            return ridge.fit_reference(X, Y, o.alpha, o.n_feat, o.dtype)
        if self.wide:
            return ridge.fit(self.source, Y, o.alpha, o.n_feat, dtype=o.dtype, device=o.device,
                             progress=o.progress, exact_rows=self.exact_rows)  # fmt: skip
        if self._gram is None:
            X = self.X if self.X is not None else self.source
            self._gram = ridge.GramInputs(X, o.dtype, o.device, exact_rows=self.exact_rows)
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


# -------------------------------------------------------------------------------------------------
# data access (fMRI per subject, features per layer), cached for a group of jobs
# -------------------------------------------------------------------------------------------------


@dataclass
class SubjectFMRI:
    """One subject's training samples and image-averaged test data for some ROIs.

    Attributes
    ----------
    non_finite : dict of str -> int
        ROI -> number of non-finite image-averaged test values (only with ``non_finite='propagate'``).
    """

    train: dict[str, np.ndarray]  # roi -> (n_samples, n_voxels)
    train_labels: list[str]
    test: dict[str, np.ndarray]  # roi -> (n_test_images, n_voxels)
    test_names: list[str]
    non_finite: dict[str, int] = field(default_factory=dict)

    @property
    def train_images(self) -> list[str]:
        return sorted(set(self.train_labels))


class NonFiniteInputError(UserError):
    """NaN or Inf in an input array; the message names the file, the sample and the column."""


def check_finite(
    X: np.ndarray, what: str, row_name, column_name, remedy: str, allow: bool = False
) -> int:
    """Count the non-finite values of ``X`` (n_rows, n_cols); raise unless ``allow``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_cols)
    what : str
        The file (or files) the array came from, for the message.
    row_name, column_name : callable
        ``row_name(i)`` / ``column_name(j)`` describe row i / column j (e.g. "sample 12 (n01443537_22563)").
    remedy : str
        What the user can do, appended to the message.
    allow : bool
        Return the count (and log a warning) instead of raising.

    Returns
    -------
    int
        Number of non-finite values.
    """
    bad = ~np.isfinite(X)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return 0
    i, j = (int(v) for v in np.argwhere(bad)[0])
    msg = f"{what}: {n_bad} non-finite value(s) (NaN/Inf), the first at {row_name(i)}, {column_name(j)}"
    if not allow:
        raise NonFiniteInputError(f"{msg}. {remedy}")
    log.warning("%s; kept (non_finite: propagate): the affected accuracies are NaN", msg)
    return n_bad


class DataStore:
    """Reads fMRI and features through :mod:`bhscore.formats`, keeping the last subject and a few layers.

    Every array is checked as it is read: training data must be finite; non-finite test data stops the run
    (``non_finite='error'``) or is kept, warned about and counted for the provenance record
    (``'propagate'``, the original scripts' behaviour). Training and test voxel counts must agree.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    non_finite : {'error', 'propagate'}
    kind : {'decoding', 'encoding'}
        Only for the messages (the setting to change).
    """

    def __init__(self, settings, max_layers: int = 2, non_finite: str = "error", kind: str = "decoding"):
        from bhscore.paths import Layout

        self.settings = settings
        self.layout = Layout.from_settings(settings)
        self._subject: tuple[str, SubjectFMRI] | None = None
        self._layers: dict[tuple, tuple[np.ndarray, int]] = {}
        self.max_layers = max_layers
        self.allow_non_finite = non_finite == "propagate"
        self._setting = f"analysis.{kind}.non_finite"
        self.kind = kind  # which features tree the inputs come from (analysis.encoding.inputs)

    def _remedy(self, test: bool) -> str:
        if not test:
            return "The training data must be finite: fix or exclude these values and rerun."
        return (
            "Fix or exclude these values and rerun, or set "
            f"{self._setting} to 'propagate' for the original scripts' behaviour (NaN accuracies, recorded)."
        )

    def fmri(self, subject: str) -> SubjectFMRI:
        from bhscore.formats import average_by_label, read_fmri
        from bhscore.paths import TEST, TRAINING

        if self._subject is not None and self._subject[0] == subject:
            return self._subject[1]
        self._subject = None
        rois = list(self.settings.rois)
        paths = {split: self.layout.fmri_file(subject, split) for split in (TRAINING, TEST)}
        tr = read_fmri(paths[TRAINING], rois)
        te = read_fmri(paths[TEST], rois)
        test, names, non_finite = {}, None, {}
        for roi in rois:
            n_train, n_test = tr.rois[roi].shape[1], te.rois[roi].shape[1]
            if n_train != n_test:
                raise UserError(
                    f"ROI {roi!r} of {subject} has {n_train} voxels in {paths[TRAINING]} but {n_test} in "
                    f"{paths[TEST]}: the two files must come from the same preprocessing (re-download them)"
                )
            voxel = lambda j, roi=roi: f"ROI {roi} voxel {j}"  # noqa: E731
            check_finite(tr.rois[roi], str(paths[TRAINING]),
                         lambda i: f"sample {i} ({tr.labels[i]})", voxel, self._remedy(False))  # fmt: skip
            check_finite(te.rois[roi], str(paths[TEST]), lambda i: f"sample {i} ({te.labels[i]})", voxel,
                         self._remedy(True), allow=self.allow_non_finite)  # fmt: skip
            test[roi], names = average_by_label(te.rois[roi], te.labels)
            n_bad = int((~np.isfinite(test[roi])).sum())
            if n_bad:
                non_finite[roi] = n_bad
        data = SubjectFMRI(tr.rois, tr.labels, test, names, non_finite)
        self._subject = (subject, data)
        return data

    def features(self, dnn: str, layer: str, split: str, images: Sequence[str]) -> np.ndarray:
        """Features (len(images), n_units) float32 of ``images`` (error naming any image without a file)."""
        return self.features_checked(dnn, layer, split, images)[0]

    def unit_order(self, dnn: str, layer: str) -> np.ndarray | None:
        """Encoding inputs' column order (``analysis.encoding.unit_order``): None when it is the files' own
        (C order, or units that are already a flat vector)."""
        from bhscore.formats import feature_shape, fortran_unit_order
        from bhscore.paths import TRAINING

        if self.settings.analysis.encoding.unit_order != "fortran":
            return None
        features_dir, _ = self.layout.input_features(self.settings, "encoding", TRAINING, dnn)
        shape = feature_shape(features_dir, layer)
        return fortran_unit_order(shape) if sum(d > 1 for d in shape) > 1 else None

    def features_checked(
        self, dnn: str, layer: str, split: str, images: Sequence[str]
    ) -> tuple[np.ndarray, int]:
        """Features as :meth:`features`, and their number of non-finite values (kept only for the test set)."""
        from bhscore.formats import read_layer
        from bhscore.paths import TEST

        key = (dnn, layer, split, tuple(images))
        if key not in self._layers:
            while len(self._layers) >= self.max_layers:
                self._layers.pop(next(iter(self._layers)))
            features_dir, cache_dir = self.layout.input_features(self.settings, self.kind, split, dnn)
            F = read_layer(features_dir, layer, labels=list(images), cache_dir=cache_dir)
            test = split == TEST
            n_bad = check_finite(
                F, f"features of {dnn} layer {layer!r} ({split})",
                lambda i: f"image {images[i]} ({features_dir / layer / images[i]}.mat)", lambda j: f"unit {j}",
                self._remedy(test), allow=test and self.allow_non_finite,
            )  # fmt: skip
            self._layers[key] = (F, n_bad)
        return self._layers[key]


# -------------------------------------------------------------------------------------------------
# writing one job's outputs
# -------------------------------------------------------------------------------------------------


class ResultWriter:
    """Writes a job's outputs into its parameter set, the accuracy file last with its provenance record.

    Parameters
    ----------
    layout : bhscore.paths.Layout
    settings : bhscore.settings.Settings
    param_set : bhscore.provenance.ParamSet
    fingerprints : bhscore.provenance.InputFingerprints
    options : RidgeOptions
        Recorded as the run's device and solver.
    save_predictions, save_model : bool
        Also write decoded test features (decoding) / trained models (bdmodel).
    """

    def __init__(self, layout, settings, param_set, fingerprints, options, save_predictions=False, save_model=False):
        self.layout = layout
        self.settings = settings
        self.param_set = param_set
        self.fingerprints = fingerprints
        self.save_predictions = save_predictions
        self.save_model = save_model
        self.run_info = {"device": options.device or "auto", "solver": options.solver}

    def write(
        self,
        job,
        outcome: Outcome,
        x_stats: ZScore,
        test_names: Sequence[str],
        n_train_samples: int,
        non_finite: dict | None = None,
    ) -> None:
        """Write the optional outputs, then the accuracy file (atomic, last: the completion marker).

        Parameters
        ----------
        job : bhscore.jobs.Job
        outcome : Outcome
            Of this job's outputs only.
        x_stats : ZScore
            Training statistics of the inputs (saved with the model).
        test_names : sequence of str
            The test images, in the rows' order.
        n_train_samples : int
        non_finite : dict, optional
            Counts of non-finite test values that were kept (``non_finite='propagate'``), for the record.
        """
        import torch

        from bhscore import formats
        from bhscore.provenance import make_record

        dnn_dir = self.settings.dnn(job.dnn).dir
        where = (dnn_dir, job.layer, job.subject, job.roi)
        if self.save_predictions and job.kind == "decoding":
            out_dir = self.layout.decoded_features_dir(self.param_set.id, *where)
            for name, row in zip(test_names, outcome.prediction, strict=True):
                formats.save_feature(out_dir / f"{name}.mat", row[None, :])
        if self.save_model:
            formats.save_bdmodel(
                self.layout.model_dir(job.kind, self.param_set.id, *where),
                outcome.fit.W, outcome.fit.b,
                x_stats.mean[None, :], x_stats.norm[None, :],
                outcome.y_stats.mean[None, :], outcome.y_stats.norm[None, :],
            )  # fmt: skip
        if non_finite:
            log.warning("%s: %s non-finite test value(s) kept; NaN accuracies are recorded", job, non_finite)
        record = make_record(
            job, dnn_dir, self.param_set, self.fingerprints.of_job(job),
            n_inputs=x_stats.mean.size, n_outputs=outcome.accuracy.size, n_train_samples=n_train_samples,
            n_test_images=len(test_names), run={**self.run_info, "threads": torch.get_num_threads()},
            non_finite=non_finite,
        )  # fmt: skip
        path = self.layout.accuracy_file(self.param_set.directory(self.layout), *where)
        formats.write_accuracy(path, outcome.accuracy, n_samples=len(test_names), provenance=record)


def _require_outputs(n: int, what: str) -> None:
    """A fit needs at least one output (an empty ROI or layer gives no accuracy file)."""
    if n == 0:
        raise UserError(f"{what} has no columns: nothing to fit (check the ROI definition or the features)")


# -------------------------------------------------------------------------------------------------
# decoding jobs
# -------------------------------------------------------------------------------------------------


def run_decoding_group(store: DataStore, jobs: Sequence, options: RidgeOptions, writer: ResultWriter, on_done=None):
    """Decode several (DNN, layer) jobs of one (subject, ROI), sharing the voxels' preparation.

    Parameters
    ----------
    store : DataStore
    jobs : sequence of bhscore.jobs.Job
        Decoding jobs with the same subject and ROI.
    options : RidgeOptions
    writer : ResultWriter
    on_done : callable, optional
        Called with each job once its accuracy file is written.
    """
    from bhscore.paths import TEST, TRAINING

    subject, roi = jobs[0].subject, jobs[0].roi
    fm = store.fmri(subject)
    X = fm.train[roi]
    _require_outputs(X.shape[1], f"ROI {roi!r} of {subject} ({store.layout.fmri_file(subject, TRAINING)})")
    inputs = TrainingInputs(X, options)
    train_images = fm.train_images
    for job in jobs:
        what = f"{job.dnn} layer {job.layer!r} for {subject}"
        F_train = store.features(job.dnn, job.layer, TRAINING, train_images)
        Y_train = F_train[sample_rows(fm.train_labels, train_images, what)]
        Y_test, n_bad = store.features_checked(job.dnn, job.layer, TEST, fm.test_names)
        _require_outputs(Y_train.shape[1], f"features of {what}")
        log.debug("decoding %s: X %s, Y %s", job, X.shape, Y_train.shape)
        outcome = fit_predict(inputs, Y_train, fm.test[roi], Y_test)
        non_finite = {k: v for k, v in (("fmri_test", fm.non_finite.get(roi, 0)), ("features_test", n_bad)) if v}
        writer.write(job, outcome, inputs.zs, fm.test_names, len(fm.train_labels), non_finite)
        if on_done is not None:
            on_done(job)
