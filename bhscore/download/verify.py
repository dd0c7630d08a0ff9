"""Is an entry complete? MD5s, completion markers, manifests of unpacked trees, and the offline state.

A single file is complete when its marker matches the lock file and the file's size and modification time;
an archive when its marker matches the lock file (and, with ``verify``, its unpacked tree its manifest).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from bhscore.atomic import atomic_path, atomic_write_text
from bhscore.download.checksums import LockFile, utc_now
from bhscore.download.options import CHUNK_BYTES, DownloadOptions
from bhscore.download.registry import REGISTRY, RemoteFile

log = logging.getLogger(__name__)


def md5_of(path: Path, n: int | None = None, progress: bool = False, desc: str = "") -> hashlib._Hash:
    """MD5 of the first ``n`` bytes (default all) of ``path``, as a hash object (more bytes may follow)."""
    h = hashlib.md5()
    total = path.stat().st_size if n is None else n
    left = total
    with open(path, "rb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                                     disable=not progress or total < 64 * CHUNK_BYTES) as bar:  # fmt: skip
        while left > 0:
            chunk = f.read(min(CHUNK_BYTES * 8, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
            bar.update(len(chunk))
    return h


def md5_file(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex MD5 of a file."""
    return md5_of(Path(path), None, progress, f"checking {Path(path).name}").hexdigest()


# completion markers -------------------------------------------------------------------------------


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(entry: RemoteFile, root: Path, info: dict) -> None:
    """Write ``entry``'s completion marker (its ids, the time, and ``info``), atomically."""
    marker = {"name": entry.name, "file_id": entry.file_id, "article": entry.article, "written": utc_now()}
    marker.update(info)
    atomic_write_text(entry.marker_path(root), json.dumps(marker, indent=2, sort_keys=True) + "\n")


def is_complete(entry: RemoteFile, marker: dict, rec: dict | None, root: Path, opts: DownloadOptions) -> bool:
    """Whether ``marker`` (and the data on disk) shows ``entry`` complete and matching the record ``rec``.

    With ``opts.verify``, single files are re-hashed and unpacked trees checked against their manifest.
    """
    if marker.get("file_id") != entry.file_id or not marker.get("verified"):
        return False
    if rec is not None and marker.get("md5") != rec["md5"]:
        return False
    dest = entry.destination(root)
    if entry.archive:
        return dest.is_dir() and (not opts.verify or manifest_ok(entry, root))
    try:
        st = dest.stat()
    except OSError:
        return False
    if st.st_size != marker.get("size"):
        return False
    if opts.verify:
        return md5_file(dest, opts.progress) == marker["md5"]
    return st.st_mtime_ns == marker.get("mtime_ns")


# manifests of unpacked trees ----------------------------------------------------------------------


def write_manifest(entry: RemoteFile, root: Path, manifest: Sequence[tuple[str, int]]) -> None:
    """Write the manifest of ``entry``'s unpacked tree: one ``<relative path>\\t<size>`` line per file."""
    with atomic_path(entry.manifest_path(root)) as tmp, gzip.open(tmp, "wt") as f:
        f.writelines(f"{rel}\t{size}\n" for rel, size in manifest)


def manifest_ok(entry: RemoteFile, root: Path) -> bool:
    """Whether every file of ``entry``'s manifest is in place with its size (warns when not)."""
    try:
        with gzip.open(entry.manifest_path(root), "rt") as f:
            rows = [line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip()]
    except (OSError, EOFError):
        log.warning("%s: no readable manifest; unpacking again", entry.name)
        return False
    bad = []
    for rel, size in rows:
        path = root.joinpath(*PurePosixPath(rel).parts)
        try:
            if path.stat().st_size != int(size):
                bad.append(rel)
        except OSError:
            bad.append(rel)
    if bad:
        log.warning("%s: %d of %d unpacked files are missing or changed (e.g. %s); fetching again",
                    entry.name, len(bad), len(rows), bad[0])  # fmt: skip
    return not bad


# offline state ------------------------------------------------------------------------------------


def status(
    root: str | os.PathLike, entries: Sequence[RemoteFile] | None = None
) -> list[tuple[RemoteFile, str]]:
    """Offline state of each entry: ``'complete'``, ``'unverified'``, ``'partial'`` or ``'missing'``.

    No network and no hashing: ``'complete'`` means a completion marker that matches the lock file (and, for
    single files, the file's size). ``'unverified'`` means data found without a verified marker (placed by
    hand); ``'partial'`` an interrupted download that the next run resumes.
    """
    root = Path(root)
    lock = LockFile(root)
    return [(entry, _state(entry, root, lock)) for entry in (entries if entries is not None else REGISTRY)]


def _state(entry: RemoteFile, root: Path, lock: LockFile) -> str:
    marker = read_json(entry.marker_path(root))
    rec = lock.get(entry)
    dest = entry.destination(root)
    if (
        marker is not None and marker.get("verified") and marker.get("file_id") == entry.file_id
        and (rec is None or rec["md5"] == marker.get("md5")) and dest.exists()
        and (entry.archive or dest.stat().st_size == marker.get("size"))
    ):  # fmt: skip
        return "complete"
    if dest.exists() or entry.download_path(root).exists():
        return "unverified"
    if entry.part_path(root).exists():
        return "partial"
    return "missing"
