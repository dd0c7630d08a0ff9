"""Voxel encoding: brain activity predicted from DNN units, one accuracy per voxel.

The decoding job with the roles swapped (:mod:`bhscore.decoding`): X = the layer's units of the image shown in
each training sample (z-scored over the samples), Y = the ROI's voxels; per voxel the ``n_feat`` units with
the largest \\|r\\| are selected (alpha on the whole diagonal, bias included); float32 in the original.
Accuracy per voxel = Pearson r between predicted and image-averaged measured test responses, written to
``encoding_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat``.

Shared work: one layer's units serve all ROIs of a subject, so the ROIs of a (DNN, layer, subject) are fitted
together as one multi-output fit (each output is fitted independently, so this equals separate fits) and
split when written. The features are kept per image and expanded to samples by index; layers wider than
:data:`bhscore.ridge.MAX_GRAM_INPUTS` units (the paper's encoding used all units of a layer, up to ~300k) go
through the wide-input solver, which z-scores and expands columns on the fly and never forms the units' Gram.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from bhscore.decoding import DataStore, RidgeOptions, TrainingInputs, fit_predict, sample_rows, write_outputs

log = logging.getLogger(__name__)


def run_encoding_group(
    store: DataStore,
    dnn: str,
    layer: str,
    subject: str,
    rois: Sequence[str],
    options: RidgeOptions,
    save_model: bool = False,
    on_done=None,
) -> None:
    """Encode the voxels of ``rois`` of one subject from one layer (one fit for all the ROIs).

    Parameters
    ----------
    store : DataStore
    dnn, layer, subject : str
    rois : sequence of str
    options : RidgeOptions
    save_model : bool
        Also write the trained encoders (bdmodel), one per ROI.
    on_done : callable, optional
        Called with each ROI once its accuracy file is written.
    """
    from bhscore.paths import TEST, TRAINING

    fm = store.fmri(subject)
    train_images = fm.train_images
    what = f"{dnn} layer {layer!r} for {subject}"
    F_train = store.features(dnn, layer, TRAINING, train_images)  # (n_images, n_units)
    rows = sample_rows(fm.train_labels, train_images, what)
    inputs = TrainingInputs(F_train, options, rows=rows)
    X_test = store.features(dnn, layer, TEST, fm.test_names)
    Y_train = np.hstack([fm.train[r] for r in rois])
    Y_test = np.hstack([fm.test[r] for r in rois])
    log.debug(
        "encoding %s %s %s %s: X %s, Y %s", dnn, layer, subject, list(rois), F_train.shape, Y_train.shape
    )
    outcome = fit_predict(inputs, Y_train, X_test, Y_test)
    start = 0
    dnn_dir = store.settings.dnn(dnn).dir
    for roi in rois:
        cols = slice(start, start + fm.train[roi].shape[1])
        start = cols.stop
        write_outputs(
            store.layout, "encoding", dnn_dir, layer, subject, roi, outcome.subset(cols), inputs.zs,
            fm.test_names, save_model=save_model,
        )  # fmt: skip
        if on_done is not None:
            on_done(roi)
