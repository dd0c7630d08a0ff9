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

from bhscore.jobs.run import GroupRunner, RunReport, make_group_runner, run, run_jobs, run_selection
from bhscore.jobs.selection import Job, JobSelection, grouped, list_jobs, parse_shard, shard
from bhscore.jobs.state import (
    DONE,
    INVALID,
    MISSING,
    STALE,
    STATES,
    JobFiles,
    JobStatus,
    Outputs,
    job_statuses,
    try_lock,
)
from bhscore.kinds import KIND_NAMES as KINDS

__all__ = [
    "DONE", "INVALID", "KINDS", "MISSING", "STALE", "STATES",
    "GroupRunner", "Job", "JobFiles", "JobSelection", "JobStatus", "Outputs", "RunReport",
    "grouped", "job_statuses", "list_jobs", "make_group_runner", "parse_shard", "run", "run_jobs",
    "run_selection", "shard", "try_lock",
]  # fmt: skip
