"""fastl2lir's selection when the correlations come from another arithmetic (per image, or chunked).

Per image, the correlations are computed in another order than fastl2lir's, so they differ in the last
bits; outputs whose n_feat-th and next \\|C\\| are closer than a bound on that difference have the inputs
near the boundary recomputed on the row-expanded samples with fastl2lir's numpy operations (on the CPU, also
when the rest runs on a GPU), and exact ties go through fastl2lir's argsort rule on the whole recomputed
column (:func:`refine`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bhscore.ridge.correlation import (
    NAN_RANK,
    ColumnStats,
    centred_product,
    column_stats,
    correlation_from_product,
    fastl2lir_order,
)
from bhscore.ridge.inputs import InputMatrix
from bhscore.ridge.solve import batches

#: Candidates kept per output beyond ``n_feat``, for the near-tie band (wide mode and per-image selection).
BAND_EXTRA = 64
#: Exact recomputations are padded to at least this many inputs and outputs: BLAS products of smaller
#: shapes take other kernels (and other roundings) than fastl2lir's full product.
PAD_INPUTS, PAD_OUTPUTS = 128, 8


def offset_ratio(stats: ColumnStats) -> np.ndarray:
    """``1 + |mean| / std`` per column (numpy float64; inf where std is 0): how much centring can cost."""
    mean = stats.mean if isinstance(stats.mean, np.ndarray) else stats.mean.cpu().numpy()
    std = stats.std if isinstance(stats.std, np.ndarray) else stats.std.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 + np.abs(mean.astype(np.float64)) / std.astype(np.float64)
    return np.where(np.isfinite(r), r, np.inf)


def input_offset(stats: ColumnStats) -> float:
    """The largest ``1 + |mean| / std`` over the non-constant inputs (1 if all are constant)."""
    r = offset_ratio(stats)
    const = stats.const if isinstance(stats.const, np.ndarray) else stats.const.cpu().numpy()
    r = r[~const]
    return float(r.max()) if r.size else 1.0


def rounding_bound(dtype: np.dtype, n: int, input_offset: float, output_offset: np.ndarray) -> np.ndarray:
    """Bound on |C_per_image - C_fastl2lir| per output (float64, (n_outputs,); inf for constant outputs).

    Both correlations sum n rounded products; their difference, measured on z-scored data, stays below
    ~0.15 u sqrt(n) (u: unit roundoff; larger for non-centred columns, by 1 + |mean|/std). The bound
    is 2 u sqrt(n) times those offset ratios, over ten times the largest difference observed.
    """
    u = float(np.finfo(dtype).eps) / 2
    return 2.0 * u * math.sqrt(n) * input_offset * np.asarray(output_offset, dtype=np.float64)


def pad_index(idx: np.ndarray, size: int, total: int) -> np.ndarray:
    """The distinct ``idx``, extended with other indices of ``range(total)`` to ``min(size, total)``,
    sorted."""
    idx = np.unique(idx)
    want = min(size, total)
    if idx.size >= want:
        return idx
    extra = np.setdiff1d(np.arange(min(total, want + idx.size)), idx, assume_unique=True)[: want - idx.size]
    return np.union1d(idx, extra)


def exact_keys(XU: np.ndarray, YJ: np.ndarray, xs: ColumnStats | None, ys: ColumnStats) -> np.ndarray:
    """|C| (NaN -> above every value) of the columns XU (n, u) with the outputs YJ (n, j), computed with
    fastl2lir's numpy operations on the row-expanded samples: (u, j) float64. ``xs`` (None: computed from
    XU, C-contiguous, whose column sums run over the rows in order as on the whole matrix) and ``ys``: the
    columns' statistics as fastl2lir computes them."""
    n = XU.shape[0]
    xs = column_stats(XU) if xs is None else xs
    C = correlation_from_product(centred_product(XU, xs, YJ - ys.mean), n, xs, ys)
    A = np.abs(C).astype(np.float64)
    A[np.isnan(A)] = NAN_RANK
    return A


@dataclass
class _Candidates:
    """Per output (q of them), the K > k largest per-image |C| and what decides among them.

    Attributes
    ----------
    values : ndarray of shape (q, K), float64, descending
    inputs : ndarray of shape (q, K), their input indices
    kth : ndarray of shape (q,), the k-th largest value
    margin : ndarray of shape (q,), twice the rounding bound
    k : int
    """

    values: np.ndarray
    inputs: np.ndarray
    kth: np.ndarray
    margin: np.ndarray
    k: int


def refine(
    vals: torch.Tensor,
    idx: torch.Tensor,
    disc: torch.Tensor,
    k: int,
    bound: np.ndarray,
    exact_x,
    exact_y,
    full,
    n_inputs: int,
    n_outputs: int,
) -> tuple[np.ndarray, dict]:
    """fastl2lir's selection from per-image correlations and a bound on their rounding difference.

    Parameters
    ----------
    vals, idx : Tensor of shape (q, K), K > k
        Per output, the K largest per-image |C| (descending) and their input indices.
    disc : Tensor of shape (q,)
        The largest per-image |C| not kept (-inf if none).
    k : int
    bound : ndarray of shape (q,)
        |C_per_image - C_fastl2lir| <= bound (inf: decide with the exact correlations).
    exact_x : callable, idx (u,) -> (ndarray (n_samples, u), ColumnStats or None)
        Input columns, row-expanded, as fastl2lir sees them, and their statistics if known.
    exact_y : callable, outputs (j,) -> (ndarray (n_samples, j), ColumnStats)
        Output columns, row-expanded, C-contiguous, and fastl2lir's statistics of them.
    full : callable, outputs (j,) -> ndarray (j, k)
        fastl2lir's selection from the whole exact |C| column (argsort rule).
    n_inputs, n_outputs : int

    Returns
    -------
    sel : ndarray of shape (q, k) of int64 (unsorted)
    counts : dict
        Outputs decided by the per-image values ('clear'), by exact values of the near-tie band ('band'),
        and by whole exact columns ('full').

    With e the exact and a the per-image value, |a - e| <= d: inputs with a > t + 2d (t: the k-th largest
    a) are selected, those with a < t - 2d are not; the few in between (the band) are ranked by their exact
    values. Outputs whose band is not all among the kept candidates, constant outputs, and exact ties at
    the boundary go to ``full``.
    """
    V = vals.cpu().numpy().astype(np.float64)
    D = disc.cpu().numpy().astype(np.float64)
    cand = _Candidates(V, idx.cpu().numpy(), V[:, k - 1], 2.0 * np.asarray(bound, dtype=np.float64), k)
    t, d2 = cand.kth, cand.margin
    nxt = np.maximum(V[:, k], D)
    sel = cand.inputs[:, :k].copy()
    with np.errstate(invalid="ignore"):
        clear = (t - nxt) > d2
        to_full = ~clear & (~np.isfinite(d2) | (D >= t - d2))
    banded = np.flatnonzero(~clear & ~to_full)
    full_list = [np.flatnonzero(to_full)]
    for a, z in batches(banded.size, 128):  # the exact product costs ~ batch^2: keep batches small
        full_list.append(_decide_band(banded[a:z], cand, sel, exact_x, exact_y, n_inputs, n_outputs))
    to_full_idx = np.concatenate(full_list).astype(np.int64)
    if to_full_idx.size:
        sel[to_full_idx] = full(to_full_idx)
    counts = {
        "clear": int(clear.sum()),
        "band": int(banded.size - (to_full_idx.size - int(to_full.sum()))),
        "full": int(to_full_idx.size),
    }
    return sel, counts


def _decide_band(
    J: np.ndarray, cand: _Candidates, sel: np.ndarray, exact_x, exact_y, n_inputs: int, n_outputs: int
) -> np.ndarray:
    """Rank the near-tie band of the outputs J by exact |C| and write their selections into ``sel`` (q, k);
    returns the outputs of J with an exact tie at the boundary (for fastl2lir's argsort rule)."""
    V, Ik, k = cand.values, cand.inputs, cand.k
    lo = cand.kth[J] - cand.margin[J]
    hi = cand.kth[J] + cand.margin[J]
    n_sure = (V[J] > hi[:, None]).sum(axis=1)
    in_band = (V[J] >= lo[:, None]) & (V[J] <= hi[:, None])
    U = np.unique(Ik[J][in_band])
    Up = pad_index(U, PAD_INPUTS, n_inputs)
    Jp = pad_index(J, PAD_OUTPUTS, n_outputs)
    XU, xs = exact_x(Up)
    YJ, ys = exact_y(Jp)
    E = exact_keys(XU, YJ, xs, ys)  # (|Up|, |Jp|)
    del XU
    col_of = np.searchsorted(Jp, J)
    tied = []
    for r_, j in enumerate(J):  # few outputs, a few band members each
        members = np.flatnonzero(in_band[r_])
        e = E[np.searchsorted(Up, Ik[j, members]), col_of[r_]]
        need = k - n_sure[r_]
        order = np.argsort(-e, kind="stable")
        if need < e.size and e[order[need - 1]] == e[order[need]]:
            tied.append(j)  # an exact tie at the boundary: fastl2lir's argsort rule decides
            continue
        sel[j, n_sure[r_] :] = Ik[j, members[order[:need]]]
    return np.asarray(tied, dtype=np.int64)


def exact_columns(Y: np.ndarray, ys: ColumnStats | None = None):
    """``exact_y`` (see :func:`refine`) for outputs Y (n_samples, q) that are not repeated: C-contiguous
    columns of Y and fastl2lir's statistics of them (``ys``, computed on the whole Y as fastl2lir does;
    numpy's sums over a fancy-indexed, non-C-ordered copy would be ordered differently). Torch statistics
    (from a GPU) are recomputed with numpy."""
    if ys is None or not isinstance(ys.mean, np.ndarray):
        ys = column_stats(Y, with_const=False)
    return lambda J: (np.take(Y, J, axis=1), ColumnStats(ys.mean[J], ys.std[J], None))


def whole_column_selection(
    src: InputMatrix, exact_y, J: np.ndarray, n_outputs: int, k: int, chunk_size: int
) -> np.ndarray:
    """Whole |C| columns of a few outputs J (numpy, on the CPU, in fastl2lir's arithmetic), then fastl2lir's
    argsort rule: (len(J), k). ``exact_y`` as for :func:`refine`."""
    n, m = src.shape
    Jp = pad_index(np.asarray(J, dtype=np.int64), PAD_OUTPUTS, n_outputs)  # products of >= 8 columns
    YJ, ys = exact_y(Jp)
    Yc = YJ - ys.mean
    C = np.empty((m, Jp.size), dtype=src.dtype)
    for a, z in batches(m, chunk_size):
        Xb = src.columns(a, z)
        xs = column_stats(Xb)
        C[a:z] = correlation_from_product(centred_product(Xb, xs, Yc), n, xs, ys)
    return np.stack([fastl2lir_order(np.abs(C[:, c]), k) for c in np.searchsorted(Jp, J)])
