"""The units a features tree keeps, on the host: the shared rules of :mod:`bhscore.unit_index` with the host's
feature-index reader and writer (:mod:`bhscore.formats`) and its :class:`~bhscore.errors.UserError`.

``n_units`` (default 1000) units per layer are drawn at random, seeded per (seed, layer name); the indices go
to the feature-index file ``index_random<n>.mat`` and are reused from an existing one (pass the other stimulus
set's file in ``index_from``), so training and test features hold the same units.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bhscore import unit_index
from bhscore.errors import UserError
from bhscore.formats import read_feature_index, write_feature_index
from bhscore.unit_index import DEFAULT_N_UNITS, index_file_name, subsample_indices

__all__ = ["DEFAULT_N_UNITS", "index_file_name", "resolve_unit_index", "subsample_indices"]


def resolve_unit_index(
    layer_units: Mapping[str, int],
    n_units: int | None,
    seed: int,
    index_path: Path | None,
    index_from: Sequence[str | os.PathLike] = (),
) -> dict[str, np.ndarray | None]:
    """Indices of the kept units per layer, reusing existing feature-index files; writes ``index_path``.

    :func:`bhscore.unit_index.resolve_unit_index` (parameters described there) with the host's feature-index
    reader and writer: ``index_path`` is this tree's file, read first and updated with new layers;
    ``index_from`` the other files to reuse (the other stimulus set's); ``n_units`` None keeps all units.

    Returns
    -------
    dict of str to (ndarray of shape (k,), int64) or None
        Layer -> the kept units' 0-based indices (C-order flattened output), None for all units.

    Raises
    ------
    UserError
        The files disagree with each other or with this run.
    """
    return unit_index.resolve_unit_index(
        layer_units, n_units, seed, index_path, index_from,
        read_index=read_feature_index, write_index=write_feature_index, error=UserError,
    )  # fmt: skip
