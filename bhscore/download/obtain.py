"""Verified bytes of a remote file at a path: a file found there is checked, else downloaded and checked.

Only a file whose MD5 matches is renamed onto its path; a mismatch deletes the download (after one fresh
attempt when the download had been resumed). So a truncated or corrupt file never sits where a complete one
is expected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bhscore.download.archive import join_pieces
from bhscore.download.checksums import Checksums
from bhscore.download.errors import ChecksumError, Unreachable, reason
from bhscore.download.options import DownloadOptions
from bhscore.download.registry import MAKE_TARGET, RemoteFile
from bhscore.download.transfer import fetch
from bhscore.download.verify import md5_file

log = logging.getLogger(__name__)

#: Statuses of :meth:`VerifiedFetcher.obtain`, weakest first.
_STATUS_ORDER = ("unverified", "downloaded", "verified")


class VerifiedFetcher:
    """Obtains entries' bytes for one run, against the expected MD5s of :class:`Checksums`."""

    def __init__(self, root: Path, opts: DownloadOptions, checksums: Checksums):
        self.root, self.opts, self.checksums = root, opts, checksums

    def obtain(self, entry: RemoteFile, path: Path, rec: dict | None) -> tuple[str, str]:
        """``path`` checked if it exists, else fetched and verified.

        Parameters
        ----------
        entry : RemoteFile
        path : Path
            Where the bytes go (the destination, or the zip under ``downloads/``).
        rec : dict or None
            The lock file's record of ``entry``; None: ask figshare's API (and record its answer).

        Returns
        -------
        status : {'verified', 'unverified', 'downloaded'}
            See :class:`bhscore.download.run.Outcome`.
        md5 : str
            The file's hex MD5.
        """
        found = self._check_existing(entry, path, rec) if path.exists() else None
        if found is not None:
            return found
        rec = rec or self.checksums.remote(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fetch_verified(entry, path, rec)
        return "downloaded", rec["md5"]

    def obtain_pieces(self, entry: RemoteFile, zip_path: Path) -> tuple[str, str]:
        """Fetch and verify each piece of a split zip, then join them into ``zip_path`` (atomically).

        Returns (status, digest): status as :meth:`obtain` (the weakest of the pieces'), digest the pieces'
        MD5s joined by '+' (what the completion marker records).
        """
        statuses, digests, paths = [], [], []
        for i in range(len(entry.file_ids)):
            piece = entry.piece(i)
            path = piece.download_path(self.root)
            status, digest = self.obtain(piece, path, self.checksums.recorded(piece))
            statuses.append(status)
            digests.append(digest)
            paths.append(path)
        join_pieces(paths, zip_path)
        return min(statuses, key=_STATUS_ORDER.index), "+".join(digests)

    def _check_existing(self, entry: RemoteFile, path: Path, rec: dict | None) -> tuple[str, str] | None:
        """Check a file found at ``path``: ``('verified'|'unverified', md5)``, or None (moved aside)."""
        if rec is None:
            try:
                rec = self.checksums.remote(entry)
            except Unreachable as e:
                log.warning(
                    "%s: found %s, but cannot verify it (%s; no checksum recorded in %s); using it as it is",
                    entry.name, path, reason(e.cause, self.opts), self.checksums.lock.path,
                )  # fmt: skip
                return "unverified", md5_file(path, self.opts.progress)
        digest = md5_file(path, self.opts.progress)
        if digest == rec["md5"]:
            return "verified", digest
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        log.warning("%s: %s has MD5 %s, figshare publishes %s; moved it to %s and downloading again",
                    entry.name, path, digest, rec["md5"], bad)  # fmt: skip
        return None

    def _fetch_verified(self, entry: RemoteFile, path: Path, rec: dict) -> None:
        """Download ``entry`` and rename it onto ``path`` only if its MD5 matches ``rec``."""
        part = path.with_name(path.name + ".part")
        url = entry.url(self.opts.files_base)
        how = MAKE_TARGET[entry.group]
        for fresh in (False, True):
            digest, resumed = fetch(self.checksums.client, url, part, rec["size"], entry.name, how)
            if digest == rec["md5"]:
                os.replace(part, path)
                return
            part.unlink(missing_ok=True)
            if fresh or not resumed:
                break
            log.warning("%s: MD5 mismatch after resuming; downloading again from the start", entry.name)
        lock_path = self.checksums.lock.path
        raise ChecksumError(
            f"checksum mismatch for {entry.description} ({entry.name}) from {url}:\n"
            f"  MD5 {digest}, but figshare publishes {rec['md5']} (recorded in {lock_path})\n"
            f"  the download was deleted; nothing was written to {path}.\n"
            f"  Run `{how}` again later; if it keeps failing, the file on figshare may have changed: "
            f"delete its entry '{entry.name}' from {lock_path} and try once more"
        )
