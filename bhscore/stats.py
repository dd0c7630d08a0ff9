"""Is DNN A more brain-hierarchical than DNN B? Per-subject scores, paired comparisons, a null per DNN.

Everything here starts from *item tops*: for every item (a unit decoded from one subject, or a voxel of one
subject) the row that predicts it best, or "dropped" when it fails the significance filter. They are what
:func:`bhscore.score.level_counts` counts; keeping them per item and per subject (not only their counts) is
what lets a resample draw the same unit for every subject and the same voxel for every DNN. The scores are
then computed from count tables exactly as :mod:`bhscore.score` does.

Resampling (docs/method.md, "Comparing DNNs", says why):

- decoding-based score: units are resampled with replacement within each layer, and a drawn unit brings its
  top ROI in every subject (the same units are decoded from every subject). Units of different DNNs are
  different units, so the draws are independent between DNNs. Exactly: a multinomial draw over the unit
  *types* of a layer (how many subjects have each ROI on top), vectorised with numpy.
- encoding-based score: voxels are resampled with replacement within each (subject, ROI), the same voxels for
  every DNN (all DNNs are scored on the same brain): this makes the comparison of two DNNs paired.
- layer draws: each replicate draws its own random layer subsets for the decoding-based score (the published
  score is a mean over random subsets; that randomness is part of its uncertainty).

One bootstrap per DNN (:func:`bootstrap_scores`, all DNNs at once, shared voxel draws) gives every pair's
difference distribution (:func:`pairwise_table`): 406 pairs cost no more than 29 DNNs. Random streams are
keyed by the seed and the DNN's name (decoding) or the (subject, ROI) (encoding), so ``bhscore compare A B``
reproduces the pair's row of the all-pairs table exactly.

The null of "no hierarchy" (:func:`layer_order_null`) permutes the DNN's layer order (all orderings when
there are few, Monte Carlo otherwise) and recomputes the scores from the permuted count tables.

Examples
--------
>>> from bhscore.settings import load_settings
>>> from bhscore import stats
>>> s = load_settings()
>>> tops = [stats.read_item_tops(s, name) for name in ("AlexNet", "VGG-16")]        # doctest: +SKIP
>>> boot = stats.bootstrap_scores(tops, stats.ScoreOptions.from_settings(s))        # doctest: +SKIP
>>> stats.pairwise_table(boot).query("component == 'averaged'")                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

from bhscore.score import (
    ScoreOptions,
    keep_mask,
    layer_subsets,
    n_exact_subsets,
    spearman_from_counts,
    top_rows,
)

if TYPE_CHECKING:
    import pandas as pd

#: Score components, in the order of the score table.
COMPONENTS = ("decoding", "encoding", "averaged")
#: Unit resampling schemes: 'joint' (a unit with all its subjects: the design) or 'subject' (each subject's
#: units on their own; kept for the calibration study in docs/method.md).
UNIT_RESAMPLING = ("joint", "subject")
#: Default number of layer orderings of the Monte Carlo null; all orderings when there are at most EXACT_LIMIT.
N_PERMUTATIONS = 1000
EXACT_LIMIT = 5040  # 7! orderings
#: Significance level of the adjusted pairwise decisions and the compact letter display.
ALPHA = 0.05

# -------------------------------------------------------------------------------------------------
# item tops
# -------------------------------------------------------------------------------------------------


def level_tops(acc: np.ndarray, n: int, method: str = "legacy", p_threshold: float = 0.05) -> np.ndarray:
    """Top row of every item of one level, ``n_rows`` where the item is dropped by the filter.

    Parameters
    ----------
    acc : ndarray of shape (n_rows, n_items)
    n, method, p_threshold
        The significance filter (:func:`bhscore.score.keep_mask`).

    Returns
    -------
    ndarray of shape (n_items,), int16
        ``np.bincount(tops, minlength=n_rows + 1)[:n_rows]`` is the level's row of
        :func:`bhscore.score.level_counts`.
    """
    best, top = top_rows(acc)
    return np.where(keep_mask(best, n, method, p_threshold), top, np.shape(acc)[0]).astype(np.int16)


@dataclass
class ItemTops:
    """Every item's top row (or 'dropped') of one DNN, per subject.

    Attributes
    ----------
    dnn : str
    subjects : tuple of str
    n_rois : int
    decoding : list (n_layers) of list (n_subjects) of ndarray of shape (n_units,), int16
        Top ROI of each unit decoded from each subject; ``n_rois`` = dropped. Position = unit.
    encoding : list (n_subjects) of list (n_rois) of ndarray of shape (n_voxels,), int16
        Top layer of each voxel; ``n_layers`` = dropped. Position = voxel (the same for every DNN).
    """

    dnn: str
    subjects: tuple[str, ...]
    n_rois: int
    decoding: list[list[np.ndarray]]
    encoding: list[list[np.ndarray]]

    @property
    def n_layers(self) -> int:
        return len(self.decoding)

    def decoding_counts(self, subject: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Count table of the decoding-based score, all subjects pooled or one (index).

        Returns
        -------
        counts : ndarray of shape (n_layers, n_rois), int64
        n_items : ndarray of shape (n_layers,), int64
        """
        subs = range(len(self.subjects)) if subject is None else [subject]
        full = np.array(
            [sum(np.bincount(layer[s], minlength=self.n_rois + 1) for s in subs) for layer in self.decoding],
            dtype=np.int64,
        ).reshape(self.n_layers, self.n_rois + 1)
        return full[:, : self.n_rois], full.sum(axis=1)

    def encoding_counts(self, subject: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Count table of the encoding-based score, all subjects pooled or one (index).

        Returns
        -------
        counts : ndarray of shape (n_rois, n_layers), int64
        n_items : ndarray of shape (n_rois,), int64
        """
        subs = range(len(self.subjects)) if subject is None else [subject]
        full = np.zeros((self.n_rois, self.n_layers + 1), dtype=np.int64)
        for s in subs:
            for r, tops in enumerate(self.encoding[s]):
                full[r] += np.bincount(tops, minlength=self.n_layers + 1)
        return full[:, : self.n_layers], full.sum(axis=1)


def item_tops(
    dnn: str,
    decoding_levels: Mapping[str, Sequence[np.ndarray]],
    encoding_levels: Mapping[str, Sequence[np.ndarray]],
    n_samples: int,
    method: str = "legacy",
    p_threshold: float = 0.05,
) -> ItemTops:
    """Item tops of one DNN from its per-subject levels.

    Parameters
    ----------
    dnn : str
    decoding_levels : mapping subject -> sequence (n_layers) of ndarray of shape (n_rois, n_units)
    encoding_levels : mapping subject -> sequence (n_rois) of ndarray of shape (n_layers, n_voxels)
        As returned by :meth:`bhscore.score.AccuracyTree.levels_by_subject`; same subjects, in order.
    n_samples, method, p_threshold
        The significance filter.
    """
    subjects = tuple(decoding_levels)
    if tuple(encoding_levels) != subjects:
        raise ValueError(
            f"{dnn}: decoding subjects {subjects} differ from encoding subjects {tuple(encoding_levels)}"
        )
    n_layers = {len(levels) for levels in decoding_levels.values()}
    if len(n_layers) != 1:
        raise ValueError(f"{dnn}: subjects have different numbers of layers {sorted(n_layers)}")
    first = decoding_levels[subjects[0]]
    n_rois = int(np.shape(first[0])[0])
    dec = [
        [level_tops(decoding_levels[s][layer], n_samples, method, p_threshold) for s in subjects]
        for layer in range(len(first))
    ]
    enc = [
        [level_tops(level, n_samples, method, p_threshold) for level in encoding_levels[s]] for s in subjects
    ]
    return ItemTops(dnn, subjects, n_rois, dec, enc)


def read_item_tops(settings, dnn: str, options: ScoreOptions | None = None) -> ItemTops:
    """Item tops of one DNN of ``settings`` read from its accuracy trees (once each)."""
    from bhscore.score import AccuracyTree

    options = options or ScoreOptions.from_settings(settings)
    tree = AccuracyTree(settings, dnn)
    dec = tree.levels_by_subject("decoding")
    enc = tree.levels_by_subject("encoding", settings.analysis.score.encoding_voxel_subsample)
    return item_tops(dnn, dec, enc, tree.n_samples, options.p_method, options.p_threshold)


def pool_subjects(by_subject: Mapping[str, Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The pooled levels (subjects side by side) from per-subject levels: equal to ``decoding_levels()`` /
    ``encoding_levels()`` of :class:`bhscore.score.AccuracyTree`.

    Returns
    -------
    list of ndarray of shape (n_rows, n_items_all_subjects)
    """
    return [np.hstack(parts) for parts in zip(*by_subject.values(), strict=True)]


# -------------------------------------------------------------------------------------------------
# scores from tables
# -------------------------------------------------------------------------------------------------


def _quiet_nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, as intended
        return np.nanmean(x, axis=axis)


def _score_subsets(n_layers: int, options: ScoreOptions, max_subsets: int | None = None) -> np.ndarray:
    """The seeded layer subsets of the decoding-based score, as :mod:`bhscore.score` uses them.

    In exact mode every subset, unless there are more than ``max_subsets``: then the seeded random ones.
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
    subsets = _score_subsets(counts.shape[-2], options)
    return _quiet_nanmean(spearman_from_counts(counts[..., subsets, :]))


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


# -------------------------------------------------------------------------------------------------
# the bootstrap of every DNN at once
# -------------------------------------------------------------------------------------------------


def _name_key(name: str) -> int:
    """A stable 64-bit integer of a name (random streams keyed by DNN, not by position in a list)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


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


def _unit_types(tops: list[np.ndarray], n_rois: int, scheme: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Strata of one layer's units: the distinct unit types and how many units have each.

    A unit's type is its contribution to the pooled count table: how many subjects have each ROI on top.
    One stratum (all subjects: a unit brings its results in every subject) when every subject has the same
    units and ``scheme`` is 'joint'; one stratum per subject otherwise.

    Returns
    -------
    list of (types, n_units)
        types : ndarray of shape (n_types, n_rois), float64 (small integers)
        n_units : ndarray of shape (n_types,), int64
    """
    if scheme == "joint" and len({t.size for t in tops}) == 1:
        groups = [np.stack(tops)]
    else:
        groups = [t[None, :] for t in tops]
    out = []
    for g in groups:
        if g.shape[1] == 0:
            continue
        base = g.shape[0] + 1  # one digit per ROI: how many of the group's subjects have it on top
        digit = base ** np.arange(n_rois + 1, dtype=np.int64)
        digit[n_rois] = 0  # dropped: no contribution
        codes, n_units = np.unique(digit[g.astype(np.int64)].sum(axis=0), return_counts=True)
        types = (codes[:, None] // digit[None, :n_rois]) % base
        out.append((types.astype(np.float64), n_units))
    return out


def _resample_decoding_counts(
    tops: ItemTops, n_boot: int, rng: np.random.Generator, scheme: str = "joint"
) -> np.ndarray:
    """Bootstrap count tables of the decoding-based score: units resampled within each layer.

    A layer's resample is a multinomial draw over its unit types (:func:`_unit_types`), which is exactly
    drawing its units with replacement and recounting.

    Returns
    -------
    ndarray of shape (n_boot, n_layers, n_rois), float64 (integer counts)
    """
    out = np.zeros((n_boot, tops.n_layers, tops.n_rois))
    for layer, per_subject in enumerate(tops.decoding):
        for types, n_units in _unit_types(per_subject, tops.n_rois, scheme):
            n = int(n_units.sum())
            draws = rng.multinomial(n, n_units / n, size=n_boot)  # (n_boot, n_types)
            out[:, layer] += draws @ types
    return out


def _bootstrap_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each item is drawn in each resample: ndarray (n_boot, n_items), float32 (exact integers)."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items), dtype=np.int64)
    idx += (np.arange(n_boot, dtype=np.int64) * n_items)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(np.float32)


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


def _resample_encoding_counts(
    all_tops: Sequence[ItemTops], n_boot: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Bootstrap count tables of the encoding-based score of every DNN, voxels shared across DNNs.

    Voxels are resampled within each (subject, ROI) with weights drawn once for all DNNs (a one-hot matrix
    product counts each DNN's resampled voxels per top layer). A DNN whose voxel counts differ from the first
    DNN's cannot be paired; it gets its own draws.

    Returns
    -------
    counts : list (n_dnns) of ndarray of shape (n_boot, n_rois, n_layers), int64
    paired : ndarray of shape (n_dnns,), bool
    """
    ref = all_tops[0]
    shape = [[t.size for t in per_roi] for per_roi in ref.encoding]
    paired = np.array(
        [
            t.subjects == ref.subjects and [[v.size for v in pr] for pr in t.encoding] == shape
            for t in all_tops
        ]
    )
    out = [np.zeros((n_boot, t.n_rois, t.n_layers), dtype=np.int64) for t in all_tops]
    shared = [i for i in range(len(all_tops)) if paired[i]]
    offsets = np.cumsum([0] + [all_tops[i].n_layers for i in shared])
    for s, per_roi in enumerate(ref.encoding):
        for r, ref_tops in enumerate(per_roi):
            n_vox = ref_tops.size
            if n_vox == 0:
                continue
            rng = np.random.default_rng([seed, 5, s, r])
            weights = _bootstrap_weights(n_vox, n_boot, rng)
            onehot = np.zeros((n_vox, int(offsets[-1]) + 1), dtype=np.float32)
            for pos, i in enumerate(shared):
                codes = all_tops[i].encoding[s][r].astype(np.int64)
                cols = np.where(
                    codes < all_tops[i].n_layers, offsets[pos] + codes, offsets[-1]
                )  # dropped: spare
                onehot[np.arange(n_vox), cols] = 1.0
            counted = np.rint(weights @ onehot).astype(np.int64)
            for pos, i in enumerate(shared):
                out[i][:, r, :] += counted[:, offsets[pos] : offsets[pos + 1]]
    for i in np.flatnonzero(~paired):
        t = all_tops[i]
        for s, per_roi in enumerate(t.encoding):
            for r, codes in enumerate(per_roi):
                if codes.size == 0:
                    continue
                rng = np.random.default_rng([seed, 6, _name_key(t.dnn), s, r])
                onehot = np.eye(t.n_layers + 1, dtype=np.float32)[codes][:, : t.n_layers]
                out[i][:, r, :] += np.rint(_bootstrap_weights(codes.size, n_boot, rng) @ onehot).astype(
                    np.int64
                )
    return out, paired


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
        Unit resampling scheme (:data:`UNIT_RESAMPLING`).
    """

    dnns: list[str]
    point: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    paired: np.ndarray
    scheme: str = "joint"

    @property
    def n_boot(self) -> int:
        return self.replicates["averaged"].shape[1]


def bootstrap_scores(
    all_tops: Sequence[ItemTops],
    options: ScoreOptions,
    n_boot: int | None = None,
    seed: int | None = None,
    scheme: str = "joint",
    chunk: int = 250,
) -> BootstrapScores:
    """Bootstrap replicates of every DNN's scores with the resampling of this module's docstring.

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
        Unit resampling (:data:`UNIT_RESAMPLING`).
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
    enc_counts, paired = _resample_encoding_counts(all_tops, n_boot, seed)
    dec_rep = np.empty((len(all_tops), n_boot))
    enc_rep = np.empty((len(all_tops), n_boot))
    for i, t in enumerate(all_tops):
        rng = np.random.default_rng([seed, 4, _name_key(t.dnn)])
        counts = _resample_decoding_counts(t, n_boot, rng, scheme)
        for start in range(0, n_boot, chunk):
            c = counts[start : start + chunk]
            subsets = random_layer_subsets(
                t.n_layers, options.layers_per_draw, (len(c), options.n_draws), rng
            )
            dec_rep[i, start : start + chunk] = _quiet_nanmean(subset_spearman(c, subsets))
        enc_rep[i] = spearman_from_counts(enc_counts[i])
    point = {c: np.empty(len(all_tops)) for c in COMPONENTS}
    for i, t in enumerate(all_tops):
        for c, v in scores_from_tops(t, options).items():
            point[c][i] = v
    reps = {"decoding": dec_rep, "encoding": enc_rep, "averaged": (dec_rep + enc_rep) / 2.0}
    return BootstrapScores(names, point, reps, paired, scheme)


# -------------------------------------------------------------------------------------------------
# pairwise comparisons
# -------------------------------------------------------------------------------------------------


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); NaN entries are left out of the family.

    Parameters
    ----------
    p : ndarray of shape (m,)

    Returns
    -------
    ndarray of shape (m,)
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


@dataclass
class Differences:
    """Every pair's difference of one component.

    Attributes (each an ndarray of shape (n_dnns, n_dnns), row minus column)
    ----------
    diff, ci_low, ci_high, se, p_value, p_holm : ndarray
    """

    diff: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    se: np.ndarray
    p_value: np.ndarray
    p_holm: np.ndarray


def differences(point: np.ndarray, replicates: np.ndarray, ci_level: float = 0.95) -> Differences:
    """All pairwise differences (row - column), their bootstrap CIs and two-sided p-values, vectorised.

    The p-value is the normal one of the difference over its bootstrap standard error (continuous, so that
    Holm's correction over hundreds of pairs can reject; 1000 resamples cannot resolve p below 0.002); the CI
    is the bootstrap percentile interval.

    Parameters
    ----------
    point : ndarray of shape (n,)
    replicates : ndarray of shape (n, n_boot)

    Returns
    -------
    Differences
    """
    d = point[:, None] - point[None, :]
    d_star = replicates[:, None, :] - replicates[None, :, :]  # (n, n, n_boot)
    alpha = 1.0 - ci_level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a DNN without any finite replicate: NaN
        lo, hi = np.nanquantile(d_star, [alpha / 2, 1 - alpha / 2], axis=-1)
        se = np.nanstd(d_star, axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(d) / se
    p = np.where(se > 0, 2.0 * sps.norm.sf(z), np.where(d == 0, 1.0, 0.0))
    p = np.where(np.isfinite(d) & np.isfinite(se), p, np.nan)
    n = len(point)
    iu = np.triu_indices(n, k=1)
    adj = np.full((n, n), np.nan)
    adj[iu] = holm(p[iu])
    adj.T[iu] = adj[iu]
    np.fill_diagonal(p, np.nan)
    return Differences(d, lo, hi, se, p, adj)


def compact_letters(order: Sequence[int], different: np.ndarray) -> list[str]:
    """Compact letter display: DNNs that share a letter are not significantly different.

    Insert-and-absorb (Piepho 2004): start with one group of every DNN; for each significant pair split every
    group holding both into one without each; drop groups contained in another. Letters go to groups in the
    order of their best-ranked member.

    Parameters
    ----------
    order : sequence of int
        DNN indices, best first (letter 'a' goes to the best DNN's group).
    different : ndarray of shape (n, n), bool
        Symmetric significance decisions.

    Returns
    -------
    list of str
        Letters of each DNN (index order).
    """
    n = len(different)
    groups: list[frozenset[int]] = [frozenset(range(n))]
    for i, j in zip(*np.nonzero(np.triu(different, k=1)), strict=True):
        split: list[frozenset[int]] = []
        for g in groups:
            if i in g and j in g:
                split += [g - {i}, g - {j}]
            else:
                split.append(g)
        unique = list(dict.fromkeys(split))
        groups = [g for g in unique if not any(g < h for h in unique)]
    rank = {dnn: pos for pos, dnn in enumerate(order)}
    groups.sort(key=lambda g: (min(rank[x] for x in g), sorted(rank[x] for x in g)))
    alphabet = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
        chr(c) for c in range(ord("A"), ord("Z") + 1)
    ]
    names = [alphabet[k] if k < len(alphabet) else f"[{k + 1}]" for k in range(len(groups))]
    return ["".join(name for name, g in zip(names, groups, strict=True) if i in g) for i in range(n)]


def pairwise_table(boot: BootstrapScores, ci_level: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Every ordered pair of DNNs and component: the difference, its CI, p-value and Holm decision.

    Returns
    -------
    pandas.DataFrame
        Columns component, dnn_a, dnn_b, score_a, score_b, diff (a - b), ci_low, ci_high, se, p_value, p_holm
        (Holm over the n (n - 1) / 2 pairs of the component), significant (p_holm < alpha), paired (the
        encoding voxels were resampled jointly), n_boot. Both orders of each pair (the second with the sign
        flipped), components in :data:`COMPONENTS` order.
    """
    import pandas as pd

    n = len(boot.dnns)
    a, b = np.nonzero(~np.eye(n, dtype=bool))
    names = np.asarray(boot.dnns, dtype=object)
    frames = []
    for c in COMPONENTS:
        d = differences(boot.point[c], boot.replicates[c], ci_level)
        frames.append(
            pd.DataFrame(
                {
                    "component": c,
                    "dnn_a": names[a],
                    "dnn_b": names[b],
                    "score_a": boot.point[c][a],
                    "score_b": boot.point[c][b],
                    "diff": d.diff[a, b],
                    "ci_low": d.ci_low[a, b],
                    "ci_high": d.ci_high[a, b],
                    "se": d.se[a, b],
                    "p_value": d.p_value[a, b],
                    "p_holm": d.p_holm[a, b],
                    "significant": d.p_holm[a, b] < alpha,
                    "paired": boot.paired[a] & boot.paired[b],
                    "n_boot": boot.n_boot,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIRWISE_COLUMNS)


PAIRWISE_COLUMNS = [
    "component", "dnn_a", "dnn_b", "score_a", "score_b", "diff", "ci_low", "ci_high", "se", "p_value",
    "p_holm", "significant", "paired", "n_boot",
]  # fmt: skip


def letters_by_component(
    pairwise: pd.DataFrame, dnns: Sequence[str], point: Mapping[str, np.ndarray]
) -> dict[str, list[str]]:
    """Compact letters of every component from a :func:`pairwise_table` (best score gets 'a')."""
    index = {name: i for i, name in enumerate(dnns)}
    out = {}
    for c in COMPONENTS:
        sig = np.zeros((len(dnns), len(dnns)), dtype=bool)
        rows = pairwise[(pairwise["component"] == c) & pairwise["significant"].astype(bool)]
        for x, y in zip(rows["dnn_a"], rows["dnn_b"], strict=True):
            sig[index[x], index[y]] = sig[index[y], index[x]] = True
        order = np.argsort(-np.nan_to_num(np.asarray(point[c], dtype=np.float64), nan=-np.inf), kind="stable")
        out[c] = compact_letters(list(order), sig)
    return out


# -------------------------------------------------------------------------------------------------
# the null of no hierarchy: permuted layer order
# -------------------------------------------------------------------------------------------------


@dataclass
class NullResult:
    """The layer-order permutation test of one DNN.

    Attributes
    ----------
    p_value : dict
        component -> one-sided p-value (score at least as high as with a random layer order).
    null_mean : dict
        component -> mean score over the orderings.
    method : str
        'exact' (every ordering) or 'monte_carlo'.
    n_orderings : int
        Orderings evaluated (L! when exact).
    """

    p_value: dict[str, float]
    null_mean: dict[str, float]
    method: str
    n_orderings: int


def layer_permutations(
    n_layers: int, n_permutations: int = N_PERMUTATIONS, exact_limit: int = EXACT_LIMIT, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """Layer orderings of the null: all ``n_layers!`` when at most ``exact_limit``, else random ones.

    Returns
    -------
    perms : ndarray of shape (n_orderings, n_layers), int64
    exact : bool
    """
    if math.factorial(n_layers) <= exact_limit:
        return np.array(list(itertools.permutations(range(n_layers))), dtype=np.int64), True
    rng = np.random.default_rng([seed, 7, n_layers])
    return rng.permuted(np.tile(np.arange(n_layers), (n_permutations, 1)), axis=1), False


def layer_order_null(
    tops: ItemTops,
    options: ScoreOptions,
    n_permutations: int = N_PERMUTATIONS,
    exact_limit: int = EXACT_LIMIT,
    seed: int | None = None,
    chunk_elements: int = 4_000_000,
) -> NullResult:
    """Is the DNN's score above what the same DNN with its layers in random order would get?

    Under the null of no hierarchy the layer order carries no information, so every ordering of the layers
    is as likely as the true one. Each ordering permutes the rows of the decoding count table (layers are its
    levels) and the columns of the encoding one (layers are its rows) and recomputes the scores (the decoding
    score with the same seeded layer subsets as the observed one; the averaged score with the same ordering
    for both). p = the fraction of orderings scoring at least the observed (exact), or (1 + that count) /
    (1 + n_permutations) (Monte Carlo).

    Parameters
    ----------
    tops : ItemTops
    options : ScoreOptions
    n_permutations : int
        Random orderings when there are more than ``exact_limit``.
    exact_limit : int
        Enumerate every ordering when ``n_layers!`` is at most this.
    seed : int, optional
        Default ``options.seed``.
    chunk_elements : int
        Bounds the memory of the permuted decoding tables.
    """
    seed = options.seed if seed is None else seed
    dec_counts, _ = tops.decoding_counts()
    enc_counts, _ = tops.encoding_counts()
    n_layers = tops.n_layers
    perms, exact = layer_permutations(n_layers, n_permutations, exact_limit, seed)
    # exact layer selection over very many subsets: the test statistic averages the seeded random ones
    subsets = _score_subsets(n_layers, options, max_subsets=20 * options.n_draws)
    per_perm = subsets.size * tops.n_rois
    step = max(1, chunk_elements // per_perm)
    dec = np.empty(len(perms))
    for start in range(0, len(perms), step):
        idx = perms[start : start + step][:, subsets]  # (chunk, n_subsets, per_draw)
        dec[start : start + step] = _quiet_nanmean(spearman_from_counts(dec_counts[idx]))
    enc = spearman_from_counts(np.moveaxis(enc_counts[:, perms], 1, 0))  # (n_orderings,)
    obs_dec = float(_quiet_nanmean(spearman_from_counts(dec_counts[subsets])))
    obs_enc = float(spearman_from_counts(enc_counts))
    observed = {"decoding": obs_dec, "encoding": obs_enc, "averaged": (obs_dec + obs_enc) / 2.0}
    null = {"decoding": dec, "encoding": enc, "averaged": (dec + enc) / 2.0}
    p_values, means = {}, {}
    for c, values in null.items():
        obs = observed[c]
        if not math.isfinite(obs):
            p_values[c], means[c] = math.nan, math.nan
            continue
        at_least = int(np.sum(values >= obs - 1e-12))  # ties count against the DNN
        p_values[c] = at_least / len(values) if exact else (1 + at_least) / (1 + len(values))
        means[c] = float(_quiet_nanmean(values, axis=0))
    return NullResult(p_values, means, "exact" if exact else "monte_carlo", len(perms))


# -------------------------------------------------------------------------------------------------
# the tables of the statistics
# -------------------------------------------------------------------------------------------------


@dataclass
class StatsTables:
    """The statistics of a set of DNNs.

    Attributes
    ----------
    dnn_stats : DataFrame
        One row per DNN (columns :func:`dnn_stats_columns`).
    pairwise : DataFrame
        :func:`pairwise_table`.
    """

    dnn_stats: pd.DataFrame
    pairwise: pd.DataFrame


def dnn_stats_columns(subjects: Sequence[str]) -> list[str]:
    """Columns of the per-DNN statistics table.

    dnn; for each component c: c (pooled score), c_<subject> (each subject alone), c_subject_sd (their
    standard deviation, ddof 1), c_null_p (layer-order permutation p-value), c_null_mean, c_letters (compact
    letter display of the pairwise Holm decisions); null_method, null_n_orderings, n_boot.
    """
    cols = ["dnn"]
    for c in COMPONENTS:
        cols += [
            c,
            *(f"{c}_{s}" for s in subjects),
            f"{c}_subject_sd",
            f"{c}_null_p",
            f"{c}_null_mean",
            f"{c}_letters",
        ]
    return cols + ["null_method", "null_n_orderings", "n_boot"]


_STAT_SUFFIXES = ("subject_sd", "null_p", "null_mean", "letters")


def subjects_of(dnn_stats: pd.DataFrame) -> list[str]:
    """The subjects of a per-DNN statistics table (from its ``averaged_<subject>`` columns), in order."""
    prefix = "averaged_"
    return [
        c[len(prefix) :]
        for c in dnn_stats.columns
        if c.startswith(prefix) and c[len(prefix) :] not in _STAT_SUFFIXES
    ]


def compute_stats(
    all_tops: Sequence[ItemTops],
    options: ScoreOptions,
    n_boot: int | None = None,
    n_permutations: int = N_PERMUTATIONS,
    exact_limit: int = EXACT_LIMIT,
    alpha: float = ALPHA,
) -> StatsTables:
    """Per-subject scores, the layer-order null and every pairwise comparison of some DNNs.

    Parameters
    ----------
    all_tops : sequence of ItemTops
    options : ScoreOptions
        The settings' score options (seed, layer draws, CI level; ``n_bootstrap`` unless ``n_boot``).
    n_boot : int, optional
    n_permutations, exact_limit
        See :func:`layer_order_null`.
    alpha : float
        Level of the Holm decisions behind the letters.

    Returns
    -------
    StatsTables
    """
    import pandas as pd

    if not all_tops:
        return StatsTables(
            pd.DataFrame(columns=dnn_stats_columns(())), pd.DataFrame(columns=PAIRWISE_COLUMNS)
        )
    subjects = all_tops[0].subjects
    boot = bootstrap_scores(all_tops, options, n_boot)
    pairwise = pairwise_table(boot, options.ci_level, alpha)
    letters = letters_by_component(pairwise, boot.dnns, boot.point)
    rows = []
    for i, t in enumerate(all_tops):
        per = subject_scores(t, options)
        null = layer_order_null(t, options, n_permutations, exact_limit)
        row: dict = {"dnn": t.dnn}
        for c in COMPONENTS:
            row[c] = boot.point[c][i]
            row.update({f"{c}_{s}": v for s, v in zip(t.subjects, per[c], strict=True)})
            finite = per[c][np.isfinite(per[c])]
            row[f"{c}_subject_sd"] = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
            row[f"{c}_null_p"] = null.p_value[c]
            row[f"{c}_null_mean"] = null.null_mean[c]
            row[f"{c}_letters"] = letters[c][i]
        row.update(null_method=null.method, null_n_orderings=null.n_orderings, n_boot=boot.n_boot)
        rows.append(row)
    return StatsTables(pd.DataFrame(rows, columns=dnn_stats_columns(subjects)), pairwise)


# -------------------------------------------------------------------------------------------------
# simulated count tables for calibration (docs/method.md, tests, bench)
# -------------------------------------------------------------------------------------------------


def _affinity(strength: float, n_layers: int, n_rois: int) -> np.ndarray:
    """(n_layers, n_rois): a Gaussian ridge along the diagonal, flattened to its overall mean by 1 - strength.

    Strength 0 makes every layer alike (a DNN without hierarchy whose layers are exchangeable).
    """
    centre = np.linspace(0, n_rois - 1, n_layers)[:, None]
    ridge = np.exp(-((np.arange(n_rois)[None, :] - centre) ** 2) / (2 * 0.9**2))
    return strength * ridge + (1 - strength) * ridge.mean()


def simulate_tops(
    strengths: Sequence[float],
    n_layers: Sequence[int] | int = 8,
    rng: np.random.Generator | int = 0,
    n_units: int = 1000,
    n_voxels: int = 1000,
    n_subjects: int = 3,
    n_rois: int = 5,
    n_samples: int = 50,
    noise: float = 0.15,
    method: str = "legacy",
    names: Sequence[str] | None = None,
) -> list[ItemTops]:
    """Item tops of simulated DNNs recorded from one simulated brain, with a planted hierarchy per DNN.

    The model of :func:`bhscore.simulate.simulate_accuracies` (a Gaussian ridge of layer-ROI affinity whose
    height is the DNN's strength), with the structure of the real data that the resampling must respect:

    - decoding: unit u of layer j has a decodability b_u ~ U(0.15, 0.65) shared by every subject (the same
      unit is decoded from every brain); its accuracy from ROI r of subject s is
      b_u * affinity[j, r] + noise * N(0, 1);
    - encoding: voxel v of subject s, ROI r has a signal level b_v ~ U(0.15, 0.65) shared by every DNN (the
      same brain); its accuracy from layer j of a DNN is b_v * affinity[j, r] + noise * N(0, 1).

    About 1% of the items are NaN (constant), as in real trees.

    Parameters
    ----------
    strengths : sequence of float
        Hierarchy strength of each DNN, 0 (none, exchangeable layers) to 1.
    n_layers : int or sequence of int
    rng : Generator or int
    n_units, n_voxels : int
        Units per layer and voxels per (subject, ROI) (the paper: 1000 and 1000 after the subsample).
    n_subjects, n_rois, n_samples : int
    noise : float
    method : {'legacy', 'corrected'}
    names : sequence of str, optional

    Returns
    -------
    list of ItemTops
    """
    rng = np.random.default_rng(rng)
    k = len(strengths)
    layers = [n_layers] * k if isinstance(n_layers, int) else list(n_layers)
    names = list(names) if names is not None else [f"S{i}" for i in range(k)]
    subjects = tuple(f"sub-{i + 1:02d}" for i in range(n_subjects))
    voxel_base = rng.uniform(0.15, 0.65, size=(n_subjects, n_rois, n_voxels))
    voxel_nan = rng.random((n_subjects, n_rois, n_voxels)) < 0.01
    out = []
    for name, strength, n_l in zip(names, strengths, layers, strict=True):
        aff = _affinity(strength, n_l, n_rois)
        dec = []
        for j in range(n_l):
            base = rng.uniform(0.15, 0.65, size=n_units)
            nan = rng.random(n_units) < 0.01
            acc = base[None, None, :] * aff[j][None, :, None] + noise * rng.standard_normal(
                (n_subjects, n_rois, n_units)
            )
            acc[:, :, nan] = np.nan
            dec.append(
                [level_tops(np.clip(acc[s], -0.99, 0.99), n_samples, method) for s in range(n_subjects)]
            )
        enc = []
        for s in range(n_subjects):
            per_roi = []
            for r in range(n_rois):
                acc = voxel_base[s, r][None, :] * aff[:, r][:, None] + noise * rng.standard_normal(
                    (n_l, n_voxels)
                )
                acc[:, voxel_nan[s, r]] = np.nan
                per_roi.append(level_tops(np.clip(acc, -0.99, 0.99), n_samples, method))
            enc.append(per_roi)
        out.append(ItemTops(name, subjects, n_rois, dec, enc))
    return out


def calibrate_pairs(
    delta: float,
    n_pairs: int,
    base_strength: float = 0.5,
    n_layers: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    options: ScoreOptions | None = None,
    **simulation,
) -> pd.DataFrame:
    """The paired test on simulated pairs of DNNs whose hierarchy strengths differ by ``delta``.

    Each pair is a new simulated experiment (:func:`simulate_tops`: new units, new voxels) of DNN A (strength
    ``base_strength``) and DNN B (``base_strength - delta``); ``delta`` 0 gives the false-positive rate, > 0 the
    power. The true score difference is estimated by the mean of ``diff`` over pairs.

    Returns
    -------
    pandas.DataFrame
        One row per (pair, component): pair, component, diff (A - B), ci_low, ci_high, p_value.
    """
    import pandas as pd

    options = options or ScoreOptions()
    rows = []
    for i in range(n_pairs):
        tops = simulate_tops(
            [base_strength, base_strength - delta],
            n_layers,
            rng=[seed, 11, i],
            names=["A", "B"],
            **simulation,
        )
        boot = bootstrap_scores(tops, options, n_boot=n_boot, seed=seed * 1_000_003 + i)
        for c in COMPONENTS:
            d = differences(boot.point[c], boot.replicates[c], options.ci_level)
            rows.append(
                {
                    "pair": i,
                    "component": c,
                    "diff": d.diff[0, 1],
                    "ci_low": d.ci_low[0, 1],
                    "ci_high": d.ci_high[0, 1],
                    "p_value": d.p_value[0, 1],
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def calibrate_null(
    n_dnns: int,
    n_layers: int = 8,
    n_permutations: int = N_PERMUTATIONS,
    exact_limit: int = EXACT_LIMIT,
    seed: int = 0,
    options: ScoreOptions | None = None,
    **simulation,
) -> pd.DataFrame:
    """Layer-order null p-values of simulated DNNs without hierarchy (strength 0): uniform if the test is exact.

    Returns
    -------
    pandas.DataFrame
        One row per (DNN, component): dnn, component, p_value, method.
    """
    import pandas as pd

    options = options or ScoreOptions()
    rows = []
    for i in range(n_dnns):
        (tops,) = simulate_tops([0.0], n_layers, rng=[seed, 12, i], **simulation)
        null = layer_order_null(tops, options, n_permutations, exact_limit, seed=seed * 1_000_003 + i)
        rows += [
            {"dnn": i, "component": c, "p_value": null.p_value[c], "method": null.method} for c in COMPONENTS
        ]
    return pd.DataFrame(rows)
