"""Layer subsets (the decoding score's random 5-layer draws, or all of them) and the bootstrap of count tables."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from bhscore.score.hierarchy import spearman_from_counts


def layer_subsets(
    n_layers: int, per_draw: int = 5, n_draws: int = 100, seed: int = 0, exact: bool = False
) -> np.ndarray:
    """Layer subsets for the decoding-based score: first and last layer plus ``per_draw - 2`` inner layers.

    Parameters
    ----------
    n_layers : int
    per_draw : int
        Layers per subset.
    n_draws : int
        Random draws (ignored when ``exact``).
    seed : int
        Seed of ``numpy.random.default_rng``.
    exact : bool
        Every possible subset instead of random draws.

    Returns
    -------
    ndarray of shape (n_subsets, per_draw), int
        Sorted 0-based layer indices of each subset.
    """
    if n_layers < per_draw:
        raise ValueError(f"need at least {per_draw} layers, got {n_layers}")
    inner = np.arange(1, n_layers - 1)
    k = per_draw - 2
    if exact:
        chosen = np.array(list(itertools.combinations(inner, k)), dtype=np.int64).reshape(-1, k)
    else:
        rng = np.random.default_rng(seed)
        chosen = np.sort(np.stack([rng.choice(inner, size=k, replace=False) for _ in range(n_draws)]), axis=1)
    first = np.zeros((len(chosen), 1), dtype=np.int64)
    last = np.full((len(chosen), 1), n_layers - 1, dtype=np.int64)
    return np.hstack([first, chosen, last])


def n_exact_subsets(n_layers: int, per_draw: int = 5) -> int:
    """How many subsets the exact mode averages over: C(n_layers - 2, per_draw - 2)."""
    return math.comb(n_layers - 2, per_draw - 2)


def subset_scores(counts: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Spearman rho of each layer subset.

    Parameters
    ----------
    counts : ndarray of shape (..., n_layers, n_rois)
    subsets : ndarray of shape (n_subsets, per_draw)

    Returns
    -------
    ndarray of shape (..., n_subsets)
    """
    return spearman_from_counts(counts[..., subsets, :])


def _mean_of_draws(rhos: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(rhos, axis=-1)


# -------------------------------------------------------------------------------------------------
# encoding voxel subsample
# -------------------------------------------------------------------------------------------------


def resample_counts(counts: np.ndarray, n_items: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap count tables: each level's items resampled with replacement.

    Resampling the items of a level and recounting is a multinomial draw over its categories (each top row,
    or dropped by the filter) with the observed proportions, which is what this does.

    Parameters
    ----------
    counts : ndarray of shape (n_levels, n_rows)
    n_items : ndarray of shape (n_levels,)
    n_boot : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_boot, n_levels, n_rows)
    """
    dropped = n_items - counts.sum(axis=1)
    cats = np.hstack([counts, dropped[:, None]]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_items[:, None] > 0, cats / n_items[:, None], 0.0)
    out = np.empty((n_boot, *counts.shape), dtype=np.int64)
    for i in range(len(counts)):  # one multinomial per level (levels are few)
        if n_items[i] == 0:
            out[:, i] = 0
            continue
        out[:, i] = rng.multinomial(n_items[i], p[i], size=n_boot)[:, :-1]
    return out


def _ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


# -------------------------------------------------------------------------------------------------
# scores of one DNN
# -------------------------------------------------------------------------------------------------
