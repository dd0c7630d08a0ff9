"""Writing one job's outputs: optional decoded features and model, then the accuracy file with its record."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bhscore.fitting import Outcome, ZScore
from bhscore.kinds import kind_of

log = logging.getLogger(__name__)


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
        if self.save_predictions and kind_of(job.kind).saves_predictions:
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
