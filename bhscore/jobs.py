"""Decoding and encoding jobs: lists from the settings, sharding, one lock per job, skip-if-done.

A job is one (kind, DNN, layer, subject, ROI) and writes one accuracy file of its parameter set
(:mod:`bhscore.provenance`), atomically and last, with its provenance record inside. A job is *done* only
when that file is readable, of the right size, and its record names this job, this parameter set and the
current fingerprints of its inputs; otherwise it is *stale* (inputs or parameters changed: the reason is
given), *missing* or *invalid*. A run computes missing jobs and recomputes stale and invalid ones (``force``:
all), first moving the old files to ``computed/superseded/<time>/``, so nothing computed is ever lost. Jobs
that share inputs run as a group (decoding: one (subject, ROI), whose voxels serve every layer of every DNN;
encoding: one (DNN, layer, subject), whose units serve every ROI).

Running in parallel, on one machine or many sharing a filesystem:

- every job is guarded by a lock file (``filelock``, released by the OS if the process dies), so workers
  started on the same job list never run the same job; a worker skips jobs locked by others;
- ``--shard I/N`` gives worker I (0-based) the I-th of N shards of the job list (for batch arrays, e.g.
  SLURM's ``$SLURM_ARRAY_TASK_ID``): a shard is a run of whole groups, so every group's inputs are loaded
  and prepared by one worker only, and shards hold near-equal job counts (more shards than groups leave
  some empty);
- a killed job leaves no accuracy file (and its hidden temporary files are removed by the next worker that
  takes the job), so a rerun finishes exactly the missing jobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bhscore.errors import UserError

log = logging.getLogger(__name__)

KINDS = ("decoding", "encoding")


@dataclass(frozen=True)
class Job:
    """One accuracy file to compute."""

    kind: str
    dnn: str
    layer: str
    subject: str
    roi: str

    @property
    def group(self) -> tuple[str, ...]:
        """Jobs with the same group share their inputs and run together."""
        if self.kind == "decoding":
            return (self.subject, self.roi)
        return (self.dnn, self.layer, self.subject)

    def __str__(self) -> str:
        return f"{self.kind} {self.dnn} {self.layer} {self.subject} {self.roi}"


# -------------------------------------------------------------------------------------------------
# job lists
# -------------------------------------------------------------------------------------------------


def list_jobs(
    settings,
    kind: str,
    dnns: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    rois: Sequence[str] | None = None,
) -> list[Job]:
    """All jobs of ``kind`` for the selected DNNs/layers/subjects/ROIs (default: all), grouped in order.

    Raises
    ------
    SettingsError / UserError
        An unknown DNN, subject or ROI, or a layer that none of the selected DNNs has (the message lists
        the valid choices).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    dnns = list(dnns) if dnns else list(settings.dnns)
    for d in dnns:
        settings.dnn(d)
    subjects = (
        [settings.check_choice("subject", s) for s in subjects] if subjects else list(settings.subjects)
    )
    rois = [settings.check_choice("roi", r) for r in rois] if rois else list(settings.rois)
    if layers:
        known = {layer for d in dnns for layer in settings.dnns[d].layers}
        bad = [layer for layer in layers if layer not in known]
        if bad:
            raise UserError(
                f"unknown layer(s) {bad} for DNN(s) {', '.join(dnns)}; valid: {', '.join(sorted(known))}"
            )
    pairs = [(d, layer) for d in dnns for layer in settings.dnns[d].layers if not layers or layer in layers]
    if kind == "decoding":
        return [Job(kind, d, layer, s, r) for s in subjects for r in rois for d, layer in pairs]
    return [Job(kind, d, layer, s, r) for d, layer in pairs for s in subjects for r in rois]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N): shard I (0-based) of N, 0 <= I < N.

    Raises
    ------
    UserError
        Not two integers separated by ``/``, or I outside 0..N-1 (the message shows the valid range).
    """
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must be I/N with integers, e.g. 0/4 (0 <= I < N), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        valid = f"0..{n - 1}" if n >= 1 else "none (N must be >= 1)"
        raise UserError(f"--shard {text}: I is 0-based and must be in {valid}")
    return i, n


def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Shard ``index`` of ``count``: a contiguous run of whole groups, near-equal in job count.

    Groups (:attr:`Job.group`: jobs that share their inputs) are never split, so no two workers load and
    prepare the same inputs. A group covering jobs ``[start, start + size)`` of the list goes to the shard
    that holds its middle, ``floor(count * (start + size / 2) / n_jobs)``: every shard holds
    ``n_jobs / count`` jobs give or take one group (with equal groups, the shards' group counts differ by
    at most one), and more shards than groups leave some shards empty. The shards partition ``jobs``.

    Parameters
    ----------
    jobs : sequence of Job
        As :func:`list_jobs` orders them (each group's jobs consecutive); a group whose jobs are scattered
        is gathered at its first job.
    index, count : int
        0 <= index < count.

    Returns
    -------
    list of Job
        The shard's jobs in the order of ``jobs``.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"need 0 <= index < count, got {index}/{count}")
    groups = grouped(jobs)
    n_jobs = sum(map(len, groups))
    mine: list[Job] = []
    start = 0
    for group in groups:
        # integer form of floor(count * (start + size / 2) / n_jobs): exact, always < count
        if count * (2 * start + len(group)) // (2 * n_jobs) == index:
            mine.extend(group)
        start += len(group)
    return mine


def grouped(jobs: Iterable[Job]) -> list[list[Job]]:
    """Consecutive runs of jobs with the same group (the order of :func:`list_jobs` keeps groups together)."""
    out: list[list[Job]] = []
    index: dict[tuple, list[Job]] = {}
    for job in jobs:
        g = index.get(job.group)
        if g is None:
            g = index[job.group] = []
            out.append(g)
        g.append(job)
    return out


# -------------------------------------------------------------------------------------------------
# job states, files and locks
# -------------------------------------------------------------------------------------------------

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
            layout.decoded_features_dir(param_set.id, *where) if job.kind == "decoding" else None
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


# -------------------------------------------------------------------------------------------------
# running
# -------------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What a run did.

    Attributes
    ----------
    before : dict of str -> int
        Number of selected jobs in each state before the run.
    recomputed : list of Job
        Jobs run although a file was there (stale, invalid, or ``force``); their old files were moved.
    superseded_dir : Path or None
        Where the old files went.
    """

    total: int = 0
    already_done: int = 0
    ran: list[Job] = field(default_factory=list)
    locked: list[Job] = field(default_factory=list)
    recomputed: list[Job] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)
    superseded_dir: Path | None = None
    param_set: str = ""
    seconds: float = 0.0

    def summary(self, kind: str) -> str:
        text = (
            f"{kind} [parameter set {self.param_set}]: {len(self.ran)} job(s) run in {self.seconds:.1f} s, "
            f"{self.already_done} already done, {len(self.locked)} held by other workers, {self.total} selected"
        )
        if self.recomputed:
            text += (
                f"\n{len(self.recomputed)} job(s) recomputed (stale, invalid or --force); "
                f"their previous files were moved to {self.superseded_dir}"
            )
        return text


#: ``run_group(jobs, done)`` computes the given jobs of one group and calls ``done(job)`` after writing each.
GroupRunner = Callable[[list[Job], Callable[[Job], None]], None]


def run_jobs(
    settings,
    jobs: Sequence[Job],
    run_group: GroupRunner,
    param_set,
    outputs: Outputs | None = None,
    progress: bool = True,
    force: bool = False,
    fingerprints=None,
    log_jobs: bool = False,
) -> RunReport:
    """Run the jobs that are not done with ``param_set``, group by group, each under its lock.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    jobs : sequence of Job
    run_group : GroupRunner
    param_set : bhscore.provenance.ParamSet
        Where the results go and what "done" is checked against.
    outputs : Outputs, optional
        Optional outputs that a job must have to count as done.
    progress : bool
        A tqdm bar over the pending jobs (with ETA).
    force : bool
        Recompute every selected job (each once, even with several workers).
    fingerprints : bhscore.provenance.InputFingerprints, optional
        Shared with ``run_group`` so inputs are hashed once.
    log_jobs : bool
        Print one line per finished job (batch logs).
    """
    from tqdm.auto import tqdm

    from bhscore.paths import Layout
    from bhscore.provenance import InputFingerprints, now_utc

    outputs = outputs or Outputs()
    layout = Layout.from_settings(settings)
    fingerprints = fingerprints or InputFingerprints(settings, layout)
    report = RunReport(total=len(jobs), param_set=param_set.id)
    t0 = time.perf_counter()
    started = now_utc()
    stamp = now_utc().replace(":", "").replace("+00:00", "Z")  # unique per run, sortable
    files = {job: JobFiles(layout, settings, job, param_set) for job in jobs}
    status = {job: files[job].status(outputs, param_set, fingerprints) for job in jobs}
    for state in STATES:
        report.before[state] = sum(s.state == state for s in status.values())
    pending = [j for j in jobs if force or status[j].state != DONE]
    report.already_done = len(jobs) - len(pending)
    reasons = Counter(str(status[j]) for j in pending if status[j].state in (STALE, INVALID))
    for reason, n in reasons.items():
        log.info("%d job(s) %s: recomputing them", n, reason)
    if pending:
        param_set.ensure_written(layout)
    bar = tqdm(total=len(pending), desc=f"{jobs[0].kind if jobs else ''} jobs", unit="job", disable=not progress)

    def still_needed(job: Job) -> bool:  # under the job's lock: another worker may have finished it
        if force:  # done by a worker of this same forced run (started after us) counts as done
            created = files[job].created()
            return created is None or created < started
        return files[job].status(outputs, param_set, fingerprints).state != DONE

    try:
        for group in grouped(pending):
            locks = {}
            try:
                for job in group:
                    lock = try_lock(files[job].lock)
                    if lock is None:
                        report.locked.append(job)
                        bar.update(1)
                        continue
                    if not still_needed(job):
                        lock.release()
                        report.already_done += 1
                        bar.update(1)
                        continue
                    files[job].remove_stale_temporaries()
                    if files[job].supersede(stamp):
                        report.recomputed.append(job)
                        report.superseded_dir = layout.superseded_dir(stamp)
                    locks[job] = lock
                if not locks:
                    continue
                mine = [j for j in group if j in locks]
                t_group = [time.perf_counter()]

                def done(job: Job, locks=locks, t_group=t_group) -> None:
                    report.ran.append(job)
                    bar.update(1)
                    if log_jobs:
                        now = time.perf_counter()
                        print(f"done  {job}  ({now - t_group[0]:.1f} s)", flush=True)
                        t_group[0] = now
                    lock = locks.pop(job, None)
                    if lock is not None:
                        lock.release()

                log.debug("running %d job(s) of group %s", len(mine), "/".join(mine[0].group))
                run_group(mine, done)
            finally:
                for lock in locks.values():
                    lock.release()
    finally:
        bar.close()
        fingerprints.save()
    report.seconds = time.perf_counter() - t0
    return report


def make_group_runner(settings, kind: str, options, outputs: Outputs, param_set, fingerprints) -> GroupRunner:
    """The function that computes one group of ``kind`` jobs (see :func:`run_jobs`)."""
    from bhscore.decoding import DataStore, ResultWriter, run_decoding_group
    from bhscore.encoding import run_encoding_group

    store = DataStore(settings, non_finite=getattr(settings.analysis, kind).non_finite, kind=kind)
    writer = ResultWriter(store.layout, settings, param_set, fingerprints, options,
                          save_predictions=outputs.predictions, save_model=outputs.model)  # fmt: skip
    run_one = run_decoding_group if kind == "decoding" else run_encoding_group

    def run_group(group: list[Job], done: Callable[[Job], None]) -> None:
        run_one(store, group, options, writer, on_done=done)

    return run_group


def run(
    settings,
    kind: str,
    dnns: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    rois: Sequence[str] | None = None,
    solver: str | None = None,
    device: str | None = None,
    shard_spec: tuple[int, int] | None = None,
    save_predictions: bool = False,
    save_model: bool = False,
    progress: bool = True,
    force: bool = False,
    log_jobs: bool = False,
) -> RunReport:
    """List, shard and run the ``kind`` jobs of ``settings`` (the ``bhscore decode``/``encode`` commands).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    kind : {'decoding', 'encoding'}
    dnns, layers, subjects, rois : sequence of str, optional
        Restrict the jobs (default: everything in the settings).
    solver : {'batched', 'fastl2lir'}, optional
        Overrides ``analysis.<kind>.solver`` (a different solver is a different parameter set).
    device : str, optional
        'cpu', 'cuda', ...; None: CUDA when available. Recorded, not a parameter.
    shard_spec : (int, int), optional
        (I, N): run only the I-th of N slices of the job list.
    save_predictions, save_model : bool
        Also write decoded features (decoding) / trained models (bdmodel).
    progress : bool
    force : bool
        Recompute every selected job; previous files are moved to ``computed/superseded/``.
    log_jobs : bool
        One line per finished job.
    """
    from bhscore.decoding import RidgeOptions
    from bhscore.paths import Layout
    from bhscore.provenance import InputFingerprints, ParamSet

    jobs = list_jobs(settings, kind, dnns, layers, subjects, rois)
    if shard_spec is not None:
        jobs = shard(jobs, *shard_spec)
    param_set = ParamSet.from_settings(settings, kind, solver=solver)
    options = RidgeOptions.from_params(param_set.params, device=device)
    outputs = Outputs(predictions=save_predictions and kind == "decoding", model=save_model)
    fingerprints = InputFingerprints(settings, Layout.from_settings(settings))
    runner = make_group_runner(settings, kind, options, outputs, param_set, fingerprints)
    return run_jobs(settings, jobs, runner, param_set, outputs, progress, force, fingerprints, log_jobs)
