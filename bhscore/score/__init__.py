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

from bhscore.score.dnn import (
    DNNScore,
    ScoreOptions,
    decoding_score_from_counts,
    encoding_score_from_counts,
    score_dnn,
    score_from_levels,
)
from bhscore.score.hierarchy import (
    COMPONENTS,
    P_METHODS,
    correlation_p_values,
    keep_mask,
    legacy_voxel_subsample,
    level_counts,
    mean_accuracy_profile,
    pooled_score,
    spearman_from_counts,
    top_rows,
)
from bhscore.score.subsets import layer_subsets, n_exact_subsets, resample_counts, subset_scores
from bhscore.score.table import TABLE_COLUMNS, score_row, score_table, table_provenance, write_score_table
from bhscore.score.tree import AccuracyTree, MixedResultsError

__all__ = [
    "COMPONENTS", "P_METHODS", "TABLE_COLUMNS",
    "AccuracyTree", "DNNScore", "MixedResultsError", "ScoreOptions",
    "correlation_p_values", "decoding_score_from_counts", "encoding_score_from_counts", "keep_mask",
    "layer_subsets", "legacy_voxel_subsample", "level_counts", "mean_accuracy_profile", "n_exact_subsets",
    "pooled_score", "resample_counts", "score_dnn", "score_from_levels", "score_row", "score_table",
    "spearman_from_counts", "subset_scores", "table_provenance", "top_rows", "write_score_table",
]  # fmt: skip
