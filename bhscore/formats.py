"""Readers and writers of the real file formats (see ``docs``: data_formats.md).

- fMRI: bdpy BData HDF5 files (``*_VC_v2.h5``).
- DNN features: a tree ``<root>/<layer>/<image>.mat`` (key ``feat``), MAT v7.3 (HDF5, written by
  hdf5storage/bdpy) or MAT v5 (scipy); an optional feature-index file beside the layers; a per-layer array
  cache so a layer of 1250 files is read once.
- Accuracy trees: ``accuracy.mat`` (key ``accuracy``, float32, shape (1, n)).
- Trained models: bdpy's "bdmodel" directory (``W.mat`` sparse, ``b.mat``, normalisation vectors).

Every writer is atomic: it writes a hidden temporary file in the destination directory and renames it, so an
interrupted job never leaves a file that looks complete. Temporary names start with ``.`` and therefore are
never listed by the readers (nor by bdpy's ``Features``, which globs ``*.mat``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5storage
import numpy as np
import scipy.io

from bhscore.atomic import atomic_path, atomic_save_npy, atomic_write_text  # noqa: F401
from bhscore.errors import CorruptFileError, MissingDataError, MissingItemError, UserError

log = logging.getLogger(__name__)

FEATURE_KEY = "feat"
ACCURACY_KEY = "accuracy"

# -------------------------------------------------------------------------------------------------
# atomic writes
# -------------------------------------------------------------------------------------------------


# atomic_path, atomic_write_text, atomic_save_npy: bhscore.atomic (re-exported here)


# -------------------------------------------------------------------------------------------------
# MAT v7.3 writing
# -------------------------------------------------------------------------------------------------
#
# A MAT v7.3 file is an HDF5 file with a 512-byte userblock whose first 128 bytes are MATLAB's text
# header. bdpy writes them with ``hdf5storage.savemat(path, {...}, format='7.3', oned_as='column',
# store_python_metadata=True)``, which spends 1-2 ms of Python per small file. Dense numeric arrays (the
# accuracy, feature and bdmodel vector files) are written here with h5py directly, making the same calls in
# the same order as hdf5storage 0.2 (create the file with the userblock, close it, write the header, reopen
# it, create each dataset with hdf5storage's storage filters, then its attributes), so the files are
# hdf5storage's byte for byte except for the creation time in the header (tests/test_formats_mat.py compares
# them). A file whose datasets are all stored uncompressed is then kept as a template: later files with the
# same variables, dtypes and shapes are that template with the header and the raw data replaced (the HDF5
# metadata of a contiguous dataset does not depend on its values). Anything else (structs, strings, bools,
# complex numbers, empty or 0-d arrays, numpy scalars) goes through hdf5storage.

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


def _savemat_v73(path: Path, mapping: Mapping[str, object]) -> None:
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


# -------------------------------------------------------------------------------------------------
# fMRI (BData)
# -------------------------------------------------------------------------------------------------


@dataclass
class FMRIData:
    """The ROIs of one BData file.

    Attributes
    ----------
    rois : dict of str -> ndarray of shape (n_samples, n_voxels)
        Voxel data per ROI (float64), samples in file order.
    labels : list of str, length n_samples
        Stimulus name of each sample.
    image_index : ndarray of shape (n_samples,)
        1-based rank of each sample's stimulus name among the sorted names.
    """

    rois: dict[str, np.ndarray]
    labels: list[str]
    image_index: np.ndarray

    @property
    def n_samples(self) -> int:
        return len(self.labels)


def read_fmri(path: str | os.PathLike, rois: Sequence[str]) -> FMRIData:
    """Read the voxels of ``rois`` and the stimulus labels from a BData file (through bdpy).

    Parameters
    ----------
    path : path-like
        A ``*_VC_v2.h5`` file.
    rois : sequence of str
        ROI names; column selection ``ROI_<name> = 1``.

    Returns
    -------
    FMRIData

    Raises
    ------
    MissingDataError
        No file at ``path``.
    CorruptFileError
        Not a readable BData file.
    MissingItemError
        The file has no such ROI (the message lists the ROIs it has), or the ROI has no voxels.
    """
    import bdpy

    path = Path(path)
    if not path.exists():
        raise MissingDataError(path, how="make download-fmri", what="fMRI file")
    try:
        bd = bdpy.BData(str(path))
    except Exception as e:  # h5py/bdpy raise many types on a corrupt file
        raise CorruptFileError(path, f"not a BData file ({type(e).__name__}: {e})") from None
    keys = list(bd.metadata.key)
    out = {}
    for roi in rois:
        if f"ROI_{roi}" not in keys:
            have = sorted(k.removeprefix("ROI_") for k in keys if k.startswith("ROI_"))
            raise MissingItemError(path, "ROI", roi, have)
        out[roi] = np.asarray(bd.select(f"ROI_{roi} = 1", verbose=False), dtype=np.float64)
        if out[roi].shape[1] == 0:
            problem = f"has no voxels (metadata ROI_{roi} is 1 on no column)"
            raise MissingItemError(path, "ROI", roi, problem=problem)
    try:
        labels = [str(x) for x in bd.get_label("stimulus_name")]
        image_index = np.asarray(bd.select("image_index", verbose=False)).ravel()
    except (ValueError, KeyError) as e:
        raise CorruptFileError(path, f"no stimulus_name labels / image_index column ({e})") from None
    return FMRIData(rois=out, labels=labels, image_index=np.rint(image_index).astype(np.int64))


def average_by_label(X: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Average the samples that show the same stimulus.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_columns)
    labels : sequence of str, length n_samples

    Returns
    -------
    X_mean : ndarray of shape (n_images, n_columns)
        One row per distinct label, in sorted label order.
    names : list of str, length n_images
        The sorted distinct labels.
    """
    names, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names)).astype(X.dtype)
    sums = np.zeros((len(names), X.shape[1]), dtype=np.result_type(X.dtype, np.float64))
    np.add.at(sums, inverse, X)
    return (sums / counts[:, None]).astype(X.dtype, copy=False), [str(n) for n in names]


def stimulus_code(name: str) -> float:
    """The numeric code of a stimulus name in the real files: ``n01518878_10042`` -> 1518878.010042."""
    synset, _, number = name.partition("_")
    try:
        return float(int(synset.lstrip("n"))) + int(number) / 1e6
    except ValueError:
        raise ValueError(f"stimulus name {name!r} is not of the form n<8 digits>_<number>") from None


def write_fmri(
    path: str | os.PathLike,
    rois: Mapping[str, np.ndarray],
    labels: Sequence[str],
    names: Sequence[str] | None = None,
) -> Path:
    """Write a BData HDF5 file in the layout of the real ``*_VC_v2.h5`` files (atomically).

    Parameters
    ----------
    path : path-like
    rois : mapping of str -> ndarray of shape (n_samples, n_voxels_roi)
        Voxels of each ROI; the ROIs are disjoint column blocks (``ROI_<name>`` = 1 on its block, 0 on other
        voxels).
    labels : sequence of str, length n_samples
        Stimulus name shown in each sample (``n01518878_10042`` form).
    names : sequence of str, optional
        All stimulus names of the set; ``image_index`` is the 1-based rank in ``sorted(names)``.
        Default: the distinct ``labels``.
    """
    names = sorted(set(labels) if names is None else names)
    rank = {n: i + 1 for i, n in enumerate(names)}
    n_samples = len(labels)
    blocks = [np.asarray(v, dtype=np.float64) for v in rois.values()]
    if any(b.ndim != 2 or b.shape[0] != n_samples for b in blocks):
        raise ValueError(f"every ROI array must be (n_samples={n_samples}, n_voxels)")
    n_vox = sum(b.shape[1] for b in blocks)
    codes = np.array([stimulus_code(n) for n in labels])
    image_index = np.array([rank[n] for n in labels], dtype=np.float64)
    dataset = np.hstack(blocks + [image_index[:, None], codes[:, None]])
    n_cols = dataset.shape[1]

    keys, descs, values = ["VoxelData"], ["1 = voxel data"], []
    voxel_row = np.full(n_cols, np.nan)
    voxel_row[:n_vox] = 1
    values.append(voxel_row)
    start = 0
    for roi, block in zip(rois, blocks, strict=True):
        row = np.full(n_cols, np.nan)
        row[:n_vox] = 0
        row[start : start + block.shape[1]] = 1
        start += block.shape[1]
        keys.append(f"ROI_{roi}")
        descs.append(f"1 = ROI {roi}")
        values.append(row)
    for key, col in (("image_index", n_vox), ("stimulus_name", n_vox + 1)):
        row = np.full(n_cols, np.nan)
        row[col] = 1
        keys.append(key)
        descs.append(f"1 = {key}")
        values.append(row)

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("dataset", data=dataset)
        f.create_dataset("metadata/key", data=[k.encode() for k in keys])
        f.create_dataset("metadata/description", data=[d.encode() for d in descs])
        f.create_dataset("metadata/value", data=np.vstack(values))
        f.create_dataset("header/creator", data=b"bhscore.formats.write_fmri")
        vmap = f.create_group("vmap/stimulus_name")
        for code, name in zip(codes, labels, strict=True):
            key = str(float(code))
            if key not in vmap:
                vmap.create_dataset(key, data=name.encode())
    return path


# -------------------------------------------------------------------------------------------------
# DNN features
# -------------------------------------------------------------------------------------------------


def save_feature(path: str | os.PathLike, array: np.ndarray, flavour: str = "v7.3") -> Path:
    """Write one image's features (key ``feat``, float32) atomically.

    Parameters
    ----------
    path : path-like
        ``<root>/<layer>/<image>.mat``.
    array : ndarray of shape (1, n_units) or (1, C, H, W)
    flavour : {'v7.3', 'v5'}
        'v7.3' is bdpy's ``save_array`` format (hdf5storage); 'v5' is ``scipy.io.savemat``.
    """
    path = Path(path)
    array = np.asarray(array, dtype=np.float32)
    if flavour == "v7.3":
        _savemat_v73(path, {FEATURE_KEY: array})
    elif flavour == "v5":
        with atomic_path(path) as tmp:
            scipy.io.savemat(tmp, {FEATURE_KEY: array})
    else:
        raise ValueError(f"flavour must be 'v7.3' or 'v5', got {flavour!r}")
    return path


def load_feature(path: str | os.PathLike) -> np.ndarray:
    """Read one feature file (either MAT flavour); returns the array with its stored shape."""
    return load_mat_array(path, FEATURE_KEY)


def feature_layers(features_dir: str | os.PathLike) -> list[str]:
    """Sorted layer directories of a features tree."""
    features_dir = Path(features_dir)
    if not features_dir.is_dir():
        raise MissingDataError(features_dir, how="make download-features (or bhscore extract)", what="features tree")
    return sorted(p.name for p in features_dir.iterdir() if p.is_dir())


def _layer_dir(features_dir: Path, layer: str) -> Path:
    d = Path(features_dir) / layer
    if not d.is_dir():
        have = feature_layers(features_dir)
        raise MissingDataError(
            d,
            how=f"make download-features (or bhscore extract); layers present: {', '.join(have) or 'none'}",
            what=f"features of layer {layer!r}",
        )
    return d


def _layer_files(layer_dir: Path) -> dict[str, os.DirEntry]:
    return {
        e.name[:-4]: e
        for e in os.scandir(layer_dir)
        if e.name.endswith(".mat") and not e.name.startswith(".") and e.is_file()
    }


def feature_labels(features_dir: str | os.PathLike, layer: str) -> list[str]:
    """Sorted image names (file stems) of one layer of a features tree."""
    return sorted(_layer_files(_layer_dir(Path(features_dir), layer)))


def feature_shape(features_dir: str | os.PathLike, layer: str) -> tuple[int, ...]:
    """Shape of one image's units in a layer (the first file's array without its leading axis of 1)."""
    first = feature_labels(features_dir, layer)[0]
    return tuple(load_feature(Path(features_dir) / layer / f"{first}.mat").shape[1:])


def fortran_unit_order(shape: Sequence[int]) -> np.ndarray:
    """Column order that turns C-flattened units of ``shape`` into Fortran-flattened ones.

    ``X.reshape(n, -1)[:, fortran_unit_order(shape)]`` equals ``X.reshape(n, -1, order='F')`` for X of shape
    ``(n, *shape)`` (the original encoding scripts flatten their features that way).

    Returns
    -------
    ndarray of shape (prod(shape),), int64
    """
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(tuple(shape)).ravel(order="F")


def write_feature_index(path: str | os.PathLike, index: Mapping[str, np.ndarray]) -> Path:
    """Write a feature-index file (key ``index``: struct layer -> 0-based unit indices), atomically.

    Units are indices into the C-order flattened layer output, as bdpy's ``Features(feature_index=...)`` uses.
    """
    data = {layer: np.asarray(ix, dtype=np.int64).ravel() for layer, ix in index.items()}
    _savemat_v73(Path(path), {"index": data})
    return Path(path)


def read_feature_index(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a feature-index file; returns layer -> 0-based int64 indices."""
    path = Path(path)
    if not path.exists():
        raise MissingDataError(path, what="feature-index file")
    try:
        raw = hdf5storage.loadmat(str(path))["index"]
    except Exception as e:
        raise CorruptFileError(path, f"not a feature-index file ({type(e).__name__}: {e})") from None
    if isinstance(raw, np.ndarray) and raw.dtype.names:  # written by MATLAB: a struct array
        raw = {name: raw[name].ravel()[0] for name in raw.dtype.names}
    return {str(k): np.asarray(v).ravel().astype(np.int64) for k, v in dict(raw).items()}


def _fingerprint(files: Mapping[str, os.DirEntry], labels: Sequence[str]) -> str:
    h = hashlib.sha1()
    for name in labels:
        st = files[name].stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_layer(
    features_dir: str | os.PathLike,
    layer: str,
    labels: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    feature_index: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Read one layer of a features tree as a matrix, one row per image.

    Parameters
    ----------
    features_dir : path-like
        ``features/<split>/<framework>/<network>``.
    layer : str
    labels : sequence of str, optional
        Image names, in the order of the rows wanted. Default: all images, sorted by name.
    cache_dir : path-like, optional
        Keep the whole layer as ``<cache_dir>/<layer>.npy`` (sorted rows) and reuse it while no source file
        changed (names, sizes and modification times are fingerprinted), so later reads cost one array load.
    feature_index : mapping, optional
        Layer -> 0-based unit indices to keep (a feature-index file). Applied as bdpy's ``Features`` applies
        it (columns ``data[:, index]``, in the index's order) whenever every index is a unit of the files,
        so an index as long as the layer (a permutation) reorders the units. An index that points past the
        files' units and is as long as them describes files that already hold the subset (extracted with
        this index); they are used as they are. Any other mismatch raises :class:`UserError`.

    Returns
    -------
    ndarray of shape (n_images, n_units), float32
        Units are the C-order flattening of each file's array without its leading axis of 1.
    """
    features_dir = Path(features_dir)
    layer_dir = _layer_dir(features_dir, layer)
    files = _layer_files(layer_dir)
    all_labels = sorted(files)
    if labels is not None:
        missing = [n for n in labels if n not in files]
        if missing:
            raise MissingDataError(
                layer_dir / f"{missing[0]}.mat",
                how="bhscore extract (or make download-features)",
                what=f"features of {len(missing)} image(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} in layer {layer!r}",
            )
    if not all_labels:
        raise MissingDataError(layer_dir, how="bhscore extract", what=f"feature files of layer {layer!r}")

    data = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{layer}.npy"
        meta = cache.with_suffix(".json")
        stamp = _fingerprint(files, all_labels)
        try:
            if json.loads(meta.read_text()).get("fingerprint") == stamp:
                data = np.load(cache, mmap_mode="r")
        except (OSError, ValueError):
            data = None
        if data is None:
            data = _read_layer_files(layer_dir, all_labels)
            atomic_save_npy(cache, data)
            atomic_write_text(meta, json.dumps({"fingerprint": stamp, "labels": all_labels, "shape": data.shape}))
    else:
        data = _read_layer_files(layer_dir, all_labels)

    if labels is not None and list(labels) != all_labels:
        pos = {n: i for i, n in enumerate(all_labels)}
        data = data[np.array([pos[n] for n in labels], dtype=np.int64)]
    if feature_index is not None and layer in feature_index:
        data = _apply_feature_index(data, np.asarray(feature_index[layer]).ravel(), layer, layer_dir)
    return np.ascontiguousarray(data, dtype=np.float32)


def _apply_feature_index(data: np.ndarray, index: np.ndarray, layer: str, layer_dir: Path) -> np.ndarray:
    """``data[:, index]`` as bdpy does, unless the files already hold the indexed subset (see read_layer).

    Parameters
    ----------
    data : ndarray of shape (n_images, n_units)
    index : ndarray of shape (k,), int
    """
    n_units = data.shape[1]
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise UserError(f"the feature index of layer {layer!r} holds {index.dtype} values, not unit numbers")
    in_range = index.size == 0 or (index.min() >= 0 and index.max() < n_units)
    if in_range:
        return data[:, index]
    if index.size == n_units:  # the files hold the indexed units already
        return data
    raise UserError(
        f"the feature index of layer {layer!r} has {index.size} unit indices ({index.min()}..{index.max()}), "
        f"but the files in {layer_dir} hold {n_units} units; the index file belongs to another network or "
        "extraction (re-extract the features, or remove the index file)"
    )


def _read_layer_files(layer_dir: Path, labels: Sequence[str]) -> np.ndarray:
    from tqdm.auto import tqdm

    first = load_feature(layer_dir / f"{labels[0]}.mat")
    out = np.empty((len(labels), first.size), dtype=np.float32)
    out[0] = first.reshape(-1)
    it = labels[1:]
    if len(labels) > 1000:  # a real training layer (1200 files) takes seconds: show it
        it = tqdm(it, desc=f"read {layer_dir.name}", unit="img", leave=False)
    for i, name in enumerate(it, start=1):
        a = load_feature(layer_dir / f"{name}.mat")
        if a.size != first.size:
            raise CorruptFileError(
                layer_dir / f"{name}.mat", f"{a.size} units, but {labels[0]}.mat has {first.size}"
            )
        out[i] = a.reshape(-1)
    return out


# -------------------------------------------------------------------------------------------------
# accuracy trees
# -------------------------------------------------------------------------------------------------


def write_accuracy(
    path: str | os.PathLike,
    accuracy: np.ndarray,
    n_samples: int | None = None,
    provenance: Mapping[str, object] | None = None,
) -> Path:
    """Write an accuracy file (MAT v7.3, key ``accuracy``, float32, shape (1, n)), atomically.

    Parameters
    ----------
    path : path-like
    accuracy : ndarray of shape (n,)
        One Pearson r per unit (decoding) or voxel (encoding).
    n_samples : int, optional
        Number of test images behind each r; stored as the extra variable ``n_samples`` so that the
        significance test reads it from the data.
    provenance : mapping, optional
        The provenance record (:mod:`bhscore.provenance`), stored as the extra variable ``provenance``
        (uint8 bytes of its JSON). bdpy, hdf5storage and MATLAB read the file as before.
    """
    from bhscore.provenance import PROVENANCE_KEY, encode_record

    mapping: dict[str, object] = {ACCURACY_KEY: np.asarray(accuracy, dtype=np.float32).reshape(1, -1)}
    if n_samples is not None:
        mapping["n_samples"] = np.array([[n_samples]], dtype=np.float64)
    if provenance is not None:
        mapping[PROVENANCE_KEY] = encode_record(provenance)
    _savemat_v73(Path(path), mapping)
    return Path(path)


@dataclass
class AccuracyFile:
    """The content of one accuracy file.

    Attributes
    ----------
    accuracy : ndarray of shape (n,), float64
        Flattened (C order) accuracies.
    n_samples : int or None
        Test images behind each accuracy, if the file records it.
    provenance : dict or None
        The provenance record, if the file has one (computed by bhscore >= 0.2).
    """

    accuracy: np.ndarray
    n_samples: int | None
    provenance: dict | None


def read_accuracy_file(path: str | os.PathLike) -> AccuracyFile:
    """Read an accuracy file with its optional ``n_samples`` and ``provenance`` (one open).

    Raises
    ------
    MissingDataError, CorruptFileError
        No file; an unreadable file, or a provenance variable that is not a record.
    """
    from bhscore.provenance import PROVENANCE_KEY, decode_record

    arrays = load_mat_arrays(path, [ACCURACY_KEY], optional=["n_samples", PROVENANCE_KEY])
    n = arrays.get("n_samples")
    record = None
    if PROVENANCE_KEY in arrays:
        try:
            record = decode_record(arrays[PROVENANCE_KEY])
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptFileError(path, f"its provenance record is unreadable ({e})") from None
    return AccuracyFile(
        accuracy=arrays[ACCURACY_KEY].astype(np.float64).ravel(),
        n_samples=None if n is None or n.size == 0 else int(n.ravel()[0]),
        provenance=record,
    )


def read_accuracy(path: str | os.PathLike) -> tuple[np.ndarray, int | None]:
    """Read an accuracy file: (accuracy of shape (n,) float64, n_samples or None); see :func:`read_accuracy_file`."""
    f = read_accuracy_file(path)
    return f.accuracy, f.n_samples


# -------------------------------------------------------------------------------------------------
# trained models (bdmodel)
# -------------------------------------------------------------------------------------------------

_BDMODEL_VECTORS = ("b", "x_mean", "x_norm", "y_mean", "y_norm")


def save_bdmodel(
    model_dir: str | os.PathLike,
    W: np.ndarray,
    b: np.ndarray,
    x_mean: np.ndarray,
    x_norm: np.ndarray,
    y_mean: np.ndarray,
    y_norm: np.ndarray,
    dtype: type = np.float32,
) -> Path:
    """Save a trained linear model in bdpy's bdmodel layout (each file atomic; ``W.mat`` written last).

    Parameters
    ----------
    W : ndarray of shape (n_inputs, n_outputs)
        Stored as a bdpy sparse array (most weights are 0 after input selection).
    b : ndarray of shape (1, n_outputs)
    x_mean, x_norm : ndarray of shape (1, n_inputs)
    y_mean, y_norm : ndarray of shape (1, n_outputs)
    """
    from bdpy.dataform import SparseArray

    model_dir = Path(model_dir)
    for name, arr in zip(_BDMODEL_VECTORS, (b, x_mean, x_norm, y_mean, y_norm), strict=True):
        _savemat_v73(model_dir / f"{name}.mat", {name: np.asarray(arr, dtype=dtype).reshape(1, -1)})
    with atomic_path(model_dir / "W.mat") as tmp:
        tmp.unlink()  # hdf5storage adds the MATLAB header only to files it creates
        SparseArray(np.asarray(W, dtype=dtype)).save(str(tmp), key="W", dtype=dtype)
    return model_dir


def load_bdmodel(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a bdmodel directory; returns dict with W (n_inputs, n_outputs), b, x_mean, x_norm, y_mean, y_norm."""
    from bdpy.dataform import load_array

    model_dir = Path(model_dir)
    out = {}
    for name in ("W", *_BDMODEL_VECTORS):
        p = model_dir / f"{name}.mat"
        if not p.exists():
            raise MissingDataError(p, how="bhscore decode --save-model", what="trained model file")
        out[name] = np.asarray(load_array(str(p), key=name))
    return out
