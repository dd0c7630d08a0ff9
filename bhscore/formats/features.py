"""DNN features: the tree ``<root>/<layer>/<image>.mat`` (key ``feat``), feature-index files, the layer cache.

Each file holds one image's output of one layer, shape (1, n_units) or (1, C, H, W), float32, as MAT v7.3
(HDF5, written by hdf5storage/bdpy) or MAT v5 (scipy). An optional feature-index file beside the layers keeps
a subset of units per layer. :func:`read_layer` reads a layer as one matrix (one row per image) and can keep
it as a ``.npy`` cache so a layer of 1250 files is read once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import hdf5storage
import numpy as np
import scipy.io

from bhscore.atomic import atomic_path, atomic_save_npy, atomic_write_text
from bhscore.errors import CorruptFileError, MissingDataError, UserError
from bhscore.formats.mat import load_mat_array, savemat_v73

FEATURE_KEY = "feat"


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
        savemat_v73(path, {FEATURE_KEY: array})
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
    """``features_dir / layer``; :class:`MissingDataError` naming the layers present if it is not a directory."""
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
    """Image name -> directory entry of each ``*.mat`` file of a layer (hidden temporary files excluded)."""
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
    savemat_v73(Path(path), {"index": data})
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
    """SHA-1 of the names, sizes and modification times of the files of ``labels`` (the cache's key)."""
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
    layer_dir = _layer_dir(Path(features_dir), layer)
    files = _layer_files(layer_dir)
    all_labels = sorted(files)
    if labels is not None:
        _check_labels_present(files, labels, layer, layer_dir)
    if not all_labels:
        raise MissingDataError(layer_dir, how="bhscore extract", what=f"feature files of layer {layer!r}")

    if cache_dir is not None:
        data = _read_layer_cached(layer_dir, files, all_labels, Path(cache_dir) / f"{layer}.npy")
    else:
        data = _read_layer_files(layer_dir, all_labels)

    if labels is not None and list(labels) != all_labels:
        pos = {n: i for i, n in enumerate(all_labels)}
        data = data[np.array([pos[n] for n in labels], dtype=np.int64)]
    if feature_index is not None and layer in feature_index:
        data = _apply_feature_index(data, np.asarray(feature_index[layer]).ravel(), layer, layer_dir)
    return np.ascontiguousarray(data, dtype=np.float32)


def _check_labels_present(
    files: Mapping[str, os.DirEntry], labels: Sequence[str], layer: str, layer_dir: Path
) -> None:
    """Raise :class:`MissingDataError` naming the first images of ``labels`` that have no file in the layer."""
    missing = [n for n in labels if n not in files]
    if missing:
        raise MissingDataError(
            layer_dir / f"{missing[0]}.mat",
            how="bhscore extract (or make download-features)",
            what=f"features of {len(missing)} image(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} in layer {layer!r}",
        )


def _read_layer_cached(
    layer_dir: Path, files: Mapping[str, os.DirEntry], labels: Sequence[str], cache: Path
) -> np.ndarray:
    """The layer's files as rows in ``labels`` order, from ``cache`` (``.npy``) while its fingerprint matches.

    The fingerprint (names, sizes, modification times of the files) is kept beside the cache as ``.json``
    with the labels and the shape; a stale or unreadable cache is rebuilt from the files.

    Returns
    -------
    ndarray of shape (n_images, n_units), float32
        Memory-mapped when read from the cache.
    """
    meta = cache.with_suffix(".json")
    stamp = _fingerprint(files, labels)
    try:
        if json.loads(meta.read_text()).get("fingerprint") == stamp:
            return np.load(cache, mmap_mode="r")
    except (OSError, ValueError):
        pass
    data = _read_layer_files(layer_dir, labels)
    atomic_save_npy(cache, data)
    atomic_write_text(meta, json.dumps({"fingerprint": stamp, "labels": list(labels), "shape": data.shape}))
    return data


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
    """Read the files of ``labels`` into rows (a progress bar for over 1000 files).

    Returns
    -------
    ndarray of shape (len(labels), n_units), float32

    Raises
    ------
    CorruptFileError
        A file whose number of units differs from the first file's.
    """
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
