"""Before a large download: its size, the disk it needs and the disk free (:func:`preflight`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bhscore.download.checksums import Checksums
from bhscore.download.errors import NetworkError, Unreachable, offline_message
from bhscore.download.options import DownloadOptions
from bhscore.download.registry import RemoteFile
from bhscore.download.verify import status


@dataclass(frozen=True)
class Preflight:
    """Size of a download and the disk it needs, known before it starts (:func:`preflight`).

    Attributes
    ----------
    n_bytes : int
        Bytes still to download (entries not yet complete).
    need_bytes : int
        Free space needed: the unpacked trees (taken as large as the zips: ``.mat`` arrays barely compress)
        plus the largest zip kept while it unpacks (twice that for a zip joined from pieces).
    free_bytes : int
        Free space on the data root's file system now.
    n_pending, n_complete : int
        Entries to fetch, and entries already complete (no request).
    root : Path
        The data root.
    """

    n_bytes: int
    need_bytes: int
    free_bytes: int
    n_pending: int
    n_complete: int
    root: Path

    @property
    def fits(self) -> bool:
        """Whether the free space suffices."""
        return self.need_bytes <= self.free_bytes

    def describe(self) -> str:
        """One line: what is left to fetch, its size, the space it needs and the space free."""
        return (f"{self.n_pending} archive(s) to fetch ({self.n_complete} complete): {_human(self.n_bytes)} to "
                f"download, needs {_human(self.need_bytes)} free, {_human(self.free_bytes)} free in {self.root}")  # fmt: skip

    def refusal(self) -> str:
        """The message that refuses a download that does not fit."""
        return (f"not enough disk space for the download: {self.describe()}; free "
                f"{_human(self.need_bytes - self.free_bytes)} or choose fewer DNNs (--dnn)")  # fmt: skip


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def preflight(
    root: str | os.PathLike, entries: Sequence[RemoteFile], options: DownloadOptions | None = None
) -> Preflight:
    """Sizes (lock file, else figshare's API: recorded) and the free-disk check of the incomplete ``entries``.

    Raises
    ------
    NetworkError
        A size is needed from figshare's API, which cannot be reached.
    """
    opts = (options or DownloadOptions()).resolved()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    checksums = Checksums(root, opts)
    pending = [e for e, state in status(root, entries) if state != "complete"]
    try:
        sizes = {e.name: checksums.size_of(e) for e in pending}
    except Unreachable as e:
        raise NetworkError(offline_message(pending[0], e, root, opts, checksums.lock.path)) from None
    transient = max((sizes[e.name] * (2 if e.parts else 1) for e in pending), default=0)
    total = sum(sizes.values())
    return Preflight(total, total + transient, shutil.disk_usage(root).free, len(pending),
                     len(entries) - len(pending), root)  # fmt: skip
