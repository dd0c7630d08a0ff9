"""Atomic file writes: a hidden temporary file beside the destination, renamed onto it when complete.

An interrupted write never leaves a file that looks complete. Temporary names start with ``.`` and end in
``.tmp<suffix>``, so the readers (and bdpy, which globs ``*.mat``) never list them. No heavy imports here:
settings, downloads and provenance records use this module without pulling in h5py.

The Caffe container mounts this file too (``bhscore.extraction.CAFFE_CODE_PATHS``): it must run under Python 3.9
with the standard library alone (numpy only inside :func:`atomic_save_npy`); ``make lint`` checks it as 3.9.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_umask = os.umask(0o022)
os.umask(_umask)
_FILE_MODE = 0o666 & ~_umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name is hidden (starts with ``.``) and keeps the suffix of ``path`` (some writers, like
    hdf5storage, care about it). On error the temporary file is removed and nothing appears at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes 0600 files; outputs get the usual umask-based mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_save_npy(path: str | os.PathLike, array) -> Path:
    """Save ``array`` as ``.npy`` atomically."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)
