"""One DNN's scores: options, the decoding and encoding scores with their bootstrap CIs, from levels or trees."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from bhscore.score.hierarchy import _warn_if_nan, level_counts, pooled_score, spearman_from_counts
from bhscore.score.subsets import _ci, _mean_of_draws, layer_subsets, resample_counts, subset_scores
from bhscore.score.tree import AccuracyTree


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
    score = pooled_score(counts, "encoding BH score")
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
