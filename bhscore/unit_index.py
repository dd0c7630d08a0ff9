"""Which units of each layer a features tree keeps: the seeded draw and the feature-index file's rules.

One implementation for both extraction routes: the host (:mod:`bhscore.extraction.units`) and the Caffe
container (:mod:`bhscore.caffe_container.extract`), which mounts this file (``CAFFE_CODE_PATHS``). So this
module runs under Python >= 3.9 and imports only the standard library and numpy; the callers pass how to read
and write an index file and which error to raise.

The feature-index file ``index_random<n>.mat`` sits beside the layers of a tree and maps each layer to the
sorted 0-based indices (C-order flattened output) of the units kept. A tree reuses its own file first, then the
other stimulus set's, so training and test features hold the same units.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

DEFAULT_N_UNITS = 1000


def index_file_name(n_units: int) -> str:
    """Name of the feature-index file beside the layers: ``index_random<n>.mat``."""
    return f"index_random{n_units}.mat"


def subsample_indices(n_total: int, n_keep: int | None, seed: int, layer: str) -> np.ndarray:
    """Sorted 0-based indices of ``n_keep`` units out of ``n_total``, drawn without replacement.

    The draw depends only on (``seed``, CRC-32 of ``layer``, ``n_total``, ``n_keep``): the same layer gets the
    same units in every run, in both stimulus sets and in both routes, whatever other layers are extracted.
    All units when ``n_keep`` is None or >= ``n_total``.

    Returns
    -------
    ndarray of shape (min(n_keep, n_total),), int64
    """
    if n_keep is None or n_keep >= n_total:
        return np.arange(n_total, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(layer.encode("utf-8"))]))
    return np.sort(rng.choice(n_total, size=n_keep, replace=False)).astype(np.int64)


def _other_indices(
    index_from: Sequence[str | os.PathLike],
    index_path: Path | None,
    read_index: Callable[[Path], Mapping[str, np.ndarray]],
) -> dict[str, tuple[np.ndarray, Path]]:
    """Layer -> (indices, file) from the existing files of ``index_from`` (first file wins; this tree's own
    file and missing files are skipped)."""
    others: dict[str, tuple[np.ndarray, Path]] = {}
    for src in index_from:
        src = Path(src)
        if src.exists() and (index_path is None or src.resolve() != index_path.resolve()):
            for layer, ix in read_index(src).items():
                others.setdefault(layer, (ix, src))
    return others


def resolve_unit_index(
    layer_units: Mapping[str, int],
    n_units: int | None,
    seed: int,
    index_path: Path | None,
    index_from: Sequence[str | os.PathLike] = (),
    *,
    read_index: Callable[[Path], Mapping[str, np.ndarray]],
    write_index: Callable[[Path, Mapping[str, np.ndarray]], object],
    error: type[Exception] = ValueError,
) -> dict[str, np.ndarray | None]:
    """Indices of the kept units per layer, reusing existing feature-index files; writes ``index_path``.

    This tree's file comes first (it describes what is on disk), then ``index_from``, else a new draw
    (:func:`subsample_indices`); ``index_path`` is rewritten when layers were added.

    Parameters
    ----------
    layer_units : mapping of str to int
        Layer -> total number of units (C-order flattened output).
    n_units : int or None
        Units kept per layer; None keeps all (no index file).
    seed : int
    index_path : Path or None
        This tree's index file; read first and updated with new layers.
    index_from : sequence of path-like
        Other index files to reuse (the other stimulus set's); missing files are ignored.
    read_index, write_index : callable
        Read and (atomically) write a feature-index file.
    error : exception class
        Raised, with a message naming the files and the remedy, when the files disagree with each other or
        with this run.

    Returns
    -------
    dict of str to (ndarray of shape (k,), int64) or None
    """
    if n_units is None:
        return {layer: None for layer in layer_units}
    own = read_index(index_path) if index_path is not None and index_path.exists() else {}
    others = _other_indices(index_from, index_path, read_index)
    result: dict[str, np.ndarray | None] = {}
    for layer, total in layer_units.items():
        want = min(n_units, total)
        if layer in own and layer in others and not np.array_equal(own[layer], others[layer][0]):
            raise error(
                f"layer {layer!r}: the feature-index files {index_path} and {others[layer][1]} keep different "
                "units; training and test features must hold the same units (delete one tree and re-extract)"
            )
        ix, src = (own[layer], index_path) if layer in own else others.get(layer, (None, None))
        if ix is None:
            ix = subsample_indices(total, n_units, seed, layer)
        elif ix.size != want or (ix.size and (ix.min() < 0 or ix.max() >= total)) or np.unique(ix).size != ix.size:
            raise error(
                f"layer {layer!r}: {src} holds {ix.size} unit indices (max {ix.max() if ix.size else '-'}), but this "
                f"run keeps {want} of {total} units; use the same n_units and model, or another output directory"
            )
        result[layer] = ix
    if index_path is not None and any(layer not in own for layer in result):
        merged = dict(own)
        merged.update({k: v for k, v in result.items() if v is not None})
        write_index(index_path, merged)
    return result
