"""MAT v7.3 files as bdpy / hdf5storage 0.2 write them, with h5py alone (Python >= 3.9, h5py >= 2.10).

A MAT v7.3 file is an HDF5 file with a 512-byte userblock whose first 128 bytes are MATLAB's header. Arrays are
stored with their axes reversed (a 1-d array as a column first) and carry the attributes hdf5storage writes
(``MATLAB_class``, ``Python.Shape``, ...); datasets of 16 KiB or more are chunked and gzip-compressed. A dict
becomes a MATLAB struct: a group with ``MATLAB_fields``, ``Python.Fields`` and one dataset per field. The host
(``bhscore.formats``, hdf5storage) reads these files as its own; ``tests/test_caffe_container.py`` compares
their structure with the host writer's. Every file is written atomically (:func:`bhscore.atomic.atomic_path`,
the host's own, mounted into the container).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from bhscore.atomic import atomic_path

USERBLOCK_BYTES = 512
#: hdf5storage's default: datasets of this many bytes or more are chunked and compressed
COMPRESS_BYTES = 16 * 1024
_GZIP = dict(chunks=True, compression="gzip", compression_opts=7, shuffle=True, fletcher32=True)
_PLAIN = dict(chunks=None, compression=None, compression_opts=None, shuffle=False, fletcher32=False)
MATLAB_CLASSES = {
    np.dtype(np.float32): "single",
    np.dtype(np.float64): "double",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.uint8): "uint8",
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def mat73_header(now: datetime.datetime | None = None) -> bytes:
    """The 128-byte MATLAB 7.3 header: 116 bytes of space-padded text, 8 zero bytes (no subsystem data),
    version 0x0200 and the little-endian indicator ``IM``."""
    now = datetime.datetime.now(tz=datetime.timezone.utc) if now is None else now
    when = f"{_WEEKDAYS[now.weekday()]} {_MONTHS[now.month - 1]} {now:%d %H:%M:%S %Y}"
    text = f"MATLAB 7.3 MAT-file, Platform: bhscore-caffe h5py {h5py.__version__}, Created on: {when} HDF5 schema 1.00 ."
    return text.encode("ascii")[:116].ljust(116, b" ") + bytes(8) + b"\x00\x02IM"


def _checked(name: str, value: np.ndarray) -> np.ndarray:
    """``value`` as a C-contiguous native-endian array; refuses what hdf5storage would store otherwise."""
    value = np.asarray(value)
    native = value.dtype.newbyteorder("=")
    if native not in MATLAB_CLASSES or value.ndim == 0 or value.size == 0:
        raise ValueError(f"{name}: only non-empty arrays of {sorted(map(str, MATLAB_CLASSES))} are written here")
    return np.ascontiguousarray(value, dtype=native)


def _write_dataset(group: h5py.Group, name: str, value: np.ndarray) -> h5py.Dataset:
    """Create ``name`` in ``group`` as hdf5storage stores an ndarray (axes reversed, its attributes)."""
    stored = (value[:, None] if value.ndim == 1 else value).T
    filters = _PLAIN if stored.nbytes < COMPRESS_BYTES else _GZIP
    ds = group.create_dataset(name, data=stored, **filters)
    ds.attrs.create("Python.Shape", np.array(value.shape, dtype=np.uint64))
    ds.attrs.create("Python.numpy.UnderlyingType", np.bytes_(value.dtype.name))
    ds.attrs.create("Python.numpy.Container", np.bytes_("ndarray"))
    ds.attrs.create("MATLAB_class", np.bytes_(MATLAB_CLASSES[value.dtype]))
    ds.attrs.create("Python.Type", np.bytes_("numpy.ndarray"))
    return ds


def _new_file(path: Path) -> None:
    """Create an empty HDF5 file with the userblock and write MATLAB's header into it."""
    h5py.File(str(path), "w", userblock_size=USERBLOCK_BYTES).close()
    with open(path, "r+b") as f:
        f.write(mat73_header())


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write numeric arrays as variables of a MAT v7.3 file, atomically (``bdpy.dataform.save_array``'s format).

    Parameters
    ----------
    path : path-like
    arrays : mapping of str to ndarray
        Variable name -> non-empty array of a dtype in :data:`MATLAB_CLASSES`.
    """
    items = [(name, _checked(name, value)) for name, value in arrays.items()]
    with atomic_path(path) as tmp:
        _new_file(tmp)
        with h5py.File(str(tmp), "a") as f:
            for name, value in items:
                _write_dataset(f, name, value)
    return Path(path)


def write_struct(path: str | os.PathLike, name: str, fields: Mapping[str, np.ndarray]) -> Path:
    """Write a dict of arrays as the MATLAB struct ``name`` of a MAT v7.3 file, atomically.

    The layout of ``hdf5storage.savemat(path, {name: fields}, format='7.3', oned_as='column',
    store_python_metadata=True)`` for str keys without ``/``, ``\\`` or a leading ``.``.
    """
    for key in fields:
        if not key or "/" in key or "\\" in key or "\x00" in key or key.startswith("."):
            raise ValueError(f"struct field {key!r}: no '/', '\\', NUL or leading '.' allowed")
    items = [(key, _checked(key, value)) for key, value in fields.items()]
    keys = [key for key, _ in items]
    with atomic_path(path) as tmp:
        _new_file(tmp)
        with h5py.File(str(tmp), "a") as f:
            group = f.create_group(name)
            matlab_fields = np.empty(len(keys), dtype=h5py.special_dtype(vlen=np.dtype("S1")))
            for i, key in enumerate(keys):
                matlab_fields[i] = np.array([c.encode("ascii") for c in key], dtype="S1")
            group.attrs.create("Python.dict.StoredAs", np.bytes_("individually"))
            group.attrs.create("Python.Fields", keys, dtype=h5py.special_dtype(vlen=str))
            group.attrs.create("Python.dict.key_str_types", np.bytes_("t" * len(keys)))
            group.attrs.create("MATLAB_fields", matlab_fields)
            group.attrs.create("MATLAB_class", np.bytes_("struct"))
            group.attrs.create("Python.Type", np.bytes_("dict"))
            for key, value in items:
                _write_dataset(group, key, value).attrs.create("H5PATH", np.bytes_(group.name))
    return Path(path)


def read_struct(path: str | os.PathLike, name: str) -> dict[str, np.ndarray]:
    """Read the struct ``name`` of a MAT v7.3 file (ours, hdf5storage's or MATLAB's): field -> flat array.

    Raises
    ------
    OSError
        Not an HDF5 file.
    KeyError
        No variable ``name``, or it is not a scalar struct.
    """
    with h5py.File(str(path), "r") as f:
        group = f.get(name)
        if not isinstance(group, h5py.Group):
            raise KeyError(f"no struct {name!r} (variables: {', '.join(f.keys()) or 'none'})")
        return {str(key): np.asarray(group[key][()]).ravel() for key in group}


def array_size(path: str | os.PathLike, name: str) -> int:
    """Number of elements of variable ``name`` of a MAT v7.3 file, without reading it."""
    with h5py.File(str(path), "r") as f:
        return int(np.prod(f[name].shape))
