"""A job's state (done / stale / missing / invalid), its files in a parameter set, and its lock."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bhscore.errors import UserError
from bhscore.kinds import kind_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bhscore.jobs.selection import Job


#: The states of a job: its accuracy file is current / made from other inputs or parameters / absent /
#: unusable (unreadable, truncated, no or foreign provenance record, wrong size).
DONE, STALE, MISSING, INVALID = "done", "stale", "missing", "invalid"
STATES = (DONE, STALE, MISSING, INVALID)


@dataclass(frozen=True)
class JobStatus:
    """A job's state and, unless done, why."""

    state: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


@dataclass
class Outputs:
    """Which outputs a job must leave to count as done."""

    predictions: bool = False
    model: bool = False


class JobFiles:
    """Where one job's files live in its parameter set (all through :class:`bhscore.paths.Layout`)."""

    def __init__(self, layout, settings, job: Job, param_set):
        self.dnn_dir = settings.dnn(job.dnn).dir
        self.job = job
        self.layout = layout
        tree = param_set.directory(layout)
        where = (self.dnn_dir, job.layer, job.subject, job.roi)
        self.accuracy = layout.accuracy_file(tree, *where)
        self.model_dir = layout.model_dir(job.kind, param_set.id, *where)
        self.predictions_dir = (
            layout.decoded_features_dir(param_set.id, *where) if kind_of(job.kind).saves_predictions else None
        )
        # a readable name plus a digest of the exact fields, so that 'a/b' and 'a__b' never share a lock
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(where))[:100]
        digest = hashlib.sha1("\0".join(where).encode()).hexdigest()[:12]
        self.lock = layout.lock_dir / job.kind / param_set.id / f"{readable}.{digest}.lock"

    def status(self, outputs: Outputs, param_set, fingerprints=None) -> JobStatus:
        """Whether the job is done with these parameters and inputs (see :data:`STATES`).

        Parameters
        ----------
        outputs : Outputs
        param_set : bhscore.provenance.ParamSet
        fingerprints : bhscore.provenance.InputFingerprints, optional
            Current input fingerprints; None skips the input check (inputs that are absent are not checked
            either: the record cannot be compared with nothing).
        """
        from bhscore.formats import read_accuracy_file
        from bhscore.provenance import input_changes, job_identity

        if not self.accuracy.exists():
            return JobStatus(MISSING)
        try:
            content = read_accuracy_file(self.accuracy)
        except UserError as e:
            return JobStatus(INVALID, str(e).splitlines()[0])
        record = content.provenance
        if record is None:
            return JobStatus(INVALID, "no provenance record (written by bhscore 0.1 or another tool)")
        if record.get("job") != job_identity(self.job, self.dnn_dir):
            return JobStatus(INVALID, "its provenance record names another job")
        if content.accuracy.size != record.get("n_outputs"):
            return JobStatus(INVALID, f"{content.accuracy.size} values, its record says {record.get('n_outputs')}")
        if record.get("param_set") != param_set.id:
            return JobStatus(STALE, "parameters " + param_set.changes_from(record.get("params", {})))
        if fingerprints is not None:
            try:
                current = fingerprints.of_job(self.job)
            except UserError:  # inputs absent: nothing to compare with
                current = None
            changes = input_changes(record.get("inputs", {}), current) if current is not None else []
            if changes:
                return JobStatus(STALE, "; ".join(changes))
        if outputs.model and not (self.model_dir / "W.mat").exists():  # W.mat is written last
            return JobStatus(MISSING, "no saved model (--save-model)")
        if outputs.predictions and self.predictions_dir is not None:
            have = sum(1 for _ in self.predictions_dir.glob("[!.]*.mat")) if self.predictions_dir.is_dir() else 0
            if have < record.get("n_test_images", 0):
                return JobStatus(MISSING, "no decoded features (--save-features)")
        return JobStatus(DONE)

    def created(self) -> str | None:
        """The creation time in the accuracy file's record (None: no readable record)."""
        from bhscore.formats import read_accuracy_file

        try:
            record = read_accuracy_file(self.accuracy).provenance
        except UserError:
            return None
        return None if record is None else record.get("created")

    def supersede(self, stamp: str) -> list[Path]:
        """Move this job's existing outputs to ``computed/superseded/<stamp>/`` (same relative paths).

        Call only while holding the job's lock. Returns the new locations.
        """
        moved = []
        targets = [self.accuracy, self.model_dir, self.predictions_dir]
        for path in (p for p in targets if p is not None and p.exists()):
            dest = self.layout.superseded_dir(stamp) / path.relative_to(self.layout.computed_root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            moved.append(dest)
        return moved

    def remove_stale_temporaries(self) -> None:
        """Delete hidden temporary files a killed run left (call only while holding the job's lock)."""
        for d in (self.accuracy.parent, self.model_dir, self.predictions_dir):
            if d is not None and d.is_dir():
                for p in d.glob(".*.tmp*"):
                    p.unlink(missing_ok=True)


def try_lock(path: Path):
    """Acquire the lock file ``path`` without waiting; returns the lock or None if another process holds it."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def job_statuses(
    settings, jobs: Sequence[Job], param_set, outputs: Outputs | None = None, check_inputs: bool = True
) -> dict[Job, JobStatus]:
    """The state of each of ``jobs`` in ``param_set`` (see :data:`STATES`).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    jobs : sequence of Job
    param_set : bhscore.provenance.ParamSet
    outputs : Outputs, optional
    check_inputs : bool
        Compare the recorded input fingerprints with the current files (content digests are cached, so
        this costs a ``stat`` per input file after the first time).
    """
    from bhscore.paths import Layout
    from bhscore.provenance import InputFingerprints

    layout = Layout.from_settings(settings)
    fingerprints = InputFingerprints(settings, layout) if check_inputs else None
    outputs = outputs or Outputs()
    out = {job: JobFiles(layout, settings, job, param_set).status(outputs, param_set, fingerprints) for job in jobs}
    if fingerprints is not None:
        fingerprints.save()
    return out
