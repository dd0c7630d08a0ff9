"""MAT files: a fast MAT v7.3 writer (hdf5storage's bytes) and a reader of both flavours (v7.3/HDF5 and v5).

Writing
-------
A MAT v7.3 file is an HDF5 file with a 512-byte userblock whose first 128 bytes are MATLAB's text
header. bdpy writes them with ``hdf5storage.savemat(path, {...}, format='7.3', oned_as='column',
store_python_metadata=True)``, which spends 1-2 ms of Python per small file. Dense numeric arrays (the
accuracy, feature and bdmodel vector files) are written here with h5py directly, making the same calls in
the same order as hdf5storage 0.2 (create the file with the userblock, close it, write the header, reopen
it, create each dataset with hdf5storage's storage filters, then its attributes), so the files are
hdf5storage's byte for byte except for the creation time in the header (tests/test_formats_mat.py compares
them). A file whose datasets are all stored uncompressed is then kept as a template: later files with the
same variables, dtypes and shapes are that template with the header and the raw data replaced (the HDF5
metadata of a contiguous dataset does not depend on its values). Anything else (structs, strings, bools,
complex numbers, empty or 0-d arrays, numpy scalars) goes through hdf5storage.

Reading
-------
:func:`load_mat_arrays` reads dense arrays from either flavour as hdf5storage/scipy return them, and maps
missing, empty, truncated or foreign files to the project's errors (:mod:`bhscore.errors`).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import hdf5storage
import numpy as np
import scipy.io

from bhscore.atomic import atomic_path
from bhscore.errors import CorruptFileError, MissingDataError, MissingItemError

log = logging.getLogger(__name__)

_MAT73_CLASSES = {
    np.float32: "single",
    np.float64: "double",
    np.int8: "int8",
    np.int16: "int16",
    np.int32: "int32",
    np.int64: "int64",
    np.uint8: "uint8",
    np.uint16: "uint16",
    np.uint32: "uint32",
    np.uint64: "uint64",
}
#: MATLAB class -> numpy dtype name (reading empty arrays)
_MAT73_DTYPES = {cls: np.dtype(t).name for t, cls in _MAT73_CLASSES.items()}
_MAT73_DTYPES.update(logical="bool", char="uint16")
_MAT73_USERBLOCK = 512
# hdf5storage's defaults: datasets of 16 KiB or more are chunked and gzip-compressed
_MAT73_COMPRESS_BYTES = 16 * 1024
_MAT73_GZIP = dict(chunks=True, compression="gzip", compression_opts=7, shuffle=True, fletcher32=True)
_MAT73_PLAIN = dict(chunks=None, compression=None, compression_opts=None, shuffle=False, fletcher32=False)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAT73_TEMPLATES_MAX = 64
# (name, dtype, shape) of each variable -> (file image, (offset, size) of each one's raw data); oldest first
_mat73_templates: dict[tuple, tuple[bytes, tuple[tuple[int, int], ...]]] = {}
_mat73_templates_lock = threading.Lock()


def mat73_header(now: datetime.datetime | None = None) -> bytes:
    """The 128-byte MATLAB 7.3 header that hdf5storage puts at the start of the userblock.

    116 bytes of text (``MATLAB 7.3 MAT-file, Platform: hdf5storage <version>, Created on: <UTC time> HDF5
    schema 1.00 .``, space-padded), 8 zero bytes (no subsystem data), version 0x0200 and the endian
    indicator ``IM`` (little-endian writer).
    """
    now = datetime.datetime.now(tz=datetime.UTC) if now is None else now
    when = f"{_WEEKDAYS[now.weekday()]} {_MONTHS[now.month - 1]} {now:%d %H:%M:%S %Y}"
    text = f"MATLAB 7.3 MAT-file, Platform: hdf5storage {hdf5storage.__version__}, Created on: {when}"
    return (text + " HDF5 schema 1.00 .").encode("ascii")[:116].ljust(116, b" ") + bytes(8) + b"\x00\x02IM"


def _mat73_dense(mapping: Mapping[str, object]) -> list[tuple[str, np.ndarray]] | None:
    """The variables of ``mapping`` if all are non-empty, native-endian, real numeric ndarrays of >= 1
    dimension with plain names; otherwise None."""
    items = []
    for name, value in mapping.items():
        if not (isinstance(name, str) and name.isascii() and name.isidentifier()):
            return None
        if type(value) is not np.ndarray or value.dtype.type not in _MAT73_CLASSES:
            return None
        if not value.dtype.isnative or value.ndim == 0 or value.size == 0:
            return None
        items.append((name, value))
    return items


def _mat73_stored(value: np.ndarray) -> np.ndarray:
    """The dataset hdf5storage stores for ``value``: a 1-d array as a column, then the axes reversed."""
    return (value[:, None] if value.ndim == 1 else value).T


def _create_mat73_dataset(f: h5py.File, name: str, value: np.ndarray) -> tuple[int, int] | None:
    """Create variable ``name`` in ``f`` as hdf5storage does.

    Returns the (offset, size) of the raw data in the file, or None when the dataset is chunked. The dataset
    is closed on return, which flushes its chunks before the next variable is created (as in hdf5storage;
    it decides where HDF5 puts the next object).
    """
    stored = _mat73_stored(value)
    plain = stored.nbytes < _MAT73_COMPRESS_BYTES
    ds = f.create_dataset(name, data=stored, **(_MAT73_PLAIN if plain else _MAT73_GZIP))
    attrs = ds.attrs
    attrs.create("Python.Shape", np.array(value.shape, dtype=np.uint64))
    attrs.create("Python.numpy.UnderlyingType", np.bytes_(value.dtype.name))
    attrs.create("Python.numpy.Container", np.bytes_("ndarray"))
    attrs.create("MATLAB_class", np.bytes_(_MAT73_CLASSES[value.dtype.type]))
    attrs.create("Python.Type", np.bytes_("numpy.ndarray"))
    return (ds.id.get_offset(), stored.nbytes) if plain else None


def _write_mat73_h5py(
    path: Path, items: Sequence[tuple[str, np.ndarray]]
) -> tuple[tuple[int, int], ...] | None:
    """Write ``items`` to ``path`` (replacing what is there) as hdf5storage would.

    Returns the (offset, size) of each variable's raw data, or None when some dataset is chunked.
    """
    h5py.File(path, "w", userblock_size=_MAT73_USERBLOCK).close()
    with open(path, "r+b") as f:
        f.write(mat73_header())
    with h5py.File(path, "a") as f:
        spans = [_create_mat73_dataset(f, name, value) for name, value in items]
    return None if None in spans else tuple(spans)


def _write_mat73_dense(path: Path, items: Sequence[tuple[str, np.ndarray]]) -> None:
    """Write dense arrays to ``path`` (replacing what is there): from a template when one fits."""
    key = tuple((name, value.dtype.str, value.shape) for name, value in items)
    template = _mat73_templates.get(key)
    if template is None:
        spans = _write_mat73_h5py(path, items)
        if spans is None:
            return
        image = path.read_bytes()
        for (offset, size), (_, value) in zip(spans, items, strict=True):
            if image[offset : offset + size] != _mat73_stored(value).tobytes():
                log.debug("MAT v7.3 raw data of %s not where HDF5 says; no template", path)
                return
        with _mat73_templates_lock:  # writer threads (feature extraction) share the cache
            while len(_mat73_templates) >= _MAT73_TEMPLATES_MAX:
                _mat73_templates.pop(next(iter(_mat73_templates)))
            _mat73_templates[key] = (image, spans)
        return
    image, spans = template
    buf = bytearray(image)
    buf[:128] = mat73_header()
    for (offset, size), (_, value) in zip(spans, items, strict=True):
        buf[offset : offset + size] = _mat73_stored(value).tobytes()
    with open(path, "wb") as f:
        f.write(buf)


def savemat_v73(path: Path, mapping: Mapping[str, object]) -> None:
    """Write a MAT v7.3 file as ``bdpy.dataform.save_array`` (hdf5storage) does, atomically.

    Dense real numeric arrays are written by :func:`_write_mat73_dense` (hdf5storage's bytes but the
    header's time, at a small fraction of its CPU cost); anything else by hdf5storage itself.
    """
    items = _mat73_dense(mapping)
    with atomic_path(path) as tmp:  # an empty file, written over from scratch
        if items is not None:
            _write_mat73_dense(tmp, items)
        else:  # truncated: hdf5storage adds the MATLAB header only to files it creates
            opts = dict(format="7.3", oned_as="column", store_python_metadata=True, truncate_existing=True)
            hdf5storage.savemat(str(tmp), dict(mapping), **opts)


def _is_hdf5(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file (MAT v7.3) rather than MAT v5; :class:`CorruptFileError` if unreadable."""
    try:
        return h5py.is_hdf5(path)
    except OSError as e:  # unreadable
        raise CorruptFileError(path, str(e)) from None


def load_mat_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read array ``key`` from a MAT file of either flavour (v7.3/HDF5 or v5), with its original shape.

    MAT v7.3 datasets are read as hdf5storage reads them (see :func:`_read_h5_array`): axes reversed back,
    empty-array markers honoured; plain HDF5 datasets come back as stored.
    """
    return load_mat_arrays(path, [key])[key]


def _attr_text(attrs: h5py.AttributeManager, name: str) -> str | None:
    """Attribute ``name`` as text (the first element of an array attribute), or None when absent."""
    value = attrs.get(name)
    if value is None:
        return None
    value = np.asarray(value).ravel()[0] if np.ndim(value) else value
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _attr_flag(attrs: h5py.AttributeManager, name: str) -> bool:
    """Whether attribute ``name`` is present and equal to 1 (hdf5storage writes uint8, MATLAB uint32)."""
    value = np.asarray(attrs.get(name, 0)).ravel()
    return value.size > 0 and int(value[0]) == 1


def _read_h5_array(ds: h5py.Dataset) -> np.ndarray:
    """A dataset as hdf5storage 0.2 returns it.

    - The axes are reversed (MATLAB's column-major order) only when the dataset carries MATLAB/hdf5storage
      attributes (``MATLAB_class`` or ``Python.Shape``); a plain HDF5 dataset (h5py, Julia, ...) is returned
      as stored.
    - An empty array is stored as its *shape vector* (uint64) with the attribute ``MATLAB_empty`` = 1 (and
      ``Python.Empty`` = 1 from hdf5storage): MATLAB and hdf5storage write the dimensions in MATLAB's order,
      e.g. ``[1, 0]`` for a (1, 0) array. The result is an empty array of ``Python.Shape`` if present, else of
      that vector, with the dtype of ``Python.numpy.UnderlyingType`` or ``MATLAB_class``.
    - A ``Python.Shape`` with the same number of elements reshapes the result (a 1-D array written as a
      column comes back 1-D).
    """
    attrs = ds.attrs
    matlab_class = _attr_text(attrs, "MATLAB_class")
    python_shape = attrs.get("Python.Shape")
    if _attr_flag(attrs, "MATLAB_empty") or _attr_flag(attrs, "Python.Empty"):
        if python_shape is not None:
            shape = tuple(int(n) for n in np.asarray(python_shape).ravel())
        else:
            shape = tuple(int(n) for n in np.asarray(ds[()]).ravel())
        dtype = _attr_text(attrs, "Python.numpy.UnderlyingType") or _MAT73_DTYPES.get(matlab_class, "float64")
        try:
            return np.zeros(shape, dtype=np.dtype(dtype))
        except TypeError:  # a string/struct class: only the shape matters to us
            return np.zeros(shape)
    data = np.asarray(ds[()])
    if matlab_class is None and python_shape is None:
        return data
    data = data.T
    if python_shape is not None:
        shape = tuple(int(n) for n in np.asarray(python_shape).ravel())
        if shape != data.shape and int(np.prod(shape)) == data.size:
            data = data.reshape(shape)
    return data


def _mat_variables(path: Path) -> list[str]:
    """The variable names of a MAT v5 file (for messages)."""
    try:
        return [name for name, _, _ in scipy.io.whosmat(path)]
    except Exception:  # noqa: BLE001 - only used to word a message
        return []


def load_mat_arrays(
    path: str | os.PathLike, keys: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Read several arrays from one MAT file in a single open (see :func:`load_mat_array`).

    ``keys`` must be present, ``optional`` ones are returned when present.

    Raises
    ------
    MissingDataError
        No file at ``path``.
    CorruptFileError
        The file is empty, truncated or not a MAT file.
    MissingItemError
        A valid MAT file without one of ``keys`` (the message lists the variables it has).
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(path)
    wanted = [*keys, *optional]
    hdf5 = _is_hdf5(path)
    try:
        if hdf5:
            with h5py.File(path, "r") as f:
                have = [k for k in f.keys() if k != "#refs#"]  # '#refs#' holds MATLAB's cell/struct data
                for k in keys:
                    if k in f and not isinstance(f[k], h5py.Dataset):
                        problem = "is a struct or cell, not an array"
                        raise MissingItemError(path, "variable", k, problem=problem)
                out = {k: _read_h5_array(f[k]) for k in wanted if isinstance(f.get(k), h5py.Dataset)}
        else:
            out = {k: np.asarray(v) for k, v in scipy.io.loadmat(path, variable_names=wanted).items() if k in wanted}
    except (OSError, ValueError, IndexError, TypeError, KeyError, EOFError,
            scipy.io.matlab.MatReadError) as e:  # fmt: skip
        raise CorruptFileError(path, f"{type(e).__name__}: {e}") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise MissingItemError(path, "variable", missing[0], have if hdf5 else _mat_variables(path))
    return out
