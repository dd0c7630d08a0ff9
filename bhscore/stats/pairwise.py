"""Every pair of DNNs: bootstrap differences, CIs, p-values, Holm decisions and compact letters."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

from bhscore.score import COMPONENTS
from bhscore.stats.bootstrap import BootstrapScores
from bhscore.stats.multiple import compact_letters, holm

if TYPE_CHECKING:
    import pandas as pd

#: Significance level of the adjusted pairwise decisions and the compact letter display.
ALPHA = 0.05

#: Columns of :func:`pairwise_table`, in order.
PAIRWISE_COLUMNS = [
    "component", "dnn_a", "dnn_b", "score_a", "score_b", "diff", "ci_low", "ci_high", "se", "p_value",
    "p_holm", "significant", "paired", "n_boot",
]  # fmt: skip


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


def pairwise_table(boot: BootstrapScores, ci_level: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Every ordered pair of DNNs and component: the difference, its CI, p-value and Holm decision.

    Returns
    -------
    pandas.DataFrame
        Columns component, dnn_a, dnn_b, score_a, score_b, diff (a - b), ci_low, ci_high, se, p_value, p_holm
        (Holm over the n (n - 1) / 2 pairs of the component), significant (p_holm < alpha), paired (the
        encoding voxels were resampled jointly), n_boot. Both orders of each pair (the second with the sign
        flipped), components in :data:`bhscore.score.COMPONENTS` order.
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
