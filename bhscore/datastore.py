"""Data access for a group of jobs: each subject's fMRI and each layer's features, read, checked and cached."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bhscore.errors import UserError
from bhscore.kinds import kind_of

log = logging.getLogger(__name__)


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
        """Units' column order as inputs (:meth:`bhscore.kinds.Kind.unit_order`): None when it is the files'
        own (C order, decoding, or units that are already a flat vector)."""
        from bhscore.formats import feature_shape, fortran_unit_order
        from bhscore.paths import TRAINING

        if kind_of(self.kind).unit_order(self.settings) != "fortran":
            return None
        features_dir, _ = self.layout.input_features(self.settings, self.kind, TRAINING, dnn)
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
