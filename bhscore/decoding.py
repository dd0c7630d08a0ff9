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

The pieces shared with encoding live in :mod:`bhscore.fitting` (z-scoring, the fit/predict core,
accuracy), :mod:`bhscore.datastore` (data access) and :mod:`bhscore.results` (writing a job's outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bhscore.datastore import DataStore
from bhscore.fitting import RidgeOptions, TrainingInputs, fit_predict, require_outputs, sample_rows
from bhscore.results import ResultWriter

log = logging.getLogger(__name__)


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
    require_outputs(X.shape[1], f"ROI {roi!r} of {subject} ({store.layout.fmri_file(subject, TRAINING)})")
    inputs = TrainingInputs(X, options)
    train_images = fm.train_images
    for job in jobs:
        what = f"{job.dnn} layer {job.layer!r} for {subject}"
        F_train = store.features(job.dnn, job.layer, TRAINING, train_images)
        Y_train = F_train[sample_rows(fm.train_labels, train_images, what)]
        Y_test, n_bad = store.features_checked(job.dnn, job.layer, TEST, fm.test_names)
        require_outputs(Y_train.shape[1], f"features of {what}")
        log.debug("decoding %s: X %s, Y %s", job, X.shape, Y_train.shape)
        outcome = fit_predict(inputs, Y_train, fm.test[roi], Y_test)
        non_finite = {k: v for k, v in (("fmri_test", fm.non_finite.get(roi, 0)), ("features_test", n_bad)) if v}
        writer.write(job, outcome, inputs.zs, fm.test_names, len(fm.train_labels), non_finite)
        if on_done is not None:
            on_done(job)
