"""Decoding and encoding jobs: lists from the settings, sharding, one lock per job, skip-if-done.

A job is one (kind, DNN, layer, subject, ROI) and writes one accuracy file, atomically and last: the file
*is* the completion marker, so any scheduler works. Jobs that share inputs run as a group (decoding: one
(subject, ROI), whose voxels serve every layer of every DNN; encoding: one (DNN, layer, subject), whose units
serve every ROI).

Running in parallel, on one machine or many sharing a filesystem:

- every job is guarded by a lock file (``filelock``, released by the OS if the process dies), so workers
  started on the same job list never run the same job; a worker skips jobs locked by others;
- ``--shard I/N`` gives worker I (0-based) the I-th of N contiguous slices of the job list (for batch arrays,
  e.g. SLURM's ``$SLURM_ARRAY_TASK_ID``); contiguous slices keep a group's jobs in one worker;
- a killed job leaves no accuracy file (and its hidden temporary files are removed by the next worker that
  takes the job), so a rerun finishes exactly the missing jobs.
"""

from __future__ import annotations

import logging
import time
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
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must be I/N with integers (0 <= I < N), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """The ``index``-th of ``count`` contiguous, near-equal slices of ``jobs``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"need 0 <= index < count, got {index}/{count}")
    n = len(jobs)
    return list(jobs[index * n // count : (index + 1) * n // count])


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
# completion and locks
# -------------------------------------------------------------------------------------------------


@dataclass
class Outputs:
    """Which outputs a job must leave to count as done."""

    predictions: bool = False
    model: bool = False


class JobFiles:
    """Where one job's files live (all through :class:`bhscore.paths.Layout`)."""

    def __init__(self, layout, settings, job: Job):
        d = settings.dnn(job.dnn).dir
        self.job = job
        self.accuracy = layout.accuracy_file(job.kind, d, job.layer, job.subject, job.roi)
        self.model_dir = layout.model_dir(job.kind, d, job.layer, job.subject, job.roi)
        self.predictions_dir = (
            layout.decoded_features_dir(d, job.layer, job.subject, job.roi)
            if job.kind == "decoding"
            else None
        )
        safe = "__".join([d.replace("/", "__"), job.layer, job.subject, job.roi])
        self.lock = layout.lock_dir / job.kind / f"{safe}.lock"

    def done(self, outputs: Outputs) -> bool:
        """The accuracy file exists (and the requested optional outputs are complete)."""
        if not self.accuracy.exists():
            return False
        if outputs.model and not (self.model_dir / "W.mat").exists():  # W.mat is written last
            return False
        if outputs.predictions and self.predictions_dir is not None:
            from bhscore.formats import read_accuracy

            _, n = read_accuracy(self.accuracy)
            have = (
                sum(1 for _ in self.predictions_dir.glob("[!.]*.mat")) if self.predictions_dir.is_dir() else 0
            )
            if n is None or have < n:
                return False
        return True

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


# -------------------------------------------------------------------------------------------------
# running
# -------------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What a run did."""

    total: int = 0
    already_done: int = 0
    ran: list[Job] = field(default_factory=list)
    locked: list[Job] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, kind: str) -> str:
        return (
            f"{kind}: {len(self.ran)} job(s) run in {self.seconds:.1f} s, {self.already_done} already done, "
            f"{len(self.locked)} held by other workers, {self.total} selected"
        )


GroupRunner = Callable[[list[Job], Callable[[Job], None]], None]


def run_jobs(
    settings,
    jobs: Sequence[Job],
    run_group: GroupRunner,
    outputs: Outputs | None = None,
    progress: bool = True,
) -> RunReport:
    """Run the jobs that are not done, group by group, each under its lock.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    jobs : sequence of Job
    run_group : callable
        ``run_group(jobs, done)`` computes the given jobs of one group and calls ``done(job)`` after writing
        each job's accuracy file.
    outputs : Outputs, optional
        Optional outputs that a job must have to count as done.
    progress : bool
        A tqdm bar over the pending jobs (with ETA).
    """
    from tqdm.auto import tqdm

    from bhscore.paths import Layout

    outputs = outputs or Outputs()
    layout = Layout.from_settings(settings)
    report = RunReport(total=len(jobs))
    t0 = time.perf_counter()
    files = {job: JobFiles(layout, settings, job) for job in jobs}
    pending = [j for j in jobs if not files[j].done(outputs)]
    report.already_done = len(jobs) - len(pending)
    bar = tqdm(
        total=len(pending), desc=f"{jobs[0].kind if jobs else ''} jobs", unit="job", disable=not progress
    )
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
                    if files[job].done(outputs):  # finished by another worker meanwhile
                        lock.release()
                        report.already_done += 1
                        bar.update(1)
                        continue
                    files[job].remove_stale_temporaries()
                    locks[job] = lock
                if not locks:
                    continue
                mine = [j for j in group if j in locks]

                def done(job: Job, locks=locks) -> None:
                    report.ran.append(job)
                    bar.update(1)
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
    report.seconds = time.perf_counter() - t0
    return report


def make_group_runner(settings, kind: str, options, outputs: Outputs) -> GroupRunner:
    """The function that computes one group of ``kind`` jobs (see :func:`run_jobs`)."""
    from bhscore.decoding import DataStore, run_decoding_group
    from bhscore.encoding import run_encoding_group

    store = DataStore(settings)

    def run_group(group: list[Job], done: Callable[[Job], None]) -> None:
        first = group[0]
        if kind == "decoding":
            by_item = {(j.dnn, j.layer): j for j in group}
            run_decoding_group(
                store, first.subject, first.roi, list(by_item), options,
                save_predictions=outputs.predictions, save_model=outputs.model,
                on_done=lambda item: done(by_item[item]),
            )  # fmt: skip
        else:
            by_roi = {j.roi: j for j in group}
            run_encoding_group(
                store, first.dnn, first.layer, first.subject, list(by_roi), options,
                save_model=outputs.model, on_done=lambda roi: done(by_roi[roi]),
            )  # fmt: skip

    return run_group


def run(
    settings,
    kind: str,
    dnns: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    rois: Sequence[str] | None = None,
    solver: str = "ours",
    device: str | None = None,
    shard_spec: tuple[int, int] | None = None,
    save_predictions: bool = False,
    save_model: bool = False,
    progress: bool = True,
) -> RunReport:
    """List, shard and run the ``kind`` jobs of ``settings`` (the ``bhscore decode``/``encode`` commands).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    kind : {'decoding', 'encoding'}
    dnns, layers, subjects, rois : sequence of str, optional
        Restrict the jobs (default: everything in the settings).
    solver : {'ours', 'fastl2lir'}
    device : str, optional
        'cpu', 'cuda', ...; None: CUDA when available.
    shard_spec : (int, int), optional
        (I, N): run only the I-th of N slices of the job list.
    save_predictions, save_model : bool
        Also write decoded features (decoding) / trained models (bdmodel).
    progress : bool
    """
    from bhscore.decoding import RidgeOptions

    jobs = list_jobs(settings, kind, dnns, layers, subjects, rois)
    if shard_spec is not None:
        jobs = shard(jobs, *shard_spec)
    ridge_settings = settings.analysis.decoding if kind == "decoding" else settings.analysis.encoding
    options = RidgeOptions.from_settings(ridge_settings, solver=solver, device=device)
    outputs = Outputs(predictions=save_predictions and kind == "decoding", model=save_model)
    return run_jobs(settings, jobs, make_group_runner(settings, kind, options, outputs), outputs, progress)
