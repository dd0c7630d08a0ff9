"""Accuracy trees: ``accuracy.mat`` files (MAT v7.3, key ``accuracy``, float32, shape (1, n)).

One file per (layer, subject, ROI) job: one Pearson r per unit (decoding) or voxel (encoding), optionally with
the number of test images behind each r (``n_samples``) and the job's provenance record (``provenance``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bhscore.errors import CorruptFileError
from bhscore.formats.mat import load_mat_arrays, savemat_v73

ACCURACY_KEY = "accuracy"


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
    savemat_v73(Path(path), mapping)
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
