"""The BH score (Nonaka et al. 2021), exactly as method.md describes it.

Vocabulary
----------
level
    What the hierarchy number belongs to: a DNN layer (decoding-based score) or an ROI (encoding-based).
row
    The candidates whose best one is sought for each item: ROIs (decoding) or layers (encoding).
item
    A unit of one subject (decoding) or a voxel (encoding); the subjects' items are concatenated.

For every level, each item's *top* row is the row with the largest accuracy (first row wins ties); items whose
best accuracy is not positive or not significant are dropped. The score is Spearman's rank correlation between
the level number and the top row index, pooled over the levels.

Everything the score needs from a level is how many of its items have each top row: an (n_levels, n_rows)
*count table*. Spearman's rho with averaged ties is computed exactly from that table (midranks from the
marginals), which makes layer subsets, the exact mode over all subsets and the bootstrap (a multinomial
resample of each level's items) cheap and fully vectorised.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

from bhscore.errors import UserError

P_METHODS = ("legacy", "corrected")

# -------------------------------------------------------------------------------------------------
# significance filter
# -------------------------------------------------------------------------------------------------


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


def bh_score(levels: Sequence[np.ndarray], n: int, method: str = "legacy", p_threshold: float = 0.05) -> float:
    """The pooled BH score of some levels (no layer selection).

    Parameters
    ----------
    levels : sequence of ndarray of shape (n_rows, n_items_level)
        Levels in hierarchy order.
    n, method, p_threshold
        See :func:`keep_mask`.
    """
    counts, _ = level_counts(levels, n, method, p_threshold)
    return _warn_if_nan(float(spearman_from_counts(counts)), counts)


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


@dataclass
class ScoreOptions:
    """The analysis constants of the score (``settings.analysis.score``)."""

    p_method: str = "legacy"
    p_threshold: float = 0.05
    layers_per_draw: int = 5
    n_draws: int = 100
    layer_selection: str = "random"  # or 'exact'
    seed: int = 0
    n_bootstrap: int = 1000
    ci_level: float = 0.95

    @classmethod
    def from_settings(cls, settings, **overrides) -> ScoreOptions:
        s = settings.analysis.score
        values = {f: getattr(s, f) for f in cls.__dataclass_fields__}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class DNNScore:
    """Scores of one DNN with what went into them.

    Attributes
    ----------
    decoding_counts : ndarray of shape (n_layers, n_rois)
        Kept units per (layer, top ROI), all layers.
    decoding_n_items : ndarray of shape (n_layers,)
    encoding_counts : ndarray of shape (n_rois, n_layers)
        Kept voxels per (ROI, top layer).
    encoding_n_items : ndarray of shape (n_rois,)
    """

    dnn: str
    decoding: float
    encoding: float
    decoding_ci: tuple[float, float] = (math.nan, math.nan)
    encoding_ci: tuple[float, float] = (math.nan, math.nan)
    averaged_ci: tuple[float, float] = (math.nan, math.nan)
    decoding_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    decoding_n_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    encoding_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    encoding_n_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_samples: int | None = None
    #: Per kind, what the score read (:meth:`AccuracyTree.source_record`); empty when scored from arrays.
    sources: dict = field(default_factory=dict)

    @property
    def averaged(self) -> float:
        return (self.decoding + self.encoding) / 2.0


def decoding_score_from_counts(
    counts: np.ndarray, n_items: np.ndarray, options: ScoreOptions
) -> tuple[float, tuple[float, float], np.ndarray]:
    """Decoding-based score (mean over layer subsets) and its bootstrap CI from a (n_layers, n_rois) table.

    Returns
    -------
    score : float
    ci : (float, float)
    boot : ndarray of shape (n_bootstrap,)
        Bootstrap replicates (empty without bootstrap).
    """
    n_layers = counts.shape[0]
    exact = options.layer_selection == "exact"
    subsets = layer_subsets(n_layers, options.layers_per_draw, options.n_draws, options.seed, exact=exact)
    rhos = subset_scores(counts, subsets)
    if np.all(np.isnan(rhos)):
        score = _warn_if_nan(math.nan, counts, "decoding BH score")
    else:
        if np.any(np.isnan(rhos)):
            warnings.warn(
                f"{int(np.isnan(rhos).sum())} of {rhos.size} layer subsets have no score "
                "(no unit passed the filter); averaging the others",
                RuntimeWarning,
                stacklevel=2,
            )
        score = float(np.nanmean(rhos))
    boot = np.empty(0)
    if options.n_bootstrap > 0:
        rng = np.random.default_rng([options.seed, 1])
        if exact and len(subsets) > options.n_draws:
            # the bootstrap averages over seeded random subsets: all of them per replicate is too costly
            subsets = layer_subsets(n_layers, options.layers_per_draw, options.n_draws, options.seed)
        boot_counts = resample_counts(counts, n_items, options.n_bootstrap, rng)
        boot = np.concatenate(
            [_mean_of_draws(subset_scores(chunk, subsets)) for chunk in np.array_split(boot_counts, 10)]
        )
    return score, _ci(boot, options.ci_level), boot


def encoding_score_from_counts(
    counts: np.ndarray, n_items: np.ndarray, options: ScoreOptions
) -> tuple[float, tuple[float, float], np.ndarray]:
    """Encoding-based score (all layers, no selection) and its bootstrap CI from a (n_rois, n_layers) table."""
    score = _warn_if_nan(float(spearman_from_counts(counts)), counts, "encoding BH score")
    boot = np.empty(0)
    if options.n_bootstrap > 0:
        rng = np.random.default_rng([options.seed, 2])
        boot = spearman_from_counts(resample_counts(counts, n_items, options.n_bootstrap, rng))
    return score, _ci(boot, options.ci_level), boot


def score_from_levels(
    dnn: str,
    decoding_levels: Sequence[np.ndarray],
    encoding_levels: Sequence[np.ndarray],
    n_samples: int,
    options: ScoreOptions,
) -> DNNScore:
    """All scores of one DNN from its accuracies.

    Parameters
    ----------
    decoding_levels : sequence (n_layers) of ndarray of shape (n_rois, n_units_all_subjects)
    encoding_levels : sequence (n_rois) of ndarray of shape (n_layers, n_voxels_all_subjects)
    n_samples : int
        Test images behind each accuracy.
    """
    dec_counts, dec_items = level_counts(decoding_levels, n_samples, options.p_method, options.p_threshold)
    enc_counts, enc_items = level_counts(encoding_levels, n_samples, options.p_method, options.p_threshold)
    dec, dec_ci, dec_boot = decoding_score_from_counts(dec_counts, dec_items, options)
    enc, enc_ci, enc_boot = encoding_score_from_counts(enc_counts, enc_items, options)
    avg_ci = _ci((dec_boot + enc_boot) / 2.0, options.ci_level) if dec_boot.size else (math.nan, math.nan)
    return DNNScore(
        dnn=dnn,
        decoding=dec,
        encoding=enc,
        decoding_ci=dec_ci,
        encoding_ci=enc_ci,
        averaged_ci=avg_ci,
        decoding_counts=dec_counts,
        decoding_n_items=dec_items,
        encoding_counts=enc_counts,
        encoding_n_items=enc_items,
        n_samples=n_samples,
    )


# -------------------------------------------------------------------------------------------------
# accuracy trees -> scores
# -------------------------------------------------------------------------------------------------


class MixedResultsError(UserError):
    """The accuracy files of one DNN do not all come from one parameter set and one version of the inputs."""


class AccuracyTree:
    """The accuracy files of one DNN, read once, from the source the settings choose.

    Computed files must carry a provenance record of the current parameter set; their input fingerprints must
    agree between files (one version of each subject's fMRI and of each layer's features). Every file's
    item count is checked against the others of its layer (decoding: units) or subject and ROI (encoding:
    voxels).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnn : str
        A DNN name of ``settings.dnns``.
    allow_mixed : bool
        Accept computed files of other parameter sets or inputs (they are counted in :attr:`mixed`).
    """

    def __init__(self, settings, dnn: str, allow_mixed: bool = False):
        from bhscore.paths import KINDS, Layout
        from bhscore.sources import accuracy_source

        self.settings = settings
        self.name = dnn
        self.dnn = settings.dnn(dnn)
        self.layout = Layout.from_settings(settings)
        self.sources = {kind: accuracy_source(settings, dnn, kind, self.layout) for kind in KINDS}
        self.allow_mixed = allow_mixed
        self.files: dict[str, list[Path]] = {kind: [] for kind in KINDS}
        self.mixed: list[str] = []
        self._n_seen: set[int] = set()
        self._inputs_seen: dict[tuple, tuple[str, Path]] = {}

    def path(self, kind: str, layer: str, subject: str, roi: str) -> Path:
        return self.layout.accuracy_file(self.sources[kind].root, self.dnn.dir, layer, subject, roi)

    def read(self, kind: str, layer: str, subject: str, roi: str) -> np.ndarray:
        """One accuracy vector, shape (n_items,)."""
        from bhscore.errors import MissingDataError
        from bhscore.formats import read_accuracy_file

        src = self.sources[kind]
        path = self.path(kind, layer, subject, roi)
        if not path.exists():
            what = f"{src.source} {kind} accuracy of {self.name} (tree {src.root})"
            legacy = self.layout.legacy_trees()
            how = src.how_to_make(self.name)
            if legacy:
                how += f"; accuracies in the pre-0.2 layout ({legacy[0]}) move with `bhscore migrate`"
            raise MissingDataError(path, how=how, what=what)
        content = read_accuracy_file(path)
        if src.param_set is not None:
            self._check_record(path, content.provenance, src)
        if content.n_samples is not None:
            self._n_seen.add(content.n_samples)
        self.files[kind].append(path)
        return content.accuracy

    def _check_record(self, path: Path, record: dict | None, src) -> None:
        """A computed file must be of the current parameter set and of the same inputs as the others."""
        if record is None:
            raise UserError(
                f"{path} has no provenance record (written by bhscore 0.1 or another tool), so it is not "
                f"known to be of parameter set {src.label}: recompute it ({src.how_to_make(self.name)}), "
                "or adopt the old results with `bhscore migrate --adopt`"
            )
        problems = []
        if record.get("param_set") != src.label:
            problems.append(f"parameter set {record.get('param_set')}, not {src.label} "
                            f"({src.param_set.changes_from(record.get('params', {}))})")  # fmt: skip
        for name, fp in record.get("inputs", {}).items():
            key = (name, fp.get("file") or fp.get("dir"))
            seen = self._inputs_seen.setdefault(key, (fp.get("sha256"), path))
            if seen[0] != fp.get("sha256"):
                problems.append(f"made from another version of {key[1]} than {seen[1]}")
        if problems:
            if not self.allow_mixed:
                raise MixedResultsError(
                    f"{path}: {'; '.join(problems)}. Recompute the stale jobs ({src.how_to_make(self.name)}), "
                    "or score anyway with --allow-mixed"
                )
            self.mixed.append(f"{path}: {'; '.join(problems)}")

    def source_record(self) -> dict:
        """What the score of this DNN used, per kind: source, parameter set, files read and their digest.

        Call after reading the levels. The digest is a SHA-256 over the sorted (relative path, content SHA-256)
        of every file read.
        """
        out: dict = {}
        for kind, src in self.sources.items():
            h = hashlib.sha256()
            for path in sorted(self.files[kind]):
                rel = path.relative_to(self.layout.root).as_posix()
                h.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
            out[kind] = {
                "source": src.source,
                "param_set": src.label,
                "params": None if src.param_set is None else src.param_set.params,
                "tree": src.root.relative_to(self.layout.root).as_posix(),
                "n_files": len(self.files[kind]),
                "files_sha256": h.hexdigest(),
            }
        if self.mixed:
            out["mixed"] = list(self.mixed)
        return out

    @property
    def n_samples(self) -> int:
        """Test images behind the accuracies: recorded in the files, else ``analysis.score.n_test_images``."""
        if len(self._n_seen) > 1:
            raise ValueError(f"{self.name}: accuracy files disagree on the number of test images: {self._n_seen}")
        if self._n_seen:
            return next(iter(self._n_seen))
        return self.settings.analysis.score.n_test_images

    def _read_checked(self, kind: str, cells: Sequence[tuple[str, str, str]], what: str) -> dict[tuple, np.ndarray]:
        """Read the files of ``cells`` (layer, subject, roi); they must all hold the same number of items."""
        arrays = {cell: self.read(kind, *cell) for cell in cells}
        sizes = [a.size for a in arrays.values()]
        if len(set(sizes)) > 1:
            common = max(set(sizes), key=sizes.count)
            cell, a = next((c, a) for c, a in arrays.items() if a.size != common)
            raise UserError(
                f"{self.path(kind, *cell)} holds {a.size} accuracies, but the other {what} have {common}: "
                "a file of another layer, ROI or data version; recompute or re-download it"
            )
        return arrays

    def decoding_levels(self) -> list[np.ndarray]:
        """Per layer (hierarchy order): ndarray (n_rois, n_units x n_subjects), subjects side by side.

        Every (subject, ROI) file of a layer must hold the same units.
        """
        levels = []
        subjects, rois = self.settings.subjects, self.settings.rois
        for layer in self.dnn.layers:
            cells = [(layer, s, r) for r in rois for s in subjects]
            arrays = self._read_checked("decoding", cells, f"decoding files of layer {layer}")
            levels.append(np.vstack([np.concatenate([arrays[(layer, s, r)] for s in subjects]) for r in rois]))
        return levels

    def encoding_levels(self, subsample: int | None = None) -> list[np.ndarray]:
        """Per ROI (hierarchy order): ndarray (n_layers, n_voxels x n_subjects).

        Every layer's file of one (subject, ROI) must hold the same voxels.

        Parameters
        ----------
        subsample : int, optional
            Keep this many voxels of each (subject, ROI, layer) file with the paper's seed-0 draw
            (:func:`legacy_voxel_subsample`); None keeps all.
        """
        levels = []
        for roi in self.settings.rois:
            per_subject = {}
            for s in self.settings.subjects:
                cells = [(layer, s, roi) for layer in self.dnn.layers]
                arrays = self._read_checked("encoding", cells, f"encoding files of {s} {roi}")
                per_subject[s] = [
                    legacy_voxel_subsample(arrays[c], subsample) if subsample else arrays[c] for c in cells
                ]
            rows = [np.concatenate([per_subject[s][i] for s in self.settings.subjects])
                    for i in range(len(self.dnn.layers))]  # fmt: skip
            levels.append(np.vstack(rows))
        return levels

    def levels_by_subject(self, kind: str, subsample: int | None = None) -> dict[str, list[np.ndarray]]:
        """Each subject's levels alone, the same files read and checked once (for :mod:`bhscore.stats`).

        ``bhscore.stats.pool_subjects`` of the result equals :meth:`decoding_levels` (kind 'decoding') or
        :meth:`encoding_levels` with the same ``subsample`` (kind 'encoding'); read one or the other, not both.
        Items keep their file positions: a unit lines up across subjects, a voxel across DNNs.

        Returns
        -------
        dict
            subject -> list of ndarray: decoding: per layer (n_rois, n_units); encoding: per ROI
            (n_layers, n_voxels), each file reduced by the paper's seed-0 draw when ``subsample`` is given.
        """
        subjects, rois, layers = self.settings.subjects, self.settings.rois, self.dnn.layers
        out: dict[str, list[np.ndarray]] = {s: [] for s in subjects}
        if kind == "decoding":
            for layer in layers:
                cells = [(layer, s, r) for r in rois for s in subjects]
                arrays = self._read_checked("decoding", cells, f"decoding files of layer {layer}")
                for s in subjects:
                    out[s].append(np.vstack([arrays[(layer, s, r)] for r in rois]))
        elif kind == "encoding":
            for roi in rois:
                for s in subjects:
                    cells = [(layer, s, roi) for layer in layers]
                    arrays = self._read_checked("encoding", cells, f"encoding files of {s} {roi}")
                    out[s].append(np.vstack([legacy_voxel_subsample(arrays[c], subsample) if subsample else arrays[c]
                                             for c in cells]))  # fmt: skip
        else:
            raise ValueError(f"kind must be 'decoding' or 'encoding', got {kind!r}")
        return out


def score_dnn(settings, dnn: str, allow_mixed: bool = False, **overrides) -> DNNScore:
    """Scores of one DNN of ``settings`` from its accuracy trees (the source the settings choose).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnn : str
    allow_mixed : bool
        Accept computed files of other parameter sets or input versions (see :class:`AccuracyTree`).
    **overrides
        Fields of :class:`ScoreOptions` to override (e.g. ``p_method='corrected'``); None values are ignored.
    """
    options = ScoreOptions.from_settings(settings, **overrides)
    tree = AccuracyTree(settings, dnn, allow_mixed=allow_mixed)
    dec = tree.decoding_levels()
    enc = tree.encoding_levels(settings.analysis.score.encoding_voxel_subsample)
    result = score_from_levels(dnn, dec, enc, tree.n_samples, options)
    return replace(result, sources=tree.source_record())


TABLE_COLUMNS = [
    "dnn", "decoding", "encoding", "averaged",
    "decoding_ci_low", "decoding_ci_high", "encoding_ci_low", "encoding_ci_high",
    "averaged_ci_low", "averaged_ci_high",
    "decoding_n_kept", "decoding_n_items", "encoding_n_kept", "encoding_n_items",
    "n_layers", "imagenet_top1", "p_method",
    "decoding_source", "encoding_source", "decoding_params", "encoding_params",
    "decoding_n_files", "encoding_n_files",
]  # fmt: skip


def score_row(settings, result: DNNScore, p_method: str) -> dict:
    """One row of the score table (what the score used: source, parameter set and file count per kind)."""
    row = {
        "dnn": result.dnn,
        "decoding": result.decoding,
        "encoding": result.encoding,
        "averaged": result.averaged,
        "decoding_ci_low": result.decoding_ci[0],
        "decoding_ci_high": result.decoding_ci[1],
        "encoding_ci_low": result.encoding_ci[0],
        "encoding_ci_high": result.encoding_ci[1],
        "averaged_ci_low": result.averaged_ci[0],
        "averaged_ci_high": result.averaged_ci[1],
        "decoding_n_kept": int(result.decoding_counts.sum()),
        "decoding_n_items": int(result.decoding_n_items.sum()),
        "encoding_n_kept": int(result.encoding_counts.sum()),
        "encoding_n_items": int(result.encoding_n_items.sum()),
        "n_layers": len(settings.dnns[result.dnn].layers),
        "imagenet_top1": settings.dnns[result.dnn].imagenet_top1,
        "p_method": p_method,
    }
    for kind in ("decoding", "encoding"):
        used = result.sources.get(kind, {})
        row[f"{kind}_source"] = used.get("source", "")
        row[f"{kind}_params"] = used.get("param_set", "")
        row[f"{kind}_n_files"] = used.get("n_files", 0)
    return row


def score_table(
    settings,
    dnns: Sequence[str] | None = None,
    p_method: str | None = None,
    progress: bool = True,
    allow_mixed: bool = False,
    **overrides,
):
    """The score table: one row per DNN (columns :data:`TABLE_COLUMNS`), in settings order.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnns : sequence of str, optional
        Default: every DNN of the settings.
    p_method : {'legacy', 'corrected'}, optional
        Default: ``settings.analysis.score.p_method``.
    allow_mixed : bool
        See :class:`AccuracyTree`.
    **overrides
        Other :class:`ScoreOptions` fields.

    Returns
    -------
    pandas.DataFrame
        With ``attrs["sources"]``: DNN -> :meth:`AccuracyTree.source_record` (for :func:`table_provenance`).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    names = list(settings.dnns) if dnns is None else list(dnns)
    for name in names:
        settings.dnn(name)  # an unknown name fails here, listing the valid ones
    method = p_method or settings.analysis.score.p_method
    results = []
    for name in tqdm(names, desc="score", unit="DNN", disable=not progress or len(names) < 2):
        results.append(score_dnn(settings, name, allow_mixed=allow_mixed, p_method=method, **overrides))
    table = pd.DataFrame([score_row(settings, r, method) for r in results], columns=TABLE_COLUMNS)
    table.attrs["sources"] = {r.dnn: r.sources for r in results}
    return table


def table_provenance(settings, sources: dict) -> dict:
    """The provenance record of a score table: settings digest, versions, and what each DNN's score read.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    sources : dict
        DNN -> :meth:`AccuracyTree.source_record`.
    """
    from bhscore.paths import data_root
    from bhscore.provenance import canonical_json, now_utc, package_versions

    dump = settings.model_dump(mode="json", by_alias=True)
    h = hashlib.sha256()
    for dnn in sorted(sources):
        for kind in ("decoding", "encoding"):
            h.update(f"{dnn}\0{kind}\0{sources[dnn].get(kind, {}).get('files_sha256', '')}\n".encode())
    return {
        "created": now_utc(),
        "packages": package_versions(),
        "settings_file": None if settings.source is None else str(settings.source),
        "settings_sha256": hashlib.sha256(canonical_json(dump).encode()).hexdigest(),
        "data_root": str(data_root(settings)),
        "accuracy_files_sha256": h.hexdigest(),
        "dnns": sources,
    }


def write_score_table(table, path: str | Path, settings) -> list[Path]:
    """Write the score table (CSV) and its provenance (``<stem>.provenance.json`` beside it), atomically."""
    import json

    from bhscore.atomic import atomic_write_text

    path = Path(path)
    meta = path.with_name(f"{path.stem}.provenance.json")
    atomic_write_text(meta, json.dumps(table_provenance(settings, table.attrs.get("sources", {})), indent=1) + "\n")
    atomic_write_text(path, table.to_csv(index=False))
    return [meta, path]


def layer_top_counts(settings, dnn: str, p_method: str | None = None) -> np.ndarray:
    """Kept units per (layer, top ROI), all layers, as in Figure S1.

    Returns
    -------
    ndarray of shape (n_layers, n_rois), int64
    """
    tree = AccuracyTree(settings, dnn)
    s = settings.analysis.score
    counts, _ = level_counts(tree.decoding_levels(), tree.n_samples, p_method or s.p_method, s.p_threshold)
    return counts


def mean_accuracy_profile(settings, dnn: str, kind: str = "decoding") -> np.ndarray:
    """Mean accuracy of each (layer, ROI) over units (decoding) or voxels (encoding), NaN ignored.

    Returns
    -------
    ndarray of shape (n_layers, n_rois)
    """
    tree = AccuracyTree(settings, dnn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "decoding":
            return np.stack([np.nanmean(level, axis=1) for level in tree.decoding_levels()])
        if kind == "encoding":
            return np.stack([np.nanmean(level, axis=1) for level in tree.encoding_levels()]).T
    raise ValueError(f"kind must be 'decoding' or 'encoding', got {kind!r}")
