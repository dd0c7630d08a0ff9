"""fMRI data: bdpy BData HDF5 files (``*_VC_v2.h5``), read through bdpy and written in the real files' layout.

A BData file holds one matrix ``dataset`` (samples x columns: the voxels, then ``image_index`` and
``stimulus_name`` codes) and a metadata table (``metadata/key``, ``description``, ``value``: one row per key,
one value per column) that says which columns are voxels, which belong to each ROI (``ROI_<name>`` = 1) and
which hold the labels; ``vmap/stimulus_name`` maps each numeric code back to the stimulus name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from bhscore.atomic import atomic_path
from bhscore.errors import CorruptFileError, MissingDataError, MissingItemError


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
    codes = np.array([stimulus_code(n) for n in labels])
    image_index = np.array([rank[n] for n in labels], dtype=np.float64)
    dataset = np.hstack(blocks + [image_index[:, None], codes[:, None]])
    keys, descs, values = _bdata_metadata(list(rois), [b.shape[1] for b in blocks], dataset.shape[1])

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("dataset", data=dataset)
        f.create_dataset("metadata/key", data=[k.encode() for k in keys])
        f.create_dataset("metadata/description", data=[d.encode() for d in descs])
        f.create_dataset("metadata/value", data=values)
        f.create_dataset("header/creator", data=b"bhscore.formats.write_fmri")
        vmap = f.create_group("vmap/stimulus_name")
        for code, name in zip(codes, labels, strict=True):
            key = str(float(code))
            if key not in vmap:
                vmap.create_dataset(key, data=name.encode())
    return path


def _bdata_metadata(
    roi_names: Sequence[str], widths: Sequence[int], n_cols: int
) -> tuple[list[str], list[str], np.ndarray]:
    """The metadata table of a BData file whose columns are the ROI blocks, then image_index, stimulus_name.

    Parameters
    ----------
    roi_names : sequence of str, length n_rois
    widths : sequence of int, length n_rois
        Voxels of each ROI, in column order.
    n_cols : int
        Columns of the dataset: ``sum(widths) + 2``.

    Returns
    -------
    keys, descriptions : list of str, length n_keys
        ``VoxelData``, ``ROI_<name>`` for each ROI, ``image_index``, ``stimulus_name``.
    values : ndarray of shape (n_keys, n_cols), float64
        1 on the columns a key describes; 0 on the other voxels of an ROI row; NaN elsewhere.
    """
    n_vox = sum(widths)
    keys, descs, values = ["VoxelData"], ["1 = voxel data"], []
    voxel_row = np.full(n_cols, np.nan)
    voxel_row[:n_vox] = 1
    values.append(voxel_row)
    start = 0
    for roi, width in zip(roi_names, widths, strict=True):
        row = np.full(n_cols, np.nan)
        row[:n_vox] = 0
        row[start : start + width] = 1
        start += width
        keys.append(f"ROI_{roi}")
        descs.append(f"1 = ROI {roi}")
        values.append(row)
    for key, col in (("image_index", n_vox), ("stimulus_name", n_vox + 1)):
        row = np.full(n_cols, np.nan)
        row[col] = 1
        keys.append(key)
        descs.append(f"1 = {key}")
        values.append(row)
    return keys, descs, np.vstack(values)
