"""The expected MD5 and size of each remote file: the lock file, else figshare's API (then recorded)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from bhscore.atomic import atomic_write_text
from bhscore.download.client import Client
from bhscore.download.errors import DownloadError
from bhscore.download.options import DownloadOptions
from bhscore.download.registry import LOCK_FILE, RemoteFile, article_file_ids
from bhscore.paths import Layout


def utc_now() -> str:
    """The time now, ISO 8601 in UTC to the second (the stamps of lock records and markers)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class LockFile:
    """``<data root>/downloads.lock.json``: figshare's MD5 and size of every file fetched so far.

    Read-modify-write under a file lock, written atomically, so concurrent downloads (``make -j``) are safe.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self._lock_dir = Layout(Path(root)).lock_dir
        self._mutex = FileLock(str(self._lock_dir / f"{LOCK_FILE}.lock"))

    def read(self) -> dict:
        """The whole lock file (``{'files': {name: record}}``; empty when there is none).

        Raises
        ------
        DownloadError
            The file exists but is not a lock file.
        """
        if not self.path.exists():
            return {"files": {}}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data.get("files"), dict):
                raise ValueError("no 'files' mapping")
        except (ValueError, AttributeError) as e:
            raise DownloadError(
                f"cannot read the download lock file {self.path}: {e}\n"
                "  delete it: it is re-created from figshare's API on the next download"
            ) from None
        return data

    def get(self, entry: RemoteFile) -> dict | None:
        """The recorded ``{'md5', 'size', ...}`` of ``entry``, or None (none, or for another file id)."""
        rec = self.read()["files"].get(entry.name)
        if isinstance(rec, dict) and rec.get("file_id") == entry.file_id and rec.get("md5") and "size" in rec:
            return rec
        return None

    def put(self, entry: RemoteFile, rec: dict) -> None:
        """Record ``rec`` as the expected MD5 and size of ``entry``."""
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        with self._mutex:
            data = self.read()
            data["about"] = (
                "MD5 (figshare API computed_md5) and size of each downloaded file, recorded at download time; "
                "later runs of `bhscore download` verify against them without the network."
            )
            data["files"][entry.name] = rec
            atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class Checksums:
    """Where a run learns what each file must be: the lock file first, figshare's API when it has no record.

    The HTTP client is opened on first need, so a run whose entries are all complete makes no request.
    """

    def __init__(self, root: Path, opts: DownloadOptions):
        self.opts = opts
        self.lock = LockFile(root)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The HTTP client (opened on first use)."""
        if self._client is None:
            self._client = Client(self.opts)
        return self._client

    def recorded(self, entry: RemoteFile) -> dict | None:
        """The lock file's record of ``entry`` (:meth:`LockFile.get`), or None."""
        return self.lock.get(entry)

    def remote(self, entry: RemoteFile) -> dict:
        """figshare's record of ``entry`` (MD5, size), recorded in the lock file.

        Raises
        ------
        Unreachable
            figshare's API cannot be reached.
        DownloadError
            The article does not list the file, or lists it without MD5 or size.
        """
        files = self.client.article_files(entry.article, article_file_ids(entry.article))
        item = files.get(entry.file_id)
        if item is None:
            raise DownloadError(
                f"figshare article {entry.article} does not list file {entry.file_id} ({entry.description}); "
                f"the registry in bhscore/download/registry.py may be out of date ({self.opts.api_base})"
            )
        md5 = item.get("computed_md5") or item.get("supplied_md5")
        if not md5 or not isinstance(item.get("size"), int):
            raise DownloadError(
                f"figshare reports no MD5 or size for file {entry.file_id} ({entry.description})"
            )
        rec = {
            "article": entry.article,
            "file_id": entry.file_id,
            "name": item.get("name"),
            "size": item["size"],
            "md5": md5.lower(),
            "url": entry.url(self.opts.files_base),
            "recorded": utc_now(),
        }
        self.lock.put(entry, rec)
        return rec

    def size_of(self, entry: RemoteFile) -> int:
        """Bytes to download for ``entry`` (all pieces), from the lock file or figshare's API."""
        total = 0
        for i in range(len(entry.file_ids)):
            piece = entry.piece(i) if entry.parts else entry
            rec = self.lock.get(piece) or self.remote(piece)
            total += int(rec["size"])
        return total
