"""Job lists: one job per (kind, DNN, layer, subject, ROI), their groups, shards and selections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bhscore.errors import UserError
from bhscore.kinds import kind_of


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
        return kind_of(self.kind).group_key(self)

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
    description = kind_of(kind)
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
    return [Job(description.name, *fields) for fields in description.job_fields(pairs, subjects, rois)]


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


@dataclass(frozen=True)
class JobSelection:
    """Which jobs of the settings a command considers: a kind, optional filters, an optional shard.

    Attributes
    ----------
    kind : {'decoding', 'encoding'}
    dnns, layers, subjects, rois : sequence of str or None
        Restrict the jobs (None: everything in the settings).
    shard : (int, int) or None
        (I, N): only the I-th of N shards of the list (:func:`shard`).
    """

    kind: str
    dnns: Sequence[str] | None = None
    layers: Sequence[str] | None = None
    subjects: Sequence[str] | None = None
    rois: Sequence[str] | None = None
    shard: tuple[int, int] | None = None

    @classmethod
    def from_args(cls, args, kind: str) -> JobSelection:
        """From the ``--dnn/--layer/--subject/--roi/--shard`` options of ``bhscore decode``/``encode``."""
        spec = parse_shard(args.shard) if getattr(args, "shard", None) else None
        return cls(kind, args.dnn, args.layer, args.subject, args.roi, spec)

    def jobs(self, settings) -> list[Job]:
        """The selected jobs in :func:`list_jobs` order (see there for the errors)."""
        selected = list_jobs(settings, self.kind, self.dnns, self.layers, self.subjects, self.rois)
        return shard(selected, *self.shard) if self.shard else selected
