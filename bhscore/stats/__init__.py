"""Is DNN A more brain-hierarchical than DNN B? Per-subject scores, paired comparisons, a null per DNN.

Everything here starts from *item tops* (:mod:`~bhscore.stats.tops`): for every item (a unit decoded from one
subject, or a voxel of one subject) the row that predicts it best, or "dropped" when it fails the significance
filter. The scores are then computed from count tables exactly as :mod:`bhscore.score` does. The resampling
and its reasons: docs/method.md, "Comparing DNNs".

Modules
-------
tops
    Item tops of a DNN, per subject (:class:`ItemTops`), read from the accuracy trees.
per_subject
    Scores from item tops, pooled or each subject alone.
resample
    Bootstrap count tables: units within layers, voxels within (subject, ROI) shared by every DNN.
bootstrap
    The bootstrap of every DNN's scores at once (:func:`bootstrap_scores`), fresh layer draws per replicate.
multiple
    Holm's adjustment and the compact letter display.
pairwise
    Every pair's difference, CI, p-value and Holm decision (:func:`pairwise_table`), letters per component.
null
    The layer-order permutation null of one DNN (:func:`layer_order_null`).
tables
    The per-DNN statistics table and the pairwise table of a set of DNNs (:func:`compute_stats`).
simulation
    Simulated item tops with a planted hierarchy; calibration of the tests on them.

Examples
--------
>>> from bhscore.settings import load_settings
>>> from bhscore import stats
>>> s = load_settings()
>>> tops = [stats.read_item_tops(s, name) for name in ("AlexNet", "VGG-16")]        # doctest: +SKIP
>>> boot = stats.bootstrap_scores(tops, stats.ScoreOptions.from_settings(s))        # doctest: +SKIP
>>> stats.pairwise_table(boot).query("component == 'averaged'")                      # doctest: +SKIP
"""

from bhscore.score import COMPONENTS, ScoreOptions
from bhscore.stats.bootstrap import BootstrapScores, bootstrap_scores, random_layer_subsets, subset_spearman
from bhscore.stats.multiple import compact_letters, holm
from bhscore.stats.null import EXACT_LIMIT, N_PERMUTATIONS, NullResult, layer_order_null, layer_permutations
from bhscore.stats.pairwise import (
    ALPHA,
    PAIRWISE_COLUMNS,
    Differences,
    differences,
    letters_by_component,
    pairwise_table,
)
from bhscore.stats.per_subject import decoding_score, scores_from_tops, subject_scores
from bhscore.stats.resample import UNIT_RESAMPLING
from bhscore.stats.simulation import calibrate_null, calibrate_pairs, simulate_tops
from bhscore.stats.tables import StatsTables, compute_stats, dnn_stats_columns, subjects_of
from bhscore.stats.tops import ItemTops, item_tops, level_tops, pool_subjects, read_item_tops

__all__ = [
    "ALPHA",
    "COMPONENTS",
    "EXACT_LIMIT",
    "N_PERMUTATIONS",
    "PAIRWISE_COLUMNS",
    "UNIT_RESAMPLING",
    "BootstrapScores",
    "Differences",
    "ItemTops",
    "NullResult",
    "ScoreOptions",
    "StatsTables",
    "bootstrap_scores",
    "calibrate_null",
    "calibrate_pairs",
    "compact_letters",
    "compute_stats",
    "decoding_score",
    "differences",
    "dnn_stats_columns",
    "holm",
    "item_tops",
    "layer_order_null",
    "layer_permutations",
    "letters_by_component",
    "level_tops",
    "pairwise_table",
    "pool_subjects",
    "random_layer_subsets",
    "read_item_tops",
    "scores_from_tops",
    "simulate_tops",
    "subject_scores",
    "subjects_of",
    "subset_spearman",
]
