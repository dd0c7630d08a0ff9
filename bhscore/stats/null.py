"""The null of "no hierarchy": the DNN's scores with its layers in random order.

:func:`layer_order_null` permutes the DNN's layer order (all orderings when there are few, Monte Carlo
otherwise) and recomputes the scores from the permuted count tables.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from bhscore.score import ScoreOptions, spearman_from_counts
from bhscore.stats.per_subject import quiet_nanmean, score_subsets
from bhscore.stats.tops import ItemTops

#: Default number of layer orderings of the Monte Carlo null; all orderings when there are at most EXACT_LIMIT.
N_PERMUTATIONS = 1000
EXACT_LIMIT = 5040  # 7! orderings


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


def _permuted_decoding_scores(
    counts: np.ndarray, perms: np.ndarray, subsets: np.ndarray, chunk_elements: int
) -> np.ndarray:
    """Decoding-based score of every layer ordering, in chunks of at most about ``chunk_elements`` counts.

    Parameters
    ----------
    counts : ndarray of shape (n_layers, n_rois)
    perms : ndarray of shape (n_orderings, n_layers), int
    subsets : ndarray of shape (n_subsets, per_draw), int

    Returns
    -------
    ndarray of shape (n_orderings,)
    """
    per_perm = subsets.size * counts.shape[1]
    step = max(1, chunk_elements // per_perm)
    dec = np.empty(len(perms))
    for start in range(0, len(perms), step):
        idx = perms[start : start + step][:, subsets]  # (chunk, n_subsets, per_draw)
        dec[start : start + step] = quiet_nanmean(spearman_from_counts(counts[idx]))
    return dec


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
    subsets = score_subsets(n_layers, options, max_subsets=20 * options.n_draws)
    dec = _permuted_decoding_scores(dec_counts, perms, subsets, chunk_elements)
    enc = spearman_from_counts(np.moveaxis(enc_counts[:, perms], 1, 0))  # (n_orderings,)
    obs_dec = float(quiet_nanmean(spearman_from_counts(dec_counts[subsets])))
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
        means[c] = float(quiet_nanmean(values, axis=0))
    return NullResult(p_values, means, "exact" if exact else "monte_carlo", len(perms))
