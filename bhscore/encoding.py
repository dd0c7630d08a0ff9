"""Voxel encoding: brain activity predicted from DNN units, one accuracy per voxel.

The decoding job with the roles swapped (:mod:`bhscore.decoding`, :mod:`bhscore.kinds`): X = the layer's units of the image shown in
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

from bhscore.datastore import DataStore
from bhscore.fitting import RidgeOptions, TrainingInputs, fit_predict, require_outputs, sample_rows
from bhscore.results import ResultWriter

log = logging.getLogger(__name__)


def run_encoding_group(store: DataStore, jobs: Sequence, options: RidgeOptions, writer: ResultWriter, on_done=None):
    """Encode the voxels of several ROIs of one subject from one layer (one fit for all the ROIs).

    Parameters
    ----------
    store : DataStore
    jobs : sequence of bhscore.jobs.Job
        Encoding jobs with the same DNN, layer and subject (one per ROI).
    options : RidgeOptions
    writer : ResultWriter
    on_done : callable, optional
        Called with each job once its accuracy file is written.
    """
    from bhscore.paths import TEST, TRAINING

    dnn, layer, subject = jobs[0].dnn, jobs[0].layer, jobs[0].subject
    fm = store.fmri(subject)
    train_images = fm.train_images
    what = f"{dnn} layer {layer!r} for {subject}"
    F_train = store.features(dnn, layer, TRAINING, train_images)  # (n_images, n_units)
    require_outputs(F_train.shape[1], f"features of {what}")
    rows = sample_rows(fm.train_labels, train_images, what)
    X_test, n_bad = store.features_checked(dnn, layer, TEST, fm.test_names)
    order = store.unit_order(dnn, layer)
    if order is not None:  # the original's Fortran flattening: only ties at the n_feat-th unit can differ
        F_train, X_test = F_train[:, order], X_test[:, order]
    inputs = TrainingInputs(F_train, options, rows=rows)
    for job in jobs:
        require_outputs(fm.train[job.roi].shape[1],
                         f"ROI {job.roi!r} of {subject} ({store.layout.fmri_file(subject, TRAINING)})")  # fmt: skip
    Y_train = np.hstack([fm.train[j.roi] for j in jobs])
    Y_test = np.hstack([fm.test[j.roi] for j in jobs])
    log.debug("encoding %s %s %s %s: X %s, Y %s", dnn, layer, subject, [j.roi for j in jobs], F_train.shape,
              Y_train.shape)  # fmt: skip
    outcome = fit_predict(inputs, Y_train, X_test, Y_test)
    start = 0
    for job in jobs:
        cols = slice(start, start + fm.train[job.roi].shape[1])
        start = cols.stop
        non_finite = {k: v for k, v in (("fmri_test", fm.non_finite.get(job.roi, 0)), ("features_test", n_bad)) if v}
        writer.write(job, outcome.subset(cols), inputs.zs, fm.test_names, len(fm.train_labels), non_finite)
        if on_done is not None:
            on_done(job)
