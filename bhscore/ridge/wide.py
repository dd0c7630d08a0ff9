"""Wide mode: FastL2LiR without the n_inputs x n_inputs Gram (e.g. encoding from all ~300k units of a layer).

Inputs are streamed in column chunks (from an array, a ``numpy.memmap`` of the feature cache, or an
:class:`~bhscore.ridge.inputs.InputMatrix` that z-scores and expands rows on the fly); correlations and a
running top-k are computed per chunk; the sub-Grams are built from the selected columns only, a batch of
outputs at a time. Peak memory is the input (or only the page cache, if memory-mapped) plus a working set
bounded by ``batch_size`` and ``chunk_size``. In wide mode chunked products can differ from the unchunked
ones in the last bit (a near-tie within rounding may then select the other input); the tied outputs' full
\\|C\\| rows are recomputed in a second pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from bhscore.ridge import backend, selection
from bhscore.ridge.backend import auto_batch, to_torch, torch_dtype
from bhscore.ridge.correlation import (
    RunningTop,
    centred_product,
    column_stats,
    correlation_from_product,
    rank_keys,
    resolve_constant,
    weighted_column_stats,
)
from bhscore.ridge.inputs import Groups, InputMatrix, check_finite
from bhscore.ridge.result import RidgeFit
from bhscore.ridge.solve import (
    Bar,
    batches,
    gather_subgrams,
    run_batches,
    solve_spd,
    solve_spd_multi,
    torch_single_thread,
    with_progress,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WideOptions:
    """How a wide fit runs (see :func:`bhscore.ridge.fit`).

    Attributes
    ----------
    device : torch.device
    batch_size : int or None
        Outputs solved together (None: from the budget).
    chunk_size : int or None
        Input columns per chunk (None: from the budget).
    budget : int
        Bytes of the working set.
    progress : bool
        Show tqdm progress bars.
    solve_dtype : numpy dtype or None
        Precision of the sub-Grams and solves (None: the inputs' dtype; see
        :class:`bhscore.ridge.GramInputs`); the weights are stored in the inputs' dtype.
    """

    device: torch.device
    batch_size: int | None
    chunk_size: int | None
    budget: int
    progress: bool
    solve_dtype: np.dtype | None = None


def fit_wide(
    src: InputMatrix, Y: np.ndarray, alpha: float, n_feat: int, opts: WideOptions, exact_rows: bool
) -> RidgeFit:
    """Fit the outputs Y (n_samples, n_outputs) on wide inputs ``src``: the plain ridge when ``n_feat`` is 0
    or >= n_inputs, else FastL2LiR (:func:`wide_fit`)."""
    n, m = src.shape
    if n_feat == 0 or n_feat >= m:
        chunk_size = opts.chunk_size
        if chunk_size is None:
            per_column = 3 * n * src.dtype.itemsize + 4 * Y.shape[1] * 8
            chunk_size = auto_batch(per_column, opts.budget, lo=min(m, 1024), hi=m)
        return wide_plain(src, Y, alpha, opts.device, chunk_size)
    return wide_fit(src, Y, alpha, int(n_feat), opts, exact_rows)


def wide_fit(
    src: InputMatrix, Y: np.ndarray, alpha: float, k: int, opts: WideOptions, exact_rows: bool = False
) -> RidgeFit:
    """FastL2LiR without the n_inputs x n_inputs Gram: chunked correlation + running top-k, then sub-Grams
    from the selected columns only. Inputs whose ``rows`` repeat go per image (:func:`wide_fit_per_image`)
    unless ``exact_rows``.

    Parameters
    ----------
    src : InputMatrix of shape (n_samples, n_inputs)
    Y : ndarray of shape (n_samples, n_outputs), ``src.dtype``
    alpha : float
    k : int, 0 < k < n_inputs
    opts : WideOptions
    exact_rows : bool
    """
    if src.rows is not None and not exact_rows:
        groups = Groups.from_rows(src.rows)
        if groups.worthwhile:
            return wide_fit_per_image(src, groups, Y, alpha, k, opts)
    n, m = src.shape
    if opts.chunk_size is None:  # chunk: X block, centred copy (n x w), P, C, keys (w x q, float64 at most)
        per_column = 3 * n * src.dtype.itemsize + 4 * Y.shape[1] * 8
        lo = min(m, max(1024, k + 1))
        opts = replace(opts, chunk_size=auto_batch(per_column, opts.budget, lo=lo, hi=m))
    t0 = time.perf_counter()
    sel, n_tied = _expanded_selection(src, Y, k, opts)
    t1 = time.perf_counter()
    log.debug("wide pass 1 (correlation, top-k, %d tied outputs): %.1f s", n_tied, t1 - t0)

    # pass 2: per batch of outputs, sub-Grams from the selected columns
    sd = opts.solve_dtype or src.dtype
    coef, b = wide_solve(lambda U: src.take(U).astype(sd, copy=False), np.ones(n, dtype=sd),
                         Y.astype(sd, copy=False), sel, alpha, opts)  # fmt: skip
    coef, b = coef.astype(src.dtype, copy=False), b.astype(src.dtype, copy=False)
    t2 = time.perf_counter()
    log.debug("wide pass 2 (sub-Grams and solves): %.1f s", t2 - t1)
    info = {"per_image": False, "select": t1 - t0, "solve": t2 - t1, "full": n_tied}
    return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)


def _expanded_selection(src: InputMatrix, Y: np.ndarray, k: int, opts: WideOptions) -> tuple[np.ndarray, int]:
    """Pass 1 on the row-expanded samples: correlations by chunks of inputs, a running top-k per output, and
    fastl2lir's argsort rule on whole columns for outputs tied at the boundary. Returns the selection
    (n_outputs, k) ascending and the number of tied outputs."""
    n, m = src.shape
    q = Y.shape[1]
    device = opts.device
    cpu = backend.numpy_path(device)
    Yd = Y if cpu else to_torch(Y, device)  # where the products are computed
    ys = column_stats(Yd, with_const=False)
    Yc = Yd - ys.mean
    top = RunningTop(q, k, torch_dtype(src.dtype), device)
    chunks = list(batches(m, opts.chunk_size))
    for a, z in with_progress(chunks, len(chunks), "correlation chunks", opts.progress):
        Xb = src.columns(a, z)
        check_finite(Xb, f"X columns {a}:{z}")
        if not cpu:
            Xb = to_torch(Xb, device)
        xs = column_stats(Xb)
        top.add(rank_keys(correlation_from_product(centred_product(Xb, xs, Yc), n, xs, ys)).to(device), a)
        del Xb
    best_v, best_i, disc = top.result()
    tied = torch.nonzero(disc.to(best_v.dtype) == best_v[:, -1]).flatten().cpu().numpy()
    if tied.size:
        exact_y = selection.exact_columns(Y, ys)
        best_i[torch.from_numpy(tied).to(device)] = torch.from_numpy(
            selection.whole_column_selection(src, exact_y, tied, q, k, opts.chunk_size)
        ).to(device)
    return torch.sort(best_i, dim=1).values.cpu().numpy(), int(tied.size)


def wide_fit_per_image(
    src: InputMatrix, groups: Groups, Y: np.ndarray, alpha: float, k: int, opts: WideOptions
) -> RidgeFit:
    """Wide mode with the inputs per distinct row (r of them, n = sum of the counts c samples).

    Pass 1 streams the r x n_inputs distinct rows (not the n x n_inputs expanded ones): weighted column
    statistics and ``(F - mean)^T (S^T Y_c)`` per chunk, a running top-(k + BAND_EXTRA) per output; the
    selection is then made fastl2lir's by :func:`bhscore.ridge.selection.refine`. Pass 2 builds the
    sub-Grams from the r rows weighted by sqrt(c): ``[F, 1]^T diag(c) [F, 1]``, right-hand sides
    ``[F, 1]^T S^T y``.
    """
    n, m = src.shape
    dt = src.dtype
    img = InputMatrix(src.data, groups.source_rows, src.center, src.scale, dt)  # (r, m)
    t0 = time.perf_counter()
    sel, counts = _per_image_selection(src, img, groups, Y, k, opts)
    t1 = time.perf_counter()
    log.debug(
        "wide pass 1 per image (%d rows for %d samples): %.1f s; outputs decided by per-image values %d, "
        "by the near-tie band %d, by whole exact columns %d",
        groups.n_groups, n, t1 - t0, counts["clear"], counts["band"], counts["full"],
    )  # fmt: skip
    sd = opts.solve_dtype or dt  # the solve's precision (the selection's is dt)
    w = np.sqrt(groups.counts.astype(sd))

    def take_weighted(U: np.ndarray) -> np.ndarray:
        return img.take(U).astype(sd, copy=False) * w[:, None]

    Yr = groups.sum(Y.astype(sd, copy=False)) / w[:, None]  # so that [F w, w]^T Yr = [F, 1]^T S^T Y
    coef, b = wide_solve(take_weighted, w, Yr.astype(sd, copy=False), sel, alpha, opts)
    coef, b = coef.astype(dt, copy=False), b.astype(dt, copy=False)
    t2 = time.perf_counter()
    log.debug("wide pass 2 per image (sub-Grams and solves): %.1f s", t2 - t1)
    info = {"per_image": True, "select": t1 - t0, "solve": t2 - t1, **counts}
    return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)


def _per_image_selection(
    src: InputMatrix, img: InputMatrix, groups: Groups, Y: np.ndarray, k: int, opts: WideOptions
) -> tuple[np.ndarray, dict]:
    """Pass 1 per image: the top-(k + BAND_EXTRA) per-image |C| of each output, then fastl2lir's selection
    (:func:`bhscore.ridge.selection.refine`). Returns the selection (n_outputs, k) ascending and the counts of
    outputs decided each way."""
    n, m = src.shape
    q = Y.shape[1]
    item = src.dtype.itemsize
    K = min(m, k + selection.BAND_EXTRA)
    if opts.chunk_size is None:
        per_column = 3 * groups.n_groups * item + 4 * q * 8
        opts = replace(opts, chunk_size=auto_batch(per_column, opts.budget, lo=K + 1, hi=max(m, K + 1)))
    exact_chunk = auto_batch(3 * n * item + 4 * q * 8, opts.budget, lo=k + 1, hi=max(m, k + 1))
    ys = column_stats(Y, with_const=False)  # the outputs are not repeated: fastl2lir's own statistics
    S = groups.sum(Y - ys.mean)  # (r, q) per-image sums of the centred outputs
    vals, idx, disc, largest_offset = _per_image_top(src, img, groups, S, ys, K, opts)
    bound = selection.rounding_bound(src.dtype, n, largest_offset, selection.offset_ratio(ys))
    exact_y = selection.exact_columns(Y, ys)
    sel, counts = selection.refine(
        vals, idx, disc, k, bound,
        exact_x=lambda U: (src.take(U), None),
        exact_y=exact_y,
        full=lambda J: selection.whole_column_selection(src, exact_y, J, q, k, exact_chunk),
        n_inputs=m, n_outputs=q,
    )  # fmt: skip
    return np.sort(sel, axis=1), counts


def _per_image_top(
    src: InputMatrix, img: InputMatrix, groups: Groups, S: np.ndarray, ys, K: int, opts: WideOptions
):
    """The K largest per-image |C| of each output over chunks of the distinct rows ``img`` (r, m), with the
    per-image sums S (r, q) of the centred outputs and their statistics ``ys``. Returns values (q, K),
    input indices (q, K), the largest value left out (q,) and the largest input offset ratio."""
    n, m = src.shape
    device = opts.device
    cpu = backend.numpy_path(device)
    c = groups.counts.astype(src.dtype)
    if cpu:
        Sd, ysd, cd = S, ys, c
    else:
        Sd, ysd, cd = to_torch(S, device), ys.to_torch(device), to_torch(c, device)
    top = RunningTop(S.shape[1], K, torch_dtype(src.dtype), device)
    largest_offset = 1.0
    chunks = list(batches(m, opts.chunk_size))
    for a, z in with_progress(chunks, len(chunks), "correlation chunks (per image)", opts.progress):
        Fb = img.columns(a, z)
        check_finite(Fb, f"X columns {a}:{z}")
        if not cpu:
            Fb = to_torch(Fb, device)
        xs, var0 = weighted_column_stats(Fb, cd, n)

        def exact_var(idx: np.ndarray, a: int = a) -> np.ndarray:
            cols = selection.pad_index(idx + a, 2, m)
            return np.var(src.take(cols), axis=0)[np.searchsorted(cols, idx + a)]

        resolve_constant(xs, var0, exact_var)
        largest_offset = max(largest_offset, selection.input_offset(xs))
        top.add(rank_keys(correlation_from_product(centred_product(Fb, xs, Sd), n, xs, ysd)).to(device), a)
        del Fb
    return (*top.result(), largest_offset)


def wide_solve(take, ones: np.ndarray, Y: np.ndarray, sel: np.ndarray, alpha: float, opts: WideOptions):
    """Solve each output's system from its selected columns, a batch of outputs at a time.

    The design is ``[take(U), ones]`` (n_rows, u + 1) for the union U of a batch's selections, the
    right-hand sides ``[take(U), ones]^T Y``: with ``ones`` all 1 and Y the outputs this is
    ``[X_S, 1]^T [X_S, 1]``; per image it is the sqrt(count)-weighted distinct rows.

    Parameters
    ----------
    take : callable, idx (u,) -> ndarray (n_rows, u)
    ones : ndarray of shape (n_rows,)
    Y : ndarray of shape (n_rows, n_outputs)
    sel : ndarray of shape (n_outputs, k), ascending
    alpha : float
    opts : WideOptions

    Returns
    -------
    coef : ndarray of shape (n_outputs, k)
    b : ndarray of shape (1, n_outputs)
    """
    q, k = sel.shape
    dt = Y.dtype
    device = opts.device
    cpu = backend.numpy_path(device)
    batch_size = opts.batch_size
    if batch_size is None:  # per output: gathered columns (n x (k+1)) 3x, sub-Gram and factor, per worker
        n_par = max(1, torch.get_num_threads()) if cpu else 1
        per_output = (3 * ones.size * (k + 1) * dt.itemsize + 3 * (k + 1) ** 2 * dt.itemsize) * n_par
        batch_size = auto_batch(per_output, opts.budget, lo=1, hi=256 if cpu else 2048)
    coef = np.empty((q, k), dtype=dt)
    b = np.empty((1, q), dtype=dt)
    ones_t = to_torch(ones.astype(dt, copy=False)[:, None], device)
    Yd = torch.from_numpy(Y) if cpu else to_torch(Y, device)

    def work(a: int, z: int) -> int:
        Gs, r = _batch_systems(take, ones_t, Yd[:, a:z].to(torch_dtype(dt)), sel[a:z], device)
        Gs.diagonal(dim1=-2, dim2=-1).add_(alpha)
        w = solve_spd(Gs, r).cpu().numpy()
        coef[a:z] = w[:, :k]
        b[0, a:z] = w[:, k]
        return z - a

    bar = Bar(q, "fastl2lir outputs (wide)", opts.progress)
    with torch_single_thread(device) as n_workers:
        run_batches(q, batch_size, work, n_workers, bar, flops=q * (k + 1) ** 2 * (ones.size + k / 3))
    bar.close()
    return coef, b


def _batch_systems(take, ones_t: torch.Tensor, Yb: torch.Tensor, S: np.ndarray, device: torch.device):
    """The sub-Grams (B, k + 1, k + 1) and right-hand sides (B, k + 1) of a batch of B outputs with the
    selections S (B, k), from the columns ``take(U)`` (n_rows, u) of their union U, ``ones_t`` (n_rows, 1)
    and the outputs Yb (n_rows, B)."""
    B, k = S.shape
    U, pos = np.unique(S, return_inverse=True)
    XU = to_torch(take(U), device)  # (n_rows, u), the union of the batch's selected columns
    posb = torch.from_numpy(pos.reshape(S.shape)).to(device)
    idx = torch.cat([posb, torch.full((B, 1), U.size, dtype=torch.int64, device=device)], dim=1)
    if U.size**2 <= B * (k + 1) ** 2:  # selections overlap: one Gram of the union is cheaper
        XUa = torch.cat([XU, ones_t], dim=1)
        return gather_subgrams(XUa.T @ XUa, idx), torch.gather((XUa.T @ Yb).T, 1, idx)
    # one sub-Gram per output
    Xs = torch.cat([XU[:, posb].permute(1, 0, 2), ones_t.expand(B, ones_t.shape[0], 1)], dim=2)  # (B, n, k+1)
    return Xs.mT @ Xs, (Xs.mT @ Yb.T.unsqueeze(-1)).squeeze(-1)


def wide_plain(
    src: InputMatrix, Y: np.ndarray, alpha: float, device: torch.device, chunk_size: int
) -> RidgeFit:
    """Plain ridge (no selection) on wide inputs: the dual form, kernel accumulated by chunks."""
    n, m = src.shape
    tdt = torch_dtype(src.dtype)
    K = torch.ones((n, n), dtype=tdt, device=device)  # the bias column's contribution
    for a, z in batches(m, chunk_size):
        Xb = to_torch(src.columns(a, z), device)
        K += Xb @ Xb.T
    K.diagonal().add_(alpha)
    Z = solve_spd_multi(K, to_torch(Y, device))
    W = np.empty((m, Y.shape[1]), dtype=src.dtype)
    for a, z in batches(m, chunk_size):
        W[a:z] = (to_torch(src.columns(a, z), device).T @ Z).cpu().numpy()
    b = Z.sum(dim=0, keepdim=True).cpu().numpy()
    return RidgeFit(coef=W, b=b, selection=None, n_inputs=m)
