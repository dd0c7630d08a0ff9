"""Scores from item tops, all subjects pooled or each subject alone.

The count tables of :class:`~bhscore.stats.tops.ItemTops` are scored exactly as :mod:`bhscore.score` scores
them (the same seeded layer subsets for the decoding-based score).
"""

from __future__ import annotations

import warnings

import numpy as np

from bhscore.score import COMPONENTS, ScoreOptions, layer_subsets, n_exact_subsets, spearman_from_counts
from bhscore.stats.tops import ItemTops


def quiet_nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.nanmean`` without the warning of all-NaN slices (their mean is NaN, as intended)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, as intended
        return np.nanmean(x, axis=axis)


def score_subsets(n_layers: int, options: ScoreOptions, max_subsets: int | None = None) -> np.ndarray:
    """The seeded layer subsets of the decoding-based score, as :mod:`bhscore.score` uses them.

    In exact mode every subset, unless there are more than ``max_subsets``: then the seeded random ones.

    Returns
    -------
    ndarray of shape (n_subsets, options.layers_per_draw), int
    """
    exact = options.layer_selection == "exact"
    if exact and max_subsets is not None and n_exact_subsets(n_layers, options.layers_per_draw) > max_subsets:
        exact = False
    return layer_subsets(n_layers, options.layers_per_draw, options.n_draws, options.seed, exact=exact)


def decoding_score(counts: np.ndarray, options: ScoreOptions) -> np.ndarray:
    """Decoding-based score(s): the mean over the seeded layer subsets of Spearman's rho.

    Parameters
    ----------
    counts : ndarray of shape (..., n_layers, n_rois)

    Returns
    -------
    ndarray of shape (...)
    """
    subsets = score_subsets(counts.shape[-2], options)
    return quiet_nanmean(spearman_from_counts(counts[..., subsets, :]))


def scores_from_tops(tops: ItemTops, options: ScoreOptions, subject: int | None = None) -> dict[str, float]:
    """Decoding-, encoding-based and averaged score of one DNN (one subject alone, or pooled)."""
    dec = float(decoding_score(tops.decoding_counts(subject)[0], options))
    enc = float(spearman_from_counts(tops.encoding_counts(subject)[0]))
    return {"decoding": dec, "encoding": enc, "averaged": (dec + enc) / 2.0}


def subject_scores(tops: ItemTops, options: ScoreOptions) -> dict[str, np.ndarray]:
    """Each subject's scores alone.

    Returns
    -------
    dict
        component -> ndarray of shape (n_subjects,), subjects in ``tops.subjects`` order (NaN where a
        subject keeps too few items).
    """
    per = [scores_from_tops(tops, options, s) for s in range(len(tops.subjects))]
    return {c: np.array([p[c] for p in per]) for c in COMPONENTS}
