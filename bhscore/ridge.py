"""The FastL2LiR estimator (per-output input selection + L2-regularised regression), batched, CPU or CUDA.

The estimator (``fastl2lir`` 0.11, ``FastL2LiR().fit(X, Y, alpha, n_feat)``), for each output column y of Y:

1. C = Pearson correlation (ddof=1) between every input column and y; inputs whose variance (ddof=0) is below
   ``1e-8`` get C = 0.
2. S = the ``n_feat`` inputs with the largest \\|C\\|, then a column of ones (the bias) appended last.
3. Solve ``(X_S^T X_S + alpha I) w = X_S^T y``; alpha sits on the *whole* diagonal, the bias entry included.
   Weights of unselected inputs are 0.

When ``n_feat`` is 0 or ``>= n_inputs`` there is no selection: the plain ridge on ``[X, 1]`` is solved, in the
primal form when there are more samples than inputs + 1 and in the dual form otherwise (as fastl2lir does).

How this implementation gets the same answer faster
---------------------------------------------------
- *Gram mode* (inputs fit a Gram matrix, e.g. decoding from <= ~16k voxels): ``[X, 1]^T [X, 1]`` is computed
  once (and can be reused for many Y, see :class:`GramInputs`); the correlations of all outputs come from
  one matrix product ``X_c^T Y_c`` which also yields ``X^T Y``; each output's sub-Gram is gathered from the
  Gram and the sub-systems are solved in batches by Cholesky (never batched ``torch.linalg.solve``).
- *Wide mode* (e.g. encoding from all ~300k units of a layer): the n_inputs x n_inputs Gram is never formed.
  Inputs are streamed in column chunks (from an array, a ``numpy.memmap`` of the feature cache, or a
  :class:`InputMatrix` that z-scores and expands rows on the fly); correlations and a running top-k are
  computed per chunk; the sub-Grams are built from the selected columns only, a batch of outputs at a time.
  Peak memory is the input (or only the page cache, if memory-mapped) plus a working set bounded by
  ``batch_size`` and ``chunk_size``.

Selection and ties
------------------
On CPU the correlation matrix is computed with exactly fastl2lir's numpy operations, so it is bitwise equal
to fastl2lir's in Gram mode and the selected sets are identical. Selection keeps the ``n_feat`` largest
\\|C\\| (NaN, from a constant output, counts as the largest, as in numpy's sort). Exact ties at the selection
boundary (constant inputs, C = 0; constant outputs, C = NaN; duplicated columns) are resolved for the affected
outputs only by fastl2lir's own rule, ``np.argsort(|C|)[::-1][:n_feat]`` evaluated with the same numpy on the
same values: fastl2lir's order among tied values is whatever numpy's (SIMD, unstable) sort produces, so this
is the only way to agree with it. In wide mode chunked products can differ from the unchunked ones in the
last bit (a near-tie within rounding may then select the other input); the tied outputs' full \\|C\\| rows
are recomputed in a second pass. On CUDA, correlations come from the GPU's own products; near-ties within
rounding can differ from fastl2lir in float32.

Examples
--------
>>> import numpy as np
>>> from bhscore.ridge import fit
>>> rng = np.random.default_rng(0)
>>> X, Y = rng.standard_normal((200, 50)), rng.standard_normal((200, 3))
>>> res = fit(X, Y, alpha=10.0, n_feat=20)
>>> res.selection.shape, res.W.shape, res.b.shape
((3, 20), (50, 3), (1, 3))
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Inputs whose variance (ddof=0) is below this never get a correlation (C = 0), as in fastl2lir.
VAR_THRESHOLD = 1e-8
#: NaN correlations (constant outputs) are ranked above every finite |C| (numpy sorts NaN last).
_NAN_RANK = 2.0
#: Default memory budget of the working set (bytes), used to size batches and chunks.
DEFAULT_BUDGET = 512 * 2**20
#: Solves smaller than this (floating point operations) are not worth worker threads.
SMALL_FLOPS = 2e8
#: Inputs up to this count use Gram mode by default.
MAX_GRAM_INPUTS = 16384

SOLVERS = ("ours", "fastl2lir")


# -------------------------------------------------------------------------------------------------
# small helpers
# -------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``'auto'``: CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype) -> np.dtype:
    """``float32`` or ``float64`` as a numpy dtype (accepts strings, numpy and torch dtypes)."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def _torch_dtype(dt: np.dtype) -> torch.dtype:
    return torch.float64 if dt == np.float64 else torch.float32


def _to_torch(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device) if device.type != "cpu" else t


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


class _Bar:
    """A tqdm counter when enabled, a no-op otherwise."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class InputMatrix:
    """A (n_samples, n_inputs) input matrix read by columns, without materialising it.

    The effective matrix is ``(data[rows] - center) / scale`` cast to ``dtype``: ``data`` may be a
    ``numpy.memmap`` (e.g. a feature cache opened with ``mmap_mode='r'``), ``rows`` expands images to samples
    (each training image was shown several times), and ``center``/``scale`` z-score on the fly. The
    arithmetic is elementwise, so any column block equals the same block of the materialised matrix bit for
    bit.

    Parameters
    ----------
    data : array_like of shape (n_rows, n_inputs)
    rows : ndarray of shape (n_samples,) of int, optional
        Row of ``data`` for each sample (default: all rows in order).
    center, scale : ndarray of shape (n_inputs,), optional
        Subtracted and divided (in float64) before the cast to ``dtype``.
    dtype : {'float32', 'float64'}
    """

    def __init__(self, data, rows=None, center=None, scale=None, dtype="float64"):
        if getattr(data, "ndim", None) != 2:
            raise ValueError(f"input matrix must be 2-D, got shape {getattr(data, 'shape', None)}")
        self.data = data
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.center = None if center is None else np.asarray(center, dtype=np.float64).ravel()
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64).ravel()
        self.dtype = resolve_dtype(dtype)
        for name, v in (("center", self.center), ("scale", self.scale)):
            if v is not None and v.size != data.shape[1]:
                raise ValueError(f"{name} has {v.size} values for {data.shape[1]} inputs")

    @property
    def shape(self) -> tuple[int, int]:
        n = self.data.shape[0] if self.rows is None else self.rows.size
        return (int(n), int(self.data.shape[1]))

    def _finish(self, block: np.ndarray, cols) -> np.ndarray:
        if self.rows is not None:
            block = block[self.rows]
        if self.center is not None or self.scale is not None:
            block = np.asarray(block, dtype=np.float64)
            if self.center is not None:
                block = block - self.center[cols]
            if self.scale is not None:
                block = block / self.scale[cols]
        return np.ascontiguousarray(block, dtype=self.dtype)

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Columns ``start:stop``, shape (n_samples, stop - start), C-contiguous, ``dtype``."""
        return self._finish(np.asarray(self.data[:, start:stop]), slice(start, stop))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Columns ``idx`` (sorted ascending is fastest), shape (n_samples, len(idx))."""
        idx = np.asarray(idx, dtype=np.int64)
        return self._finish(np.take(self.data, idx, axis=1), idx)

    def materialize(self) -> np.ndarray:
        return self.columns(0, self.shape[1])


def as_input(X, dtype) -> InputMatrix:
    """Wrap an array (or pass an :class:`InputMatrix` through, with the requested dtype)."""
    dt = resolve_dtype(dtype)
    if isinstance(X, InputMatrix):
        if X.dtype != dt:
            X = InputMatrix(X.data, X.rows, X.center, X.scale, dt)
        return X
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    return InputMatrix(X, dtype=dt)


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.isfinite(a).all():
        bad = np.unique(np.nonzero(~np.isfinite(a))[1])
        raise ValueError(
            f"{what} has non-finite values (NaN/inf) in {bad.size} column(s), e.g. {bad[:5].tolist()}"
        )


# -------------------------------------------------------------------------------------------------
# results
# -------------------------------------------------------------------------------------------------


@dataclass
class RidgeFit:
    """A fitted FastL2LiR model.

    Attributes
    ----------
    coef : ndarray
        With selection: shape (n_outputs, n_feat), the weight of each output's selected inputs (in the order
        of ``selection``). Without selection: the dense weights, shape (n_inputs, n_outputs).
    b : ndarray of shape (1, n_outputs)
    selection : ndarray of shape (n_outputs, n_feat) of int64, or None
        Selected input indices per output, ascending.
    n_inputs : int
    """

    coef: np.ndarray
    b: np.ndarray
    selection: np.ndarray | None
    n_inputs: int

    @property
    def n_outputs(self) -> int:
        return self.b.shape[1]

    @property
    def W(self) -> np.ndarray:
        """Dense weights, shape (n_inputs, n_outputs) (zeros outside the selection), as fastl2lir's ``W``."""
        if self.selection is None:
            return self.coef
        W = np.zeros((self.n_inputs, self.n_outputs), dtype=self.coef.dtype)
        W[self.selection, np.arange(self.n_outputs)[:, None]] = self.coef
        return W

    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """Predictions ``X W + b``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), the dtype of the fit
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"X must be (n_samples, {self.n_inputs}), got {X.shape}")
        X = X.astype(self.coef.dtype, copy=False)
        if self.selection is None or self.n_inputs * self.n_outputs <= 50_000_000:
            return X @ self.W + self.b
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.coef.dtype)
        for a, z in _batches(self.n_outputs, batch_size):
            Xg = X[:, self.selection[a:z]]  # (n, B, k)
            out[:, a:z] = np.einsum("nbk,bk->nb", Xg, self.coef[a:z]) + self.b[:, a:z]
        return out


# -------------------------------------------------------------------------------------------------
# statistics and correlation (numpy on CPU: the very operations of fastl2lir, hence bitwise equal)
# -------------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    mean: np.ndarray | torch.Tensor  # (n_cols,)
    std: np.ndarray | torch.Tensor  # (n_cols,) ddof=1
    const: np.ndarray | torch.Tensor  # (n_cols,) bool, variance (ddof=0) < VAR_THRESHOLD


def _stats(A, with_const: bool = True) -> _Stats:
    """Column mean, std (ddof=1) and the constant-column mask of a numpy array or torch tensor."""
    if isinstance(A, np.ndarray):
        const = np.var(A, axis=0) < VAR_THRESHOLD if with_const else None
        return _Stats(np.mean(A, axis=0), np.std(A, axis=0, ddof=1), const)
    const = A.var(dim=0, correction=0) < VAR_THRESHOLD if with_const else None
    return _Stats(A.mean(dim=0), A.std(dim=0, correction=1), const)


def _centred_product(Xb, xs: _Stats, Yc):
    """``(X - mean)^T Y_c``: (n_in_block, n_out)."""
    if isinstance(Xb, np.ndarray):
        return (Xb - xs.mean).T @ Yc
    return (Xb - xs.mean).T @ Yc


def _correlation(P, n: int, xs: _Stats, ys: _Stats):
    """Pearson r from the centred product, exactly as fastl2lir's ``corrmat`` (then C = 0 on constant inputs)."""
    if isinstance(P, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            C = (P / (n - 1)) / np.outer(xs.std, ys.std)
        C[xs.const, :] = 0.0
        return C
    C = (P / (n - 1)) / torch.outer(xs.std, ys.std)
    C[xs.const, :] = 0.0
    return C


def _rank_keys(C) -> torch.Tensor:
    """|C| transposed to (n_out, n_in), NaN -> a value above every |C| (torch tensor, same device)."""
    if isinstance(C, np.ndarray):
        A = torch.from_numpy(np.abs(C.T))
    else:
        A = C.T.abs()
    return torch.nan_to_num(A, nan=_NAN_RANK)


def _topk(A: torch.Tensor, k: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row of A (n_out, m): values (desc), column indices + offset, and the next value."""
    m = A.shape[1]
    kk = min(k + 1, m)
    vals, idx = torch.topk(A, kk, dim=1, largest=True, sorted=True)
    if kk > k:
        nxt = vals[:, k]
    else:
        nxt = torch.full((A.shape[0],), -math.inf, dtype=A.dtype, device=A.device)
    return vals[:, :k], idx[:, :k] + offset, nxt


def _fastl2lir_order(abs_c_row: np.ndarray, k: int) -> np.ndarray:
    """fastl2lir's selection of one output: ``argsort(|C|)[::-1][:k]`` (decides ties as fastl2lir does)."""
    return np.ascontiguousarray(np.argsort(abs_c_row)[::-1][:k])


# -------------------------------------------------------------------------------------------------
# batched solver
# -------------------------------------------------------------------------------------------------


def _solve_spd(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Solve ``A w = r`` for a batch of symmetric positive definite matrices.

    Parameters
    ----------
    A : Tensor of shape (B, m, m)
    r : Tensor of shape (B, m)

    Returns
    -------
    Tensor of shape (B, m)

    Batched Cholesky and two triangular solves; matrices that are not numerically positive definite (only
    possible with alpha = 0) fall back to an LU solve one at a time, like fastl2lir's ``np.linalg.solve``.
    """
    L, info = torch.linalg.cholesky_ex(A)
    z = torch.linalg.solve_triangular(L, r.unsqueeze(-1), upper=False)
    w = torch.linalg.solve_triangular(L.mT, z, upper=True).squeeze(-1)
    bad = torch.nonzero(info).flatten().tolist()
    for i in bad:
        Ai = A[i].cpu().numpy()
        ri = r[i].cpu().numpy()
        try:
            wi = np.linalg.solve(Ai, ri)
        except np.linalg.LinAlgError:
            wi = np.linalg.lstsq(Ai, ri, rcond=None)[0]
        w[i] = torch.from_numpy(wi).to(w.device)
    return w


def _gather_subgrams(G: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``G[i][:, i]`` for each row i of idx (B, m) -> (B, m, m)."""
    B, m = idx.shape
    if G.device.type != "cpu":
        return G[idx[:, :, None], idx[:, None, :]]
    out = np.empty((B, m, m), dtype=G.numpy().dtype)
    Gn, In = G.numpy(), idx.numpy()
    for j in range(B):  # two takes (rows, then columns) beat one 2-D fancy index on CPU
        np.take(np.take(Gn, In[j], axis=0), In[j], axis=1, out=out[j])
    return torch.from_numpy(out)


@contextlib.contextmanager
def _torch_single_thread(device: torch.device) -> Iterator[int]:
    """On CPU, run torch single-threaded inside the block; yields the thread count to use as workers.

    Many small factorisations parallelise better across matrices (one worker thread each) than inside each,
    and a busy machine cannot stall an OpenMP team on every small operation.
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n <= 1:
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield n
    finally:
        torch.set_num_threads(n)


def _run_batches(n_items: int, batch_size: int, work, n_workers: int, bar, flops: float = math.inf) -> None:
    """Call ``work(start, stop)`` on consecutive batches of ``n_items``, in ``n_workers`` threads.

    ``work`` must write disjoint outputs; numpy and torch release the GIL in the heavy parts. Work of fewer
    than ``SMALL_FLOPS`` (estimated by ``flops``) runs in the calling thread.
    """
    batches = list(_batches(n_items, batch_size))
    if n_workers <= 1 or len(batches) <= 1 or flops < SMALL_FLOPS:
        for c0, c1 in batches:
            bar.update(work(c0, c1))
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(
        min(n_workers, len(batches)), initializer=torch.set_num_threads, initargs=(1,)
    ) as ex:
        for done in ex.map(lambda ab: work(*ab), batches):
            bar.update(done)


def _auto_batch(per_item_bytes: int, budget: int, lo: int = 1, hi: int = 4096) -> int:
    return int(max(lo, min(hi, budget // max(per_item_bytes, 1))))


def _device_budget(budget: int | None, device: torch.device) -> int:
    """The working-set budget: the given one, or on a GPU up to a quarter of its free memory (>= the default)."""
    if budget is not None:
        return int(budget)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(DEFAULT_BUDGET, min(free // 4, 8 * 2**30)))
    return DEFAULT_BUDGET


# -------------------------------------------------------------------------------------------------
# Gram mode
# -------------------------------------------------------------------------------------------------


class GramInputs:
    """Inputs prepared for many fits: statistics and the Gram ``[X, 1]^T [X, 1]``, computed once.

    In decoding the same ROI voxels (X) serve every layer of every DNN: prepare once, fit each layer's Y.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), or InputMatrix
    dtype : {'float32', 'float64'}
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU.
    """

    def __init__(self, X, dtype="float64", device=None):
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        X = as_input(X, self.dtype).materialize()
        _check_finite(X, "X")
        self.n, self.n_inputs = X.shape
        if self.n < 2:
            raise ValueError(f"need at least 2 samples, got {self.n}")
        if self.device.type == "cpu":
            self.X = X
            self.stats = _stats(X)
            G = X.T @ X  # numpy detects X.T @ X and uses syrk
            colsum = X.sum(axis=0)
            Ga = np.empty((self.n_inputs + 1, self.n_inputs + 1), dtype=self.dtype)
            Ga[:-1, :-1] = G
            Ga[:-1, -1] = colsum
            Ga[-1, :-1] = colsum
            Ga[-1, -1] = self.n
            self.G = torch.from_numpy(Ga)
        else:
            self.X = _to_torch(X, self.device)
            self.stats = _stats(self.X)
            Xa = torch.cat([self.X, torch.ones((self.n, 1), dtype=self.X.dtype, device=self.device)], dim=1)
            self.G = Xa.T @ Xa

    @property
    def _xp_cpu(self) -> bool:
        return self.device.type == "cpu"

    def fit(
        self,
        Y,
        alpha: float = 1.0,
        n_feat: int = 0,
        batch_size: int | None = None,
        budget: int | None = None,
        progress: bool = False,
    ) -> RidgeFit:
        """Fit every output column of ``Y`` (n_samples, n_outputs); see :func:`fit`."""
        budget = _device_budget(budget, self.device)
        Y = _as_outputs(Y, self.n, self.dtype)
        q, m = Y.shape[1], self.n_inputs
        if n_feat == 0 or n_feat >= m:
            return self._fit_plain(Y, alpha)
        k = int(n_feat)
        item = self.dtype.itemsize
        # outputs per block: P, C, keys (n_inputs x block) in float64 at most
        block = _auto_batch(m * 8 * 4, budget, lo=1, hi=q)
        coef = np.empty((q, k), dtype=self.dtype)
        sel = np.empty((q, k), dtype=np.int64)
        b = np.empty((1, q), dtype=self.dtype)
        bar = _Bar(q, "fastl2lir outputs", progress)
        with _torch_single_thread(self.device) as n_workers:
            if batch_size is None:
                per_output = (k + 1) ** 2 * item * 3 * n_workers
                batch_size = _auto_batch(per_output, budget // 2, lo=1, hi=128 if self._xp_cpu else 2048)
                batch_size = max(1, min(batch_size, -(-q // (4 * n_workers))))  # a few batches per worker
            for a, z in _batches(q, block):
                sel_b, XtY = self._select(Y[:, a:z], k)  # (B, k) ascending, (m + 1, B)
                sel[a:z] = sel_b.cpu().numpy()
                bias = torch.full((z - a, 1), m, dtype=torch.int64, device=self.device)
                idx_all = torch.cat([sel_b, bias], dim=1)  # (B, k + 1), bias last

                def work(c0: int, c1: int, a=a, idx_all=idx_all, XtY=XtY) -> int:
                    idx = idx_all[c0:c1]
                    Gs = _gather_subgrams(self.G, idx)
                    Gs.diagonal(dim1=-2, dim2=-1).add_(alpha)
                    r = torch.gather(XtY[:, c0:c1].T, 1, idx)  # (B, k + 1)
                    w = _solve_spd(Gs, r).cpu().numpy()
                    coef[a + c0 : a + c1] = w[:, :k]
                    b[0, a + c0 : a + c1] = w[:, k]
                    return c1 - c0

                _run_batches(z - a, batch_size, work, n_workers, bar, flops=(z - a) * (k + 1) ** 3 / 3)
        bar.close()
        return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m)

    def _select(self, Y: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Selected inputs (B, k) ascending and ``[X, 1]^T Y`` (n_inputs + 1, B) for a block of outputs."""
        n = self.n
        if self._xp_cpu:
            ys = _stats(Y, with_const=False)
            Yc = Y - ys.mean
            P = _centred_product(self.X, self.stats, Yc)  # (m, B)
            C = _correlation(P, n, self.stats, ys)
            XtY = np.empty((self.n_inputs + 1, Y.shape[1]), dtype=self.dtype)
            XtY[:-1] = P + n * np.outer(self.stats.mean, ys.mean)
            XtY[-1] = Y.sum(axis=0)
            XtY = torch.from_numpy(XtY)
        else:
            Yt = _to_torch(Y, self.device)
            ys = _stats(Yt, with_const=False)
            Yc = Yt - ys.mean
            P = _centred_product(self.X, self.stats, Yc)
            C = _correlation(P, n, self.stats, ys)
            XtY = torch.cat(
                [P + n * torch.outer(self.stats.mean, ys.mean), Yt.sum(dim=0, keepdim=True)], dim=0
            )
        keys = _rank_keys(C)
        _, idx, nxt = _topk(keys, k)
        kth = keys.gather(1, idx[:, -1:]).squeeze(1)
        tied = torch.nonzero(nxt == kth).flatten().tolist()
        if tied:
            Cn = C if isinstance(C, np.ndarray) else C.cpu().numpy()
            for j in tied:
                idx[j] = torch.from_numpy(_fastl2lir_order(np.abs(Cn[:, j]), k)).to(idx.device)
        return torch.sort(idx, dim=1).values, XtY

    def _fit_plain(self, Y: np.ndarray, alpha: float) -> RidgeFit:
        """No selection: ridge on ``[X, 1]`` with alpha on the whole diagonal (primal or dual form)."""
        n, m = self.n, self.n_inputs
        Yt = _to_torch(Y, self.device)
        if n > m + 1:  # primal, (m + 1) x (m + 1)
            A = self.G.clone()
            A.diagonal().add_(alpha)
            Xt = self.X if isinstance(self.X, torch.Tensor) else torch.from_numpy(self.X)
            R = torch.cat([Xt.T @ Yt, Yt.sum(dim=0, keepdim=True)], dim=0)
            Wb = _solve_spd_multi(A, R)
        else:  # dual, n x n
            Xt = self.X if isinstance(self.X, torch.Tensor) else torch.from_numpy(self.X)
            K = Xt @ Xt.T + 1.0
            K.diagonal().add_(alpha)
            Z = _solve_spd_multi(K, Yt)
            Wb = torch.cat([Xt.T @ Z, Z.sum(dim=0, keepdim=True)], dim=0)
        Wb = Wb.cpu().numpy()
        return RidgeFit(coef=np.ascontiguousarray(Wb[:-1]), b=Wb[-1:].copy(), selection=None, n_inputs=m)


def _solve_spd_multi(A: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Solve ``A W = R`` for one SPD matrix A (m, m) and many right-hand sides R (m, q)."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        return torch.from_numpy(np.linalg.solve(A.cpu().numpy(), R.cpu().numpy())).to(R.device)
    return torch.cholesky_solve(R, L)


def _as_outputs(Y, n: int, dtype: np.dtype) -> np.ndarray:
    if isinstance(Y, torch.Tensor):
        Y = Y.detach().cpu().numpy()
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"Y must be (n_samples, n_outputs), got shape {Y.shape}")
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} samples but Y has {Y.shape[0]}")
    if Y.shape[1] == 0:
        raise ValueError("Y has no outputs")
    Y = np.ascontiguousarray(Y, dtype=dtype)
    _check_finite(Y, "Y")
    return Y


# -------------------------------------------------------------------------------------------------
# wide mode
# -------------------------------------------------------------------------------------------------


def _wide_fit(
    src: InputMatrix,
    Y: np.ndarray,
    alpha: float,
    k: int,
    device: torch.device,
    batch_size: int | None,
    chunk_size: int | None,
    budget: int,
    progress: bool,
) -> RidgeFit:
    """FastL2LiR without the n_inputs x n_inputs Gram: chunked correlation + running top-k, then sub-Grams
    from the selected columns only."""
    n, m = src.shape
    q = Y.shape[1]
    dt = src.dtype
    item = dt.itemsize
    cpu = device.type == "cpu"
    if chunk_size is None:  # chunk: X block, centred copy (n x w), P, C, keys (w x q, float64 at most)
        chunk_size = _auto_batch(3 * n * item + 4 * q * 8, budget, lo=k + 1, hi=max(m, k + 1))
    if batch_size is None:  # per output: gathered columns (n x (k+1)) 3x, sub-Gram and factor, per worker
        n_par = max(1, torch.get_num_threads()) if cpu else 1
        per_output = (3 * n * (k + 1) * item + 3 * (k + 1) ** 2 * item) * n_par
        batch_size = _auto_batch(per_output, budget, lo=1, hi=256 if cpu else 2048)

    if cpu:
        ys = _stats(Y, with_const=False)
        Yc = Y - ys.mean
    else:
        Yt = _to_torch(Y, device)
        ys = _stats(Yt, with_const=False)
        Yc = Yt - ys.mean

    # pass 1: correlations by chunks of inputs, running top-k per output
    t0 = time.perf_counter()
    best_v = best_i = None
    disc = torch.full((q,), -math.inf, dtype=_torch_dtype(dt), device=device)
    chunks = list(_batches(m, chunk_size))
    for a, z in _progress(chunks, len(chunks), "correlation chunks", progress):
        Xb = src.columns(a, z)
        _check_finite(Xb, f"X columns {a}:{z}")
        if not cpu:
            Xb = _to_torch(Xb, device)
        xs = _stats(Xb)
        keys = _rank_keys(_correlation(_centred_product(Xb, xs, Yc), n, xs, ys)).to(device)
        v, i, nxt = _topk(keys, k, offset=a)
        disc = torch.maximum(disc, nxt.to(disc.dtype))
        if best_v is None:
            best_v, best_i = v, i
        else:
            allv = torch.cat([best_v, v], dim=1)
            alli = torch.cat([best_i, i], dim=1)
            vv, pos = torch.topk(allv, min(k + 1, allv.shape[1]), dim=1, sorted=True)
            if vv.shape[1] > k:
                disc = torch.maximum(disc, vv[:, k].to(disc.dtype))
            best_v, best_i = vv[:, :k], alli.gather(1, pos[:, :k])
        del Xb, keys
    tied = torch.nonzero(disc.to(best_v.dtype) == best_v[:, -1]).flatten().cpu().numpy()
    if tied.size:
        best_i[torch.from_numpy(tied).to(device)] = torch.from_numpy(
            _wide_tied_selection(src, Y[:, tied], k, chunk_size)
        ).to(device)
    sel = torch.sort(best_i, dim=1).values.cpu().numpy()
    t1 = time.perf_counter()
    log.debug("wide pass 1 (correlation, top-k, %d tied outputs): %.1f s", tied.size, t1 - t0)

    # pass 2: per batch of outputs, sub-Grams from the selected columns
    coef = np.empty((q, k), dtype=dt)
    b = np.empty((1, q), dtype=dt)
    tdt = _torch_dtype(dt)

    def work(a: int, z: int) -> int:
        S = sel[a:z]  # (B, k)
        U, pos = np.unique(S, return_inverse=True)
        XU = _to_torch(src.take(U), device)  # (n, u), the union of the batch's selected columns
        ones = torch.ones((n, 1), dtype=tdt, device=device)
        Yb = (Yt[:, a:z] if not cpu else torch.from_numpy(Y[:, a:z])).to(tdt)
        B = z - a
        posb = torch.from_numpy(pos.reshape(S.shape)).to(device)
        idx = torch.cat([posb, torch.full((B, 1), U.size, dtype=torch.int64, device=device)], dim=1)
        if U.size**2 <= B * (k + 1) ** 2:  # selections overlap: one Gram of the union is cheaper
            XUa = torch.cat([XU, ones], dim=1)
            Gs = _gather_subgrams(XUa.T @ XUa, idx)
            r = torch.gather((XUa.T @ Yb).T, 1, idx)
        else:  # one sub-Gram per output
            Xs = torch.cat([XU[:, posb].permute(1, 0, 2), ones.expand(B, n, 1)], dim=2)  # (B, n, k + 1)
            Gs = Xs.mT @ Xs
            r = (Xs.mT @ Yb.T.unsqueeze(-1)).squeeze(-1)
            del Xs
        Gs.diagonal(dim1=-2, dim2=-1).add_(alpha)
        w = _solve_spd(Gs, r).cpu().numpy()
        coef[a:z] = w[:, :k]
        b[0, a:z] = w[:, k]
        return B

    bar = _Bar(q, "fastl2lir outputs (wide)", progress)
    with _torch_single_thread(device) as n_workers:
        _run_batches(q, batch_size, work, n_workers, bar, flops=q * (k + 1) ** 2 * (n + k / 3))
    bar.close()
    log.debug("wide pass 2 (sub-Grams and solves, batches of %d): %.1f s", batch_size, time.perf_counter() - t1)
    return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m)


def _wide_tied_selection(src: InputMatrix, Y: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    """Full |C| rows of a few outputs (computed on CPU with numpy), then fastl2lir's argsort rule."""
    n, m = src.shape
    ys = _stats(Y, with_const=False)
    Yc = Y - ys.mean
    C = np.empty((m, Y.shape[1]), dtype=src.dtype)
    for a, z in _batches(m, chunk_size):
        Xb = src.columns(a, z)
        xs = _stats(Xb)
        C[a:z] = _correlation(_centred_product(Xb, xs, Yc), n, xs, ys)
    return np.stack([_fastl2lir_order(np.abs(C[:, j]), k) for j in range(Y.shape[1])])


def _wide_plain(
    src: InputMatrix, Y: np.ndarray, alpha: float, device: torch.device, chunk_size: int
) -> RidgeFit:
    """Plain ridge (no selection) on wide inputs: the dual form, kernel accumulated by chunks."""
    n, m = src.shape
    tdt = _torch_dtype(src.dtype)
    K = torch.ones((n, n), dtype=tdt, device=device)  # the bias column's contribution
    for a, z in _batches(m, chunk_size):
        Xb = _to_torch(src.columns(a, z), device)
        K += Xb @ Xb.T
    K.diagonal().add_(alpha)
    Z = _solve_spd_multi(K, _to_torch(Y, device))
    W = np.empty((m, Y.shape[1]), dtype=src.dtype)
    for a, z in _batches(m, chunk_size):
        W[a:z] = (_to_torch(src.columns(a, z), device).T @ Z).cpu().numpy()
    b = Z.sum(dim=0, keepdim=True).cpu().numpy()
    return RidgeFit(coef=W, b=b, selection=None, n_inputs=m)


# -------------------------------------------------------------------------------------------------
# public entry points
# -------------------------------------------------------------------------------------------------


def fit(
    X,
    Y,
    alpha: float = 1.0,
    n_feat: int = 0,
    *,
    dtype="float64",
    device=None,
    mode: str = "auto",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    budget: int | None = None,
    progress: bool = False,
) -> RidgeFit:
    """Fit FastL2LiR: per output, the ``n_feat`` inputs with the largest |r|, then ridge with a bias.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), numpy.memmap, or InputMatrix
    Y : array_like of shape (n_samples, n_outputs)
    alpha : float
        L2 penalty, added to the whole diagonal (the bias entry included).
    n_feat : int
        Inputs selected per output; 0 or >= n_inputs: no selection (plain ridge).
    dtype : {'float64', 'float32'}
        Precision of the whole computation (inputs are cast first, as fastl2lir does).
    device : str or torch.device, optional
        'cpu', 'cuda', 'cuda:1', ...; None or 'auto': CUDA when available.
    mode : {'auto', 'gram', 'wide'}
        'gram' forms the (n_inputs + 1)^2 Gram once; 'wide' never does (chunked correlation, sub-Grams from
        the selected columns). 'auto': 'gram' up to ``MAX_GRAM_INPUTS`` inputs.
    batch_size : int, optional
        Outputs solved together (default: from ``budget``).
    chunk_size : int, optional
        Input columns per chunk in wide mode (default: from ``budget``).
    budget : int, optional
        Bytes allowed for the working set beyond the inputs, the Gram and the results (default: 512 MiB; on
        a GPU up to a quarter of its free memory).
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    RidgeFit
    """
    dt = resolve_dtype(dtype)
    dev = resolve_device(device)
    src = as_input(X, dt)
    n, m = src.shape
    if mode not in ("auto", "gram", "wide"):
        raise ValueError(f"mode must be 'auto', 'gram' or 'wide', got {mode!r}")
    if n_feat < 0:
        raise ValueError(f"n_feat must be >= 0, got {n_feat}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if mode == "auto":
        mode = "gram" if m <= MAX_GRAM_INPUTS else "wide"
    budget = _device_budget(budget, dev)
    if mode == "gram":
        return GramInputs(src, dt, dev).fit(
            Y, alpha, n_feat, batch_size=batch_size, budget=budget, progress=progress
        )
    Yn = _as_outputs(Y, n, dt)
    if chunk_size is None:
        lo = min(m, max(1024, n_feat + 1))
        chunk_size = _auto_batch(3 * n * dt.itemsize + 4 * Yn.shape[1] * 8, budget, lo=lo, hi=m)
    if n_feat == 0 or n_feat >= m:
        return _wide_plain(src, Yn, alpha, dev, chunk_size)
    return _wide_fit(src, Yn, alpha, int(n_feat), dev, batch_size, chunk_size, budget, progress)


def fit_reference(X, Y, alpha: float = 1.0, n_feat: int = 0, dtype="float64") -> RidgeFit:
    """Fit with the reference implementation, PyPI ``fastl2lir`` 0.11 (for legacy runs and tests).

    Returns the same :class:`RidgeFit` (dense weights, no selection record).
    """
    import fastl2lir
    import fastl2lir.fastl2lir as impl

    dt = resolve_dtype(dtype)
    X = np.asarray(X)
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    real_tqdm = impl.tqdm
    impl.tqdm = lambda it, *a, **kw: it  # silence its per-output progress bar
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in corrmat for constant outputs
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # its numpy.matrix and per-element conversions
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            model = fastl2lir.FastL2LiR().fit(X, Y, alpha=alpha, n_feat=n_feat, dtype=dt.type)
    finally:
        impl.tqdm = real_tqdm
    return RidgeFit(coef=np.asarray(model.W), b=np.asarray(model.b), selection=None, n_inputs=X.shape[1])


class FastL2LiR:
    """Estimator with fastl2lir's interface (``fit(X, Y, alpha, n_feat)``, ``predict``, ``W``, ``b``).

    Parameters
    ----------
    solver : {'ours', 'fastl2lir'}
        'ours': :func:`fit` (batched, CPU/CUDA); 'fastl2lir': the reference package.
    dtype, device, mode, batch_size : see :func:`fit`
    """

    def __init__(
        self, solver: str = "ours", dtype="float64", device=None, mode: str = "auto", batch_size=None
    ):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        self.solver, self.dtype, self.device, self.mode, self.batch_size = (
            solver,
            dtype,
            device,
            mode,
            batch_size,
        )
        self.result: RidgeFit | None = None

    def fit(self, X, Y, alpha: float = 1.0, n_feat: int = 0) -> FastL2LiR:
        if self.solver == "fastl2lir":
            self.result = fit_reference(X, Y, alpha, n_feat, self.dtype)
        else:
            self.result = fit(
                X,
                Y,
                alpha,
                n_feat,
                dtype=self.dtype,
                device=self.device,
                mode=self.mode,
                batch_size=self.batch_size,
            )
        return self

    def _fitted(self) -> RidgeFit:
        if self.result is None:
            raise RuntimeError("call fit() first")
        return self.result

    @property
    def W(self) -> np.ndarray:
        return self._fitted().W

    @property
    def b(self) -> np.ndarray:
        return self._fitted().b

    def predict(self, X) -> np.ndarray:
        return self._fitted().predict(X)
