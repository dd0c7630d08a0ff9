"""Multiple comparisons: Holm's step-down adjustment and the compact letter display."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
