"""The statistics tables of a set of DNNs: per-DNN statistics (one row each) and every pairwise comparison."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bhscore.score import COMPONENTS, ScoreOptions
from bhscore.stats.bootstrap import bootstrap_scores
from bhscore.stats.null import EXACT_LIMIT, N_PERMUTATIONS, layer_order_null
from bhscore.stats.pairwise import ALPHA, PAIRWISE_COLUMNS, letters_by_component, pairwise_table
from bhscore.stats.per_subject import subject_scores
from bhscore.stats.tops import ItemTops

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class StatsTables:
    """The statistics of a set of DNNs.

    Attributes
    ----------
    dnn_stats : DataFrame
        One row per DNN (columns :func:`dnn_stats_columns`).
    pairwise : DataFrame
        :func:`bhscore.stats.pairwise.pairwise_table`.
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
        See :func:`bhscore.stats.null.layer_order_null`.
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
