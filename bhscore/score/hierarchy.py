"""The score's core: the significance filter, each item's top row, count tables and Spearman's rho from them.

See :mod:`bhscore.score` for the vocabulary (level, row, item).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from bhscore.kinds import SCORE_COMPONENTS

P_METHODS = ("legacy", "corrected")
#: Score components, in the order of the score table (a figure showing another order says so where it does).
COMPONENTS = SCORE_COMPONENTS


def correlation_p_values(r: np.ndarray, n: int, method: str = "legacy") -> np.ndarray:
    """Two-sided p-values of Pearson correlations over ``n`` samples.

    Parameters
    ----------
    r : ndarray
        Correlations.
    n : int
        Number of samples behind each r (test images); df = n - 2.
    method : {'legacy', 'corrected'}
        'corrected': t = r sqrt((n - 2) / (1 - r^2)), the textbook test.
        'legacy': t = r sqrt((n - 2) (1 - r^2)), the formula of the original code behind the published scores
        (it makes strong correlations non-significant).

    Returns
    -------
    ndarray, same shape as r
    """
    if method not in P_METHODS:
        raise ValueError(f"p_method must be one of {P_METHODS}, got {method!r}")
    if n < 3:
        raise ValueError(f"need at least 3 samples for a correlation test, got n = {n}")
    r = np.asarray(r, dtype=np.float64)
    one_minus = 1.0 - r**2
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "legacy":
            t = r * np.sqrt((n - 2) * one_minus)
        else:
            t = r * np.sqrt((n - 2) / one_minus)
    return 2.0 * stats.t.sf(np.abs(t), df=n - 2)


def top_rows(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best accuracy and its row for each item (NaN counts as 0; the input is not modified).

    Parameters
    ----------
    acc : ndarray of shape (n_rows, n_items)

    Returns
    -------
    best : ndarray of shape (n_items,)
    top : ndarray of shape (n_items,), int
        Row of the maximum; the first row wins ties.
    """
    acc = np.nan_to_num(np.asarray(acc, dtype=np.float64), nan=0.0)  # a copy: never mutate the caller's data
    top = np.argmax(acc, axis=0)
    return np.take_along_axis(acc, top[None, :], axis=0)[0], top


def keep_mask(best: np.ndarray, n: int, method: str = "legacy", p_threshold: float = 0.05) -> np.ndarray:
    """Items that enter the score: best accuracy > 0 and p < ``p_threshold``."""
    return (best > 0) & (correlation_p_values(best, n, method) < p_threshold)


# -------------------------------------------------------------------------------------------------
# count tables and Spearman
# -------------------------------------------------------------------------------------------------


def level_counts(
    levels: Sequence[np.ndarray], n: int, method: str = "legacy", p_threshold: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Count table of kept items per (level, top row).

    Parameters
    ----------
    levels : sequence of ndarray of shape (n_rows, n_items_level)
        Accuracies of each level, levels in hierarchy order; n_rows must be equal.
    n : int
        Test samples behind each accuracy.
    method, p_threshold
        The significance filter (see :func:`keep_mask`).

    Returns
    -------
    counts : ndarray of shape (n_levels, n_rows), int64
        Kept items of each level whose top row is each row.
    n_items : ndarray of shape (n_levels,), int64
        All items of each level (kept or not).
    """
    n_rows = {np.shape(a)[0] for a in levels}
    if len(n_rows) != 1:
        raise ValueError(f"every level needs the same number of rows, got {sorted(n_rows)}")
    (n_rows,) = n_rows
    counts = np.zeros((len(levels), n_rows), dtype=np.int64)
    n_items = np.zeros(len(levels), dtype=np.int64)
    for i, acc in enumerate(levels):
        best, top = top_rows(acc)
        counts[i] = np.bincount(top[keep_mask(best, n, method, p_threshold)], minlength=n_rows)
        n_items[i] = best.size
    return counts, n_items


def _midranks(totals: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of tied blocks of sizes ``totals`` (..., k), blocks in order."""
    before = np.cumsum(totals, axis=-1) - totals
    return before + (totals + 1) / 2.0


def spearman_from_counts(counts: np.ndarray) -> np.ndarray:
    """Spearman's rho between level number and top row, from count tables.

    Equal to ``scipy.stats.spearmanr`` on the expanded pairs (level, top) with ties averaged.

    Parameters
    ----------
    counts : ndarray of shape (..., n_levels, n_rows)

    Returns
    -------
    rho : ndarray of shape (...)
        NaN where fewer than two items are kept or either variable is constant.
    """
    c = np.asarray(counts, dtype=np.float64)
    level_tot = c.sum(axis=-1)  # (..., L)
    row_tot = c.sum(axis=-2)  # (..., R)
    total = level_tot.sum(axis=-1)  # (...)
    mean = (total + 1) / 2.0
    rx = _midranks(level_tot) - mean[..., None]
    ry = _midranks(row_tot) - mean[..., None]
    cov = np.einsum("...lr,...l,...r->...", c, rx, ry)
    var_x = np.einsum("...l,...l->...", level_tot, rx**2)
    var_y = np.einsum("...r,...r->...", row_tot, ry**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    return np.where((var_x > 0) & (var_y > 0), rho, np.nan)


def pooled_score(counts: np.ndarray, what: str = "BH score") -> float:
    """Spearman's rho of one count table (all its levels pooled, no layer selection), warning when NaN.

    Parameters
    ----------
    counts : ndarray of shape (n_levels, n_rows)
        Items per (level, top row), from :func:`level_counts`.
    what : str
        Named in the warning.
    """
    return _warn_if_nan(float(spearman_from_counts(counts)), counts, what)


def _warn_if_nan(value: float, counts: np.ndarray, what: str = "BH score") -> float:
    if math.isnan(value):
        kept = int(counts.sum())
        reason = (
            "no item passed the significance filter"
            if kept == 0
            else f"only {kept} item(s) passed the filter and level or top row is constant"
        )
        warnings.warn(f"{what} is NaN: {reason}", RuntimeWarning, stacklevel=3)
    return value


# -------------------------------------------------------------------------------------------------
# layer selection
# -------------------------------------------------------------------------------------------------


def legacy_voxel_subsample(acc: np.ndarray, size: int = 1000) -> np.ndarray:
    """The paper's voxel subsample of one (subject, ROI, layer) accuracy vector.

    Bit for bit ``numpy.random.seed(0); numpy.random.choice(acc, size, replace=False)`` for vectors longer than
    ``size``, without touching numpy's global random state; shorter vectors are returned unchanged (a copy).

    Parameters
    ----------
    acc : ndarray of shape (n_voxels,)

    Returns
    -------
    ndarray of shape (min(n_voxels, size),)
    """
    acc = np.asarray(acc)
    if acc.size <= size:
        return acc.copy()
    return np.random.RandomState(0).choice(acc, size=size, replace=False)


# -------------------------------------------------------------------------------------------------
# bootstrap
# -------------------------------------------------------------------------------------------------


def mean_accuracy_profile(levels: Sequence[np.ndarray]) -> np.ndarray:
    """Mean accuracy of each row of each level over its items, NaN ignored (NaN where a row has no value).

    Parameters
    ----------
    levels : sequence of ndarray of shape (n_rows, n_items)
        Accuracy levels as :meth:`AccuracyTree.decoding_levels` (one per layer, rows ROIs) or
        :meth:`AccuracyTree.encoding_levels` (one per ROI, rows layers) return them.

    Returns
    -------
    ndarray of shape (n_levels, n_rows)
        (n_layers, n_rois) for decoding levels; (n_rois, n_layers) for encoding levels (transpose it for the
        layer x ROI profile).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN row: NaN mean
        return np.stack([np.nanmean(level, axis=1) for level in levels])
