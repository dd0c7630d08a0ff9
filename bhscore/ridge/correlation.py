"""Column statistics, Pearson correlations and the top-k of |r|, exactly as fastl2lir computes them.

Every function takes numpy arrays (CPU: fastl2lir's very operations, hence bitwise equal to it) or torch
tensors (GPU) and answers in the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bhscore.ridge.backend import to_torch

#: Inputs whose variance (ddof=0) is below this never get a correlation (C = 0), as in fastl2lir.
VAR_THRESHOLD = 1e-8
#: NaN correlations (constant outputs) are ranked above every finite |C| (numpy sorts NaN last).
NAN_RANK = 2.0


@dataclass
class ColumnStats:
    """Statistics of the columns of a matrix (numpy arrays or torch tensors of shape (n_cols,))."""

    mean: np.ndarray | torch.Tensor
    std: np.ndarray | torch.Tensor  # ddof=1
    const: np.ndarray | torch.Tensor | None  # bool, variance (ddof=0) < VAR_THRESHOLD

    def to_torch(self, device: torch.device) -> ColumnStats:
        """The numpy mean and std as tensors on ``device``, without the constant mask (outputs have none)."""
        return ColumnStats(to_torch(self.mean, device), to_torch(self.std, device), None)


def column_stats(A, with_const: bool = True) -> ColumnStats:
    """Column mean, std (ddof=1) and the constant-column mask of a numpy array or torch tensor (n, n_cols)."""
    if isinstance(A, np.ndarray):
        const = np.var(A, axis=0) < VAR_THRESHOLD if with_const else None
        return ColumnStats(np.mean(A, axis=0), np.std(A, axis=0, ddof=1), const)
    const = A.var(dim=0, correction=0) < VAR_THRESHOLD if with_const else None
    return ColumnStats(A.mean(dim=0), A.std(dim=0, correction=1), const)


def weighted_column_stats(F, counts, n: int, with_const: bool = True) -> tuple[ColumnStats, object]:
    """Column statistics of the samples ``F[inverse]`` from the distinct rows F (n_groups, n_cols) and their
    counts: the weighted mean, std (ddof=1), constant mask (variance, ddof=0, below ``VAR_THRESHOLD``); numpy
    or torch. Also returns the variance (ddof=0), shape (n_cols,)."""
    mean = (counts @ F) / n
    Fc = F - mean
    var0 = (counts @ (Fc * Fc)) / n
    del Fc
    if isinstance(F, np.ndarray):
        std = np.sqrt(var0 * (n / (n - 1)))
    else:
        std = torch.sqrt(var0 * (n / (n - 1)))
    return ColumnStats(mean, std, var0 < VAR_THRESHOLD if with_const else None), var0


def resolve_constant(stats: ColumnStats, var0, exact_var) -> None:
    """Inputs whose weighted variance is within 1% of ``VAR_THRESHOLD`` get the constant flag of the exact
    (row-expanded) variance, ``exact_var(idx)`` (computed as fastl2lir does)."""
    v = var0 if isinstance(var0, np.ndarray) else var0.cpu().numpy()
    near = np.flatnonzero(np.abs(v - VAR_THRESHOLD) <= 0.01 * VAR_THRESHOLD)
    if near.size:
        const = exact_var(near) < VAR_THRESHOLD
        if isinstance(stats.const, np.ndarray):
            stats.const[near] = const
        else:
            stats.const[torch.from_numpy(near).to(stats.const.device)] = torch.from_numpy(const).to(
                stats.const.device
            )


def centred_product(Xb, xs: ColumnStats, Yc):
    """``(X - mean)^T Y_c``: (n_in_block, n_out)."""
    return (Xb - xs.mean).T @ Yc


def correlation_from_product(P, n: int, xs: ColumnStats, ys: ColumnStats):
    """Pearson r (n_in, n_out) from the centred product P, exactly as fastl2lir's ``corrmat`` (then C = 0 on
    constant inputs)."""
    if isinstance(P, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            C = (P / (n - 1)) / np.outer(xs.std, ys.std)
        C[xs.const, :] = 0.0
        return C
    C = (P / (n - 1)) / torch.outer(xs.std, ys.std)
    C[xs.const, :] = 0.0
    return C


def rank_keys(C) -> torch.Tensor:
    """|C| transposed to (n_out, n_in), NaN -> a value above every |C| (torch tensor, same device)."""
    if isinstance(C, np.ndarray):
        A = torch.from_numpy(np.abs(C.T))
    else:
        A = C.T.abs()
    return torch.nan_to_num(A, nan=NAN_RANK)


def topk(A: torch.Tensor, k: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row of A (n_out, m): values (desc), column indices + offset, and the next value."""
    m = A.shape[1]
    kk = min(k + 1, m)
    vals, idx = torch.topk(A, kk, dim=1, largest=True, sorted=True)
    if kk > k:
        nxt = vals[:, k]
    else:
        nxt = torch.full((A.shape[0],), -math.inf, dtype=A.dtype, device=A.device)
    return vals[:, :k], idx[:, :k] + offset, nxt


def fastl2lir_order(abs_c_row: np.ndarray, k: int) -> np.ndarray:
    """fastl2lir's selection of one output: ``argsort(|C|)[::-1][:k]`` (decides ties as fastl2lir does)."""
    return np.ascontiguousarray(np.argsort(abs_c_row)[::-1][:k])


class RunningTop:
    """The ``k`` largest keys per output over chunks of inputs, and the largest key left out."""

    def __init__(self, q: int, k: int, dtype: torch.dtype, device: torch.device):
        self.k = k
        self.vals = self.idx = None
        self.disc = torch.full((q,), -math.inf, dtype=dtype, device=device)

    def add(self, keys: torch.Tensor, offset: int) -> None:
        """Merge the keys (q, w) of inputs ``offset .. offset + w``."""
        k = self.k
        v, i, nxt = topk(keys, k, offset=offset)
        self.disc = torch.maximum(self.disc, nxt.to(self.disc.dtype))
        if self.vals is None:
            self.vals, self.idx = v, i
            return
        allv = torch.cat([self.vals, v], dim=1)
        alli = torch.cat([self.idx, i], dim=1)
        vv, pos = torch.topk(allv, min(k + 1, allv.shape[1]), dim=1, sorted=True)
        if vv.shape[1] > k:
            self.disc = torch.maximum(self.disc, vv[:, k].to(self.disc.dtype))
        self.vals, self.idx = vv[:, :k], alli.gather(1, pos[:, :k])

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values (q, k) descending, input indices (q, k), the largest value left out (q,)."""
        return self.vals, self.idx, self.disc
