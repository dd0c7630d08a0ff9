"""The paired bootstrap of every DNN's scores at once.

Counts are resampled as :mod:`bhscore.stats.resample` describes (units within layers, voxels within
(subject, ROI) shared by every DNN); each replicate also draws its own random layer subsets for the
decoding-based score (the published score is a mean over random subsets; that randomness is part of its
uncertainty). One bootstrap of all DNNs (shared voxel draws) gives every pair's difference distribution
(:func:`bhscore.stats.pairwise.pairwise_table`): 406 pairs cost no more than 29 DNNs, and
``bhscore compare A B`` reproduces the pair's row of the all-pairs table exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bhscore.score import COMPONENTS, ScoreOptions, spearman_from_counts
from bhscore.stats.per_subject import quiet_nanmean, scores_from_tops
from bhscore.stats.resample import (
    UNIT_RESAMPLING,
    name_key,
    resample_decoding_counts,
    resample_encoding_counts,
)
from bhscore.stats.tops import ItemTops


def random_layer_subsets(
    n_layers: int, per_draw: int, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Uniform random layer subsets (first and last layer + ``per_draw - 2`` distinct inner ones), vectorised.

    Floyd's algorithm on every element of ``shape`` at once: the same distribution as
    :func:`bhscore.score.layer_subsets`, without a Python loop over draws.

    Returns
    -------
    ndarray of shape (*shape, per_draw), int64
        Sorted layer indices.
    """
    k, m = per_draw - 2, n_layers - 2
    if m < k:
        raise ValueError(f"need at least {per_draw} layers, got {n_layers}")
    chosen = np.empty((*shape, k), dtype=np.int64)
    for i, j in enumerate(range(m - k, m)):
        t = rng.integers(0, j + 1, size=shape)
        taken = (chosen[..., :i] == t[..., None]).any(axis=-1)
        chosen[..., i] = np.where(taken, j, t)
    chosen = np.sort(chosen, axis=-1) + 1
    first = np.zeros((*shape, 1), dtype=np.int64)
    last = np.full((*shape, 1), n_layers - 1, dtype=np.int64)
    return np.concatenate([first, chosen, last], axis=-1)


def subset_spearman(counts: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Spearman's rho of per-replicate layer subsets of per-replicate count tables (batch axis last: fast).

    Equal to ``spearman_from_counts(counts[arange(n)[:, None, None], subsets])``.

    Parameters
    ----------
    counts : ndarray of shape (n, n_layers, n_rois)
    subsets : ndarray of shape (n, n_draws, per_draw), int

    Returns
    -------
    ndarray of shape (n, n_draws)
    """
    n, n_layers, n_rois = counts.shape
    flat = subsets + (np.arange(n) * n_layers)[:, None, None]
    by_roi = np.ascontiguousarray(np.moveaxis(counts, -1, 0).reshape(n_rois, n * n_layers), dtype=np.float64)
    c = by_roi[:, np.moveaxis(flat, -1, 0)]  # (n_rois, per_draw, n, n_draws)
    level_tot, row_tot = c.sum(axis=0), c.sum(axis=1)
    shift = 0.5 - (level_tot.sum(axis=0) + 1) / 2.0  # 1-based midranks minus their mean
    rx = np.cumsum(level_tot, axis=0) - level_tot / 2.0 + shift
    ry = np.cumsum(row_tot, axis=0) - row_tot / 2.0 + shift
    cov = (np.einsum("rp...,r...->p...", c, ry) * rx).sum(axis=0)
    var_x, var_y = (level_tot * rx**2).sum(axis=0), (row_tot * ry**2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    return np.where((var_x > 0) & (var_y > 0), rho, np.nan)


@dataclass
class BootstrapScores:
    """Scores of several DNNs and their bootstrap replicates from one joint resampling.

    Attributes
    ----------
    dnns : list of str
    point : dict
        component -> ndarray of shape (n_dnns,): the scores (seeded layer subsets, as in the score table).
    replicates : dict
        component -> ndarray of shape (n_dnns, n_boot).
    paired : ndarray of shape (n_dnns,), bool
        Whether the DNN's voxels were resampled together with the others' (paired encoding comparison).
    scheme : str
        Unit resampling scheme (:data:`~bhscore.stats.resample.UNIT_RESAMPLING`).
    """

    dnns: list[str]
    point: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    paired: np.ndarray
    scheme: str = "joint"

    @property
    def n_boot(self) -> int:
        return self.replicates["averaged"].shape[1]


def _decoding_replicates(
    tops: ItemTops, options: ScoreOptions, n_boot: int, seed: int, scheme: str, chunk: int
) -> np.ndarray:
    """Bootstrap replicates of one DNN's decoding-based score: resampled units, fresh layer subsets.

    Returns
    -------
    ndarray of shape (n_boot,)
    """
    out = np.empty(n_boot)
    rng = np.random.default_rng([seed, 4, name_key(tops.dnn)])
    counts = resample_decoding_counts(tops, n_boot, rng, scheme)
    for start in range(0, n_boot, chunk):
        c = counts[start : start + chunk]
        subsets = random_layer_subsets(tops.n_layers, options.layers_per_draw, (len(c), options.n_draws), rng)
        out[start : start + chunk] = quiet_nanmean(subset_spearman(c, subsets))
    return out


def bootstrap_scores(
    all_tops: Sequence[ItemTops],
    options: ScoreOptions,
    n_boot: int | None = None,
    seed: int | None = None,
    scheme: str = "joint",
    chunk: int = 250,
) -> BootstrapScores:
    """Bootstrap replicates of every DNN's scores, resampled as this module's docstring says.

    Parameters
    ----------
    all_tops : sequence of ItemTops
        The DNNs (same subjects and ROIs).
    options : ScoreOptions
        Filter-independent settings used here: layers_per_draw, n_draws, layer_selection, seed.
    n_boot : int, optional
        Resamples (default ``options.n_bootstrap``, at least 1).
    seed : int, optional
        Default ``options.seed``.
    scheme : {'joint', 'subject'}
        Unit resampling (:data:`~bhscore.stats.resample.UNIT_RESAMPLING`).
    chunk : int
        Replicates scored at once (bounds the memory of the layer-subset tables).

    Returns
    -------
    BootstrapScores
    """
    if scheme not in UNIT_RESAMPLING:
        raise ValueError(f"scheme must be one of {UNIT_RESAMPLING}, got {scheme!r}")
    if not all_tops:
        raise ValueError("no DNN to resample")
    n_boot = max(1, int(options.n_bootstrap if n_boot is None else n_boot))
    seed = options.seed if seed is None else seed
    names = [t.dnn for t in all_tops]
    if len(set(names)) != len(names):
        raise ValueError(f"DNNs listed twice: {names}")
    enc_counts, paired = resample_encoding_counts(all_tops, n_boot, seed)
    dec_rep = np.empty((len(all_tops), n_boot))
    enc_rep = np.empty((len(all_tops), n_boot))
    for i, t in enumerate(all_tops):
        dec_rep[i] = _decoding_replicates(t, options, n_boot, seed, scheme, chunk)
        enc_rep[i] = spearman_from_counts(enc_counts[i])
    point = {c: np.empty(len(all_tops)) for c in COMPONENTS}
    for i, t in enumerate(all_tops):
        for c, v in scores_from_tops(t, options).items():
            point[c][i] = v
    reps = {"decoding": dec_rep, "encoding": enc_rep, "averaged": (dec_rep + enc_rep) / 2.0}
    return BootstrapScores(names, point, reps, paired, scheme)
