"""One download run: each selected entry, under its own file lock, made complete and marked so.

An entry that its completion marker shows complete makes no request. Otherwise its bytes are obtained and
verified (:mod:`bhscore.download.obtain`); a single file is then marked complete; an archive is downloaded to
``<data root>/downloads/<name>.zip``, unpacked (:mod:`bhscore.download.archive`), its manifest (every file
and its size) and, last, its completion marker ``downloads/<name>.done.json`` are written atomically, and the
zip is deleted after the marker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from bhscore.download.archive import unpack_archive
from bhscore.download.checksums import Checksums
from bhscore.download.errors import DownloadError, NetworkError, Unreachable, offline_message
from bhscore.download.obtain import VerifiedFetcher
from bhscore.download.options import DownloadOptions
from bhscore.download.plan import preflight
from bhscore.download.registry import FEATURES_ALL, RemoteFile, select
from bhscore.download.verify import is_complete, manifest_ok, read_json, write_manifest, write_marker
from bhscore.paths import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What :func:`download` did for one entry.

    ``status`` is ``'present'`` (complete from an earlier run: nothing fetched, no request),
    ``'verified'`` (found on disk, e.g. placed by hand, and checked now), ``'downloaded'``, or
    ``'unverified'`` (found on disk, but no checksum could be obtained: figshare unreachable and none
    recorded in the lock file; it is used as it is and checked on the next run that can).
    """

    entry: RemoteFile
    status: str
    path: Path


def download(
    root: str | os.PathLike,
    group: str = "all",
    *,
    subjects: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    options: DownloadOptions | None = None,
    dnn_dirs: Sequence[str] | None = None,
    **kwargs,
) -> list[Outcome]:
    """Make sure the selected remote files are in place under the data root ``root``, verified.

    Parameters
    ----------
    root : path-like
        The data root (:func:`bhscore.paths.data_root`).
    group : {'fmri', 'features', 'accuracy', 'all', 'features-all'}
    subjects, names, dnn_dirs : sequence of str, optional
        See :func:`~bhscore.download.registry.select`. ``'features-all'`` first checks the free disk space
        (:func:`~bhscore.download.plan.preflight`).
    options : DownloadOptions, optional
        Or its fields as keyword arguments (``api_base=..., connect_timeout=...``).

    Returns
    -------
    list of Outcome, one per selected entry, in registry order.

    Raises
    ------
    NetworkError
        figshare unreachable (fails at the first entry that needs the network; complete entries need none).
    ChecksumError
        A download does not match figshare's MD5 (it was deleted).
    DownloadError
        Any other failure; the message says what to do.
    """
    opts = (options or DownloadOptions(**kwargs)).resolved()
    run = _Run(Path(root), opts)
    entries = select(group, subjects, names, dnn_dirs)
    if group == FEATURES_ALL:
        plan = preflight(root, entries, options=opts)
        if not plan.fits:
            raise DownloadError(plan.refusal())
    return [run.ensure(entry) for entry in entries]


class _Run:
    """The entries of one :func:`download` call: completeness, then the file or the archive put in place."""

    def __init__(self, root: Path, opts: DownloadOptions):
        self.root, self.opts = Path(root), opts
        self.layout = Layout(self.root)
        self.checksums = Checksums(self.root, opts)
        self.fetcher = VerifiedFetcher(self.root, opts, self.checksums)

    def ensure(self, entry: RemoteFile) -> Outcome:
        """Make ``entry`` complete (under its file lock, so concurrent runs take turns)."""
        self.layout.lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.layout.lock_dir / f"download-{entry.name}.lock")):
            try:
                return self._ensure(entry)
            except Unreachable as e:
                raise NetworkError(
                    offline_message(entry, e, self.root, self.opts, self.checksums.lock.path)
                ) from None

    def _ensure(self, entry: RemoteFile) -> Outcome:
        rec = self.checksums.recorded(entry)
        marker = read_json(entry.marker_path(self.root))
        if marker is not None and is_complete(entry, marker, rec, self.root, self.opts):
            log.debug("%s: complete (%s)", entry.name, entry.destination(self.root))
            return Outcome(entry, "present", entry.destination(self.root))
        return self._ensure_archive(entry, rec, marker) if entry.archive else self._ensure_file(entry, rec)

    def _ensure_file(self, entry: RemoteFile, rec: dict | None) -> Outcome:
        dest = entry.destination(self.root)
        status, digest = self.fetcher.obtain(entry, dest, rec)
        if status != "unverified":
            st = dest.stat()
            write_marker(entry, self.root, {"md5": digest, "verified": True, "size": st.st_size,
                                            "path": dest.relative_to(self.root).as_posix(),
                                            "mtime_ns": st.st_mtime_ns})  # fmt: skip
        return Outcome(entry, status, dest)

    def _ensure_archive(self, entry: RemoteFile, rec: dict | None, marker: dict | None) -> Outcome:
        zip_path = entry.download_path(self.root)
        if entry.parts:
            status, digest = self.fetcher.obtain_pieces(entry, zip_path)
        else:
            status, digest = self.fetcher.obtain(entry, zip_path, rec)
        verified = status != "unverified"
        n_files, n_bytes = self._unpacked(entry, zip_path, digest, marker)
        write_marker(entry, self.root, {"md5": digest, "verified": verified, "anchor": entry.anchor,
                                        "n_files": n_files, "n_bytes": n_bytes})  # fmt: skip
        if verified and not self.opts.keep_archives:
            zip_path.unlink()
            for i in range(len(entry.parts) + 1 if entry.parts else 0):
                entry.piece(i).download_path(self.root).unlink(missing_ok=True)
        elif not verified:
            log.warning("%s: keeping %s until it can be verified against figshare", entry.name, zip_path)
        return Outcome(entry, status, entry.destination(self.root))

    def _unpacked(
        self, entry: RemoteFile, zip_path: Path, digest: str, marker: dict | None
    ) -> tuple[int, int]:
        """Unpack ``zip_path`` unless ``marker`` shows this very zip unpacked intact; (files, bytes) unpacked.

        An interrupted earlier unpack (no marker) is simply redone.
        """
        already = (
            marker is not None and marker.get("md5") == digest and marker.get("file_id") == entry.file_id
            and entry.destination(self.root).is_dir() and manifest_ok(entry, self.root)
        )  # fmt: skip
        if already:
            return marker.get("n_files"), marker.get("n_bytes")
        entry.marker_path(self.root).unlink(missing_ok=True)
        source = entry.source_anchor or entry.anchor
        manifest = unpack_archive(zip_path, self.root, source, self.opts.progress, land_at=entry.anchor)
        write_manifest(entry, self.root, manifest)
        return len(manifest), sum(s for _, s in manifest)
