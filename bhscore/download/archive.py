"""Unpacking a verified zip into the data root: where each member goes, staged, then moved into place.

Archive layout (assumption)
---------------------------
Each zip is expected to hold its tree relative to the data root (``features/ImageNetTest/caffe/...``,
``decoding_accuracy/ImageNetTest/...``), which is what the original repository's download scripts assumed
(``unzip`` run inside ``data/``). Tolerated deviations: single wrapping folders that are not named like a
level of the expected path are stripped (``BHscore_data/decoding_accuracy/...``); an archive that starts
lower in the expected path gets the missing leading folders (``ImageNetTest/...`` becomes
``decoding_accuracy/ImageNetTest/...``); top-level loose files (a README), ``__MACOSX/`` and ``.DS_Store``
entries are skipped. Anything else is refused with a message listing the archive's top-level entries; the
verified zip is kept for inspection.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from bhscore.atomic import atomic_path
from bhscore.download.errors import DownloadError
from bhscore.download.options import CHUNK_BYTES
from bhscore.download.registry import STATE_DIR

log = logging.getLogger(__name__)


def _member_parts(name: str, archive: Path) -> tuple[str, ...] | None:
    """Path components of a zip member, None for junk; refuses paths that escape the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise DownloadError(f"{archive}: unsafe member path {name!r} in the archive; refusing to unpack it")
    if not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    return parts


def plan_unpack(
    names: Sequence[str], anchor: str, archive: Path = Path("archive.zip")
) -> list[PurePosixPath | None]:
    """Where each member of an archive goes, relative to the data root (None: skipped).

    Parameters
    ----------
    names : sequence of str
        Member names of the archive's files (no folders).
    anchor : str
        The folder the archive must yield, relative to the data root (``decoding_accuracy/ImageNetTest``).

    Returns
    -------
    list of PurePosixPath or None, one per name

    Raises
    ------
    DownloadError
        The archive's layout does not match the expected path (see the module docstring).
    """
    expected = PurePosixPath(anchor).parts
    parts = [_member_parts(n, archive) for n in names]
    members = [p for p in parts if p is not None]
    strip = 0  # leading wrapping folders to drop
    while True:
        inner = [p for p in members if len(p) > strip + 1]  # files inside a folder at this level
        tops = {p[strip] for p in inner}
        if len(tops) == 1 and next(iter(tops)) not in expected and any(len(p) > strip + 2 for p in inner):
            strip += 1  # a single wrapping folder that is not part of the expected path
        else:
            break
    inner = [p for p in members if len(p) > strip + 1]
    if not inner:
        raise DownloadError(f"{archive}: the archive holds no folders; expected {anchor}/...")
    tops = {p[strip] for p in inner}
    prefix = next((expected[:j] for j, level in enumerate(expected) if tops == {level}), None)
    if prefix is not None:
        mapped = {p: prefix + p[strip:] for p in inner}
        if any(m[: len(expected)] == expected and len(m) > len(expected) for m in mapped.values()):
            for p in members:
                if p not in mapped:
                    log.warning("%s: skipping the loose file %s", archive.name, "/".join(p))
            return [PurePosixPath(*mapped[p]) if p in mapped else None for p in parts]
    shown = ", ".join(sorted({"/".join(p[: strip + 1]) for p in inner})[:10])
    raise DownloadError(
        f"{archive}: unexpected layout; its top-level folders are {shown}, expected {anchor}/... "
        f"(or a part of that path, optionally inside one wrapping folder). The archive is kept; unpack it by "
        f"hand so that {anchor}/ appears under the data root."
    )


def _land_at(
    targets: list[PurePosixPath | None], anchor: str, land_at: str | None
) -> list[PurePosixPath | None]:
    """``targets`` with the ``anchor`` tree moved to ``land_at`` (unchanged without one)."""
    if not land_at or land_at == anchor:
        return targets
    old, new = PurePosixPath(anchor).parts, PurePosixPath(land_at).parts
    return [
        PurePosixPath(*new, *t.parts[len(old):]) if t is not None and t.parts[: len(old)] == old else t
        for t in targets
    ]


def unpack_archive(
    archive: str | os.PathLike,
    root: str | os.PathLike,
    anchor: str,
    progress: bool = True,
    land_at: str | None = None,
) -> list[tuple[str, int]]:
    """Unpack a zip into ``root`` so that ``anchor`` appears, via a staging folder (nothing partial in place).

    Files are extracted into ``<root>/downloads/<archive stem>.unpacking`` (same file system), then moved
    into place, merging with folders that already exist (other archives' trees, a user's own networks).
    ``land_at``: put the archive's ``anchor`` tree there instead (a directory renamed to the settings' name).

    Returns
    -------
    list of (relative POSIX path, size in bytes), one per unpacked file (the manifest).
    """
    archive, root = Path(archive), Path(root)
    staging = root / STATE_DIR / f"{archive.stem}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            manifest = _extract(zf, archive, staging, anchor, land_at, progress)
        _merge_tree(staging, root)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DownloadError(
            f"{archive} is not a valid zip archive ({e}); delete it and download it again"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _extract(
    zf: zipfile.ZipFile, archive: Path, staging: Path, anchor: str, land_at: str | None, progress: bool
) -> list[tuple[str, int]]:
    """Extract the members of ``zf`` into ``staging`` at their planned paths; returns the manifest."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    targets = _land_at(plan_unpack([i.filename for i in infos], anchor, archive), anchor, land_at)
    total = sum(i.file_size for i, t in zip(infos, targets, strict=True) if t is not None)
    manifest: list[tuple[str, int]] = []
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"unpacking {archive.name}",
              disable=not progress, dynamic_ncols=True) as bar:  # fmt: skip
        for info, target in zip(infos, targets, strict=True):
            if target is None:
                continue
            out = staging.joinpath(*target.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
            manifest.append((target.as_posix(), info.file_size))
            bar.update(info.file_size)
    return manifest


def _merge_tree(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst``: whole subtrees by one rename where ``dst`` has none."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        target = dst / child.name
        if child.is_dir() and target.is_dir() and not target.is_symlink():
            _merge_tree(child, target)
        elif child.is_dir() and target.exists():
            raise DownloadError(f"cannot unpack: {target} exists and is not a folder")
        else:
            if target.is_dir() and not target.is_symlink():
                raise DownloadError(f"cannot unpack: {target} is a folder, the archive has a file there")
            os.replace(child, target)


def join_pieces(pieces: Sequence[Path], out: Path) -> None:
    """Concatenate the pieces of a split zip, in order, into ``out`` (written atomically)."""
    with atomic_path(out) as tmp, open(tmp, "wb") as dst:
        for path in pieces:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
