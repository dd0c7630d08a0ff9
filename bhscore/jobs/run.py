"""Running jobs: claim each pending job under its lock, run its group, report what happened."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bhscore.jobs.selection import Job, JobSelection, grouped
from bhscore.jobs.state import DONE, INVALID, STALE, STATES, JobFiles, Outputs, try_lock
from bhscore.kinds import kind_of

log = logging.getLogger(__name__)


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
    from bhscore.provenance import InputFingerprints

    outputs = outputs or Outputs()
    layout = Layout.from_settings(settings)
    fingerprints = fingerprints or InputFingerprints(settings, layout)
    report = RunReport(total=len(jobs), param_set=param_set.id)
    t0 = time.perf_counter()
    claims = _Claims(layout, settings, jobs, param_set, outputs, fingerprints, force)
    pending = claims.pending(report)
    if pending:
        param_set.ensure_written(layout)
    bar = tqdm(total=len(pending), desc=f"{jobs[0].kind if jobs else ''} jobs", unit="job", disable=not progress)
    try:
        for group in grouped(pending):
            locks = claims.claim(group, report, bar)
            try:
                if locks:
                    _run_claimed(group, locks, run_group, report, bar, log_jobs)
            finally:
                for lock in locks.values():
                    lock.release()
    finally:
        bar.close()
        fingerprints.save()
    report.seconds = time.perf_counter() - t0
    return report


class _Claims:
    """The states of a run's jobs and the claiming of each group's jobs under their locks."""

    def __init__(self, layout, settings, jobs: Sequence[Job], param_set, outputs: Outputs, fingerprints, force: bool):
        from bhscore.provenance import now_utc

        self.layout, self.param_set, self.outputs, self.fingerprints, self.force = (
            layout, param_set, outputs, fingerprints, force
        )  # fmt: skip
        self.started = now_utc()
        self.stamp = self.started.replace(":", "").replace("+00:00", "Z")  # unique per run, sortable
        self.files = {job: JobFiles(layout, settings, job, param_set) for job in jobs}
        self.jobs = list(jobs)

    def pending(self, report: RunReport) -> list[Job]:
        """The jobs to run (not done, or all with ``force``); fills ``report.before`` and ``already_done``."""
        status = {job: self.files[job].status(self.outputs, self.param_set, self.fingerprints) for job in self.jobs}
        for state in STATES:
            report.before[state] = sum(s.state == state for s in status.values())
        pending = [j for j in self.jobs if self.force or status[j].state != DONE]
        report.already_done = len(self.jobs) - len(pending)
        reasons = Counter(str(status[j]) for j in pending if status[j].state in (STALE, INVALID))
        for reason, n in reasons.items():
            log.info("%d job(s) %s: recomputing them", n, reason)
        return pending

    def _still_needed(self, job: Job) -> bool:
        """Under the job's lock: whether another worker has finished it meanwhile."""
        if self.force:  # done by a worker of this same forced run (started after us) counts as done
            created = self.files[job].created()
            return created is None or created < self.started
        return self.files[job].status(self.outputs, self.param_set, self.fingerprints).state != DONE

    def claim(self, group: list[Job], report: RunReport, bar) -> dict:
        """Lock the jobs of ``group`` that still need running and move their old files aside.

        Returns
        -------
        dict of Job -> lock
            The claimed jobs (the caller releases the locks); jobs held by others or finished meanwhile are
            counted in ``report`` and the bar.
        """
        locks: dict = {}
        try:
            for job in group:
                lock = try_lock(self.files[job].lock)
                if lock is None or not self._still_needed(job):
                    if lock is None:
                        report.locked.append(job)
                    else:
                        lock.release()
                        report.already_done += 1
                    bar.update(1)
                    continue
                self.files[job].remove_stale_temporaries()
                if self.files[job].supersede(self.stamp):
                    report.recomputed.append(job)
                    report.superseded_dir = self.layout.superseded_dir(self.stamp)
                locks[job] = lock
        except BaseException:
            for lock in locks.values():
                lock.release()
            raise
        return locks


def _run_claimed(group: list[Job], locks: dict, run_group: GroupRunner, report: RunReport, bar, log_jobs: bool):
    """Run the claimed jobs of ``group``, releasing each job's lock as soon as its file is written."""
    mine = [j for j in group if j in locks]
    t_group = time.perf_counter()

    def done(job: Job) -> None:
        nonlocal t_group
        report.ran.append(job)
        bar.update(1)
        if log_jobs:
            now = time.perf_counter()
            print(f"done  {job}  ({now - t_group:.1f} s)", flush=True)
            t_group = now
        lock = locks.pop(job, None)
        if lock is not None:
            lock.release()

    log.debug("running %d job(s) of group %s", len(mine), "/".join(mine[0].group))
    run_group(mine, done)


def make_group_runner(settings, kind: str, options, outputs: Outputs, param_set, fingerprints) -> GroupRunner:
    """The function that computes one group of ``kind`` jobs (see :func:`run_jobs`)."""
    from bhscore.datastore import DataStore
    from bhscore.results import ResultWriter

    description = kind_of(kind)
    store = DataStore(settings, non_finite=description.ridge_settings(settings).non_finite, kind=kind)
    writer = ResultWriter(store.layout, settings, param_set, fingerprints, options,
                          save_predictions=outputs.predictions, save_model=outputs.model)  # fmt: skip
    run_one = description.runner()

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
    shard_spec: tuple[int, int] | None = None,
    **options,
) -> RunReport:
    """:func:`run_selection` of the jobs of ``kind`` restricted to the given DNNs/layers/subjects/ROIs/shard.

    ``options`` are those of :func:`run_selection`.
    """
    selection = JobSelection(kind, dnns, layers, subjects, rois, shard_spec)
    return run_selection(settings, selection, **options)


def run_selection(
    settings,
    selection: JobSelection,
    solver: str | None = None,
    device: str | None = None,
    save_predictions: bool = False,
    save_model: bool = False,
    progress: bool = True,
    force: bool = False,
    log_jobs: bool = False,
) -> RunReport:
    """List, shard and run the selected jobs of ``settings`` (the ``bhscore decode``/``encode`` commands).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    selection : JobSelection
    solver : {'batched', 'fastl2lir'}, optional
        Overrides ``analysis.<kind>.solver`` (a different solver is a different parameter set).
    device : str, optional
        'cpu', 'cuda', ...; None: CUDA when available. Recorded, not a parameter.
    save_predictions, save_model : bool
        Also write decoded features (decoding) / trained models (bdmodel).
    progress : bool
    force : bool
        Recompute every selected job; previous files are moved to ``computed/superseded/``.
    log_jobs : bool
        One line per finished job.
    """
    from bhscore.fitting import RidgeOptions
    from bhscore.paths import Layout
    from bhscore.provenance import InputFingerprints, ParamSet

    kind = selection.kind
    jobs = selection.jobs(settings)
    param_set = ParamSet.from_settings(settings, kind, solver=solver)
    options = RidgeOptions.from_params(param_set.params, device=device)
    outputs = Outputs(predictions=save_predictions and kind_of(kind).saves_predictions, model=save_model)
    fingerprints = InputFingerprints(settings, Layout.from_settings(settings))
    runner = make_group_runner(settings, kind, options, outputs, param_set, fingerprints)
    return run_jobs(settings, jobs, runner, param_set, outputs, progress, force, fingerprints, log_jobs)
