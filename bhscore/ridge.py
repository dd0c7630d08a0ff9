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
- *Per image* (both modes): the training samples repeat 1200 images 5 times. When the inputs repeat
  (an :class:`InputMatrix` with ``rows``: encoding) or the outputs do (``y_rows``: decoding), the statistics,
  correlations, Gram and sub-Grams are weighted sums over the distinct rows (:class:`GramInputs`,
  :func:`_wide_fit_per_image`): ~5x fewer operations and 5x less data streamed. The selection stays
  fastl2lir's (:func:`_refine_selection`); ``exact_rows=True`` computes on the row-expanded samples.

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

Per image, the correlations are computed in another order than fastl2lir's, so they differ in the last
bits; outputs whose n_feat-th and next \\|C\\| are closer than a bound on that difference have the inputs
near the boundary recomputed on the row-expanded samples with fastl2lir's numpy operations (on the CPU, also
when the rest runs on a GPU), and exact ties go through the argsort rule on the whole recomputed column
(:func:`_refine_selection`). The recomputation uses BLAS products of other shapes than fastl2lir's single
product; on this OpenBLAS such products give bitwise the same float32 elements (checked for >= 128 inputs
and >= 8 outputs, hence the padding), float64 ones can differ in the last bit.

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
from dataclasses import dataclass, field

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


def _numpy_path(device: torch.device) -> bool:
    """Whether to compute with numpy (CPU: fastl2lir's own operations) rather than torch (GPU)."""
    return device.type == "cpu"


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
        # z-score and cast the distinct rows, then repeat them: elementwise, so the same values as repeating
        # first, for 1 / (presentations per image) of the float64 work
        if self.center is not None or self.scale is not None:
            block = np.asarray(block, dtype=np.float64)
            if self.center is not None:
                block = block - self.center[cols]
            if self.scale is not None:
                block = block / self.scale[cols]
        block = np.asarray(block, dtype=self.dtype)
        if self.rows is not None:
            block = block[self.rows]
        return np.ascontiguousarray(block)

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
    info : dict
        How the fit went (for benchmarks and logs): seconds per phase, outputs decided by the per-image
        values, the near-tie band or whole exact columns.
    """

    coef: np.ndarray
    b: np.ndarray
    selection: np.ndarray | None
    n_inputs: int
    info: dict = field(default_factory=dict, repr=False, compare=False)

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
# samples that repeat rows: the per-image algebra
# -------------------------------------------------------------------------------------------------

#: Per-image arithmetic is used only when the distinct rows are at most this fraction of the samples.
MAX_DISTINCT_FRACTION = 0.8
#: Candidates kept per output beyond ``n_feat``, for the near-tie band (wide mode and per-image selection).
BAND_EXTRA = 64
#: Exact recomputations are padded to at least this many inputs and outputs: BLAS products of smaller
#: shapes take other kernels (and other roundings) than fastl2lir's full product.
_PAD_INPUTS, _PAD_OUTPUTS = 128, 8


@dataclass
class Groups:
    """Samples grouped by the distinct row they repeat (each training image was shown several times).

    Attributes
    ----------
    source_rows : ndarray of shape (n_groups,) of int64
        For each group, its row in the matrix the samples index (e.g. the features of one image).
    inverse : ndarray of shape (n_samples,) of int64
        Group of each sample.
    counts : ndarray of shape (n_groups,) of int64
        Samples per group (>= 1).
    """

    source_rows: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        self._sum_ops: dict = {}  # dtype -> sparse (n_groups, n_samples) 0/1 matrix

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> Groups:
        """Groups of the samples ``rows`` (n_samples,) that index rows of a matrix (unused rows dropped)."""
        source_rows, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        return cls(source_rows, inverse.astype(np.int64), np.bincount(inverse).astype(np.int64))

    @property
    def n_groups(self) -> int:
        return int(self.counts.size)

    @property
    def n_samples(self) -> int:
        return int(self.inverse.size)

    @property
    def worthwhile(self) -> bool:
        return self.n_groups <= MAX_DISTINCT_FRACTION * self.n_samples

    def sum(self, A: np.ndarray) -> np.ndarray:
        """Per-group sums of the rows of A (n_samples, n_cols), each in sample order: (n_groups, n_cols).

        A sparse 0/1 product: one pass over A, no reordered copy of it.
        """
        import scipy.sparse

        A = np.asarray(A)
        op = self._sum_ops.get(A.dtype)
        if op is None:
            ones = np.ones(self.n_samples, dtype=A.dtype)
            op = scipy.sparse.csr_matrix(
                (ones, (self.inverse, np.arange(self.n_samples))), shape=(self.n_groups, self.n_samples)
            )
            self._sum_ops[A.dtype] = op
        return np.asarray(op @ A)

    def expand(self, A: np.ndarray) -> np.ndarray:
        """The rows of A (n_groups, ...) repeated to samples: (n_samples, ...)."""
        return np.asarray(A)[self.inverse]


def distinct_rows(A: np.ndarray, probe: int = 16) -> Groups | None:
    """Groups of identical rows of A (n_samples, n_cols), or None when every row is distinct.

    Rows are first keyed by the bytes of their first ``probe`` columns, then the whole matrix is compared
    with its grouped reconstruction, so a group never joins rows that differ anywhere.
    """
    A = np.ascontiguousarray(A)
    if A.ndim != 2 or A.shape[0] < 2 or A.shape[1] == 0:
        return None

    def _groups(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = np.ascontiguousarray(cols)
        key = cols.view(np.dtype((np.void, cols.shape[1] * cols.itemsize))).ravel()
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.ravel()

    first, inverse = _groups(A[:, :probe])
    if first.size == A.shape[0]:
        return None
    if not np.array_equal(A, A[first][inverse]):  # the probe columns agree but some rows differ later
        first, inverse = _groups(A)
        if first.size == A.shape[0]:
            return None
    return Groups(first.astype(np.int64), inverse.astype(np.int64), np.bincount(inverse).astype(np.int64))


def _weighted_stats(F, counts, n: int, with_const: bool = True) -> tuple[_Stats, object]:
    """Column statistics of the samples ``F[inverse]`` from the distinct rows F (n_groups, n_cols) and their
    counts: the weighted mean, std (ddof=1), constant mask (variance, ddof=0, below ``VAR_THRESHOLD``); numpy
    or torch. Also returns the variance (ddof=0)."""
    mean = (counts @ F) / n
    Fc = F - mean
    var0 = (counts @ (Fc * Fc)) / n
    del Fc
    if isinstance(F, np.ndarray):
        std = np.sqrt(var0 * (n / (n - 1)))
    else:
        std = torch.sqrt(var0 * (n / (n - 1)))
    return _Stats(mean, std, var0 < VAR_THRESHOLD if with_const else None), var0


def _resolve_constant(stats: _Stats, var0, exact_var) -> None:
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


def _offset_ratio(stats: _Stats) -> np.ndarray:
    """``1 + |mean| / std`` per column (numpy float64; inf where std is 0): how much centring can cost."""
    mean = stats.mean if isinstance(stats.mean, np.ndarray) else stats.mean.cpu().numpy()
    std = stats.std if isinstance(stats.std, np.ndarray) else stats.std.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 + np.abs(mean.astype(np.float64)) / std.astype(np.float64)
    return np.where(np.isfinite(r), r, np.inf)


def _input_offset(stats: _Stats) -> float:
    """The largest ``1 + |mean| / std`` over the non-constant inputs (1 if all are constant)."""
    r = _offset_ratio(stats)
    const = stats.const if isinstance(stats.const, np.ndarray) else stats.const.cpu().numpy()
    r = r[~const]
    return float(r.max()) if r.size else 1.0


def _rounding_bound(dtype: np.dtype, n: int, input_offset: float, output_offset: np.ndarray) -> np.ndarray:
    """Bound on |C_per_image - C_fastl2lir| per output (float64; inf for constant outputs).

    Both correlations sum n rounded products; their difference, measured on z-scored data, stays below
    ~0.15 u sqrt(n) (u: unit roundoff; larger for non-centred columns, by 1 + |mean|/std). The bound
    is 2 u sqrt(n) times those offset ratios, over ten times the largest difference observed.
    """
    u = float(np.finfo(dtype).eps) / 2
    return 2.0 * u * math.sqrt(n) * input_offset * np.asarray(output_offset, dtype=np.float64)


def _pad_index(idx: np.ndarray, size: int, total: int) -> np.ndarray:
    """The distinct ``idx``, extended with other indices of ``range(total)`` to ``min(size, total)``, sorted."""
    idx = np.unique(idx)
    want = min(size, total)
    if idx.size >= want:
        return idx
    extra = np.setdiff1d(np.arange(min(total, want + idx.size)), idx, assume_unique=True)[: want - idx.size]
    return np.union1d(idx, extra)


def _exact_keys(XU: np.ndarray, YJ: np.ndarray, xs: _Stats | None, ys: _Stats) -> np.ndarray:
    """|C| (NaN -> above every value) of the columns XU (n, u) with the outputs YJ (n, j), computed with
    fastl2lir's numpy operations on the row-expanded samples: (u, j) float64. ``xs`` (None: computed from
    XU, C-contiguous, whose column sums run over the rows in order as on the whole matrix) and ``ys``: the
    columns' statistics as fastl2lir computes them."""
    n = XU.shape[0]
    xs = _stats(XU) if xs is None else xs
    C = _correlation(_centred_product(XU, xs, YJ - ys.mean), n, xs, ys)
    A = np.abs(C).astype(np.float64)
    A[np.isnan(A)] = _NAN_RANK
    return A


def _refine_selection(
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
    exact_x : callable, idx (u,) -> (ndarray (n_samples, u), _Stats or None)
        Input columns, row-expanded, as fastl2lir sees them, and their statistics if known.
    exact_y : callable, outputs (j,) -> (ndarray (n_samples, j), _Stats)
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
    Ik = idx.cpu().numpy()
    D = disc.cpu().numpy().astype(np.float64)
    d2 = 2.0 * np.asarray(bound, dtype=np.float64)
    t = V[:, k - 1]
    nxt = np.maximum(V[:, k], D)
    sel = Ik[:, :k].copy()
    with np.errstate(invalid="ignore"):
        clear = (t - nxt) > d2
        to_full = ~clear & (~np.isfinite(d2) | (D >= t - d2))
    banded = np.flatnonzero(~clear & ~to_full)
    full_list = [np.flatnonzero(to_full)]
    for a, z in _batches(banded.size, 128):  # the exact product costs ~ batch^2: keep batches small
        J = banded[a:z]
        lo = t[J] - d2[J]
        hi = t[J] + d2[J]
        n_sure = (V[J] > hi[:, None]).sum(axis=1)
        in_band = (V[J] >= lo[:, None]) & (V[J] <= hi[:, None])
        U = np.unique(Ik[J][in_band])
        Up = _pad_index(U, _PAD_INPUTS, n_inputs)
        Jp = _pad_index(J, _PAD_OUTPUTS, n_outputs)
        XU, xs = exact_x(Up)
        YJ, ys = exact_y(Jp)
        E = _exact_keys(XU, YJ, xs, ys)  # (|Up|, |Jp|)
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
        full_list.append(np.asarray(tied, dtype=np.int64))
    to_full_idx = np.concatenate(full_list).astype(np.int64)
    if to_full_idx.size:
        sel[to_full_idx] = full(to_full_idx)
    counts = {
        "clear": int(clear.sum()),
        "band": int(banded.size - (to_full_idx.size - int(to_full.sum()))),
        "full": int(to_full_idx.size),
    }
    return sel, counts


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

    Samples that repeat rows (each training image was shown several times) are handled by the per-image
    algebra unless ``exact_rows``: with r distinct rows F and counts c (n = sum c samples),
    ``X^T X = F^T diag(c) F``, ``X^T Y = F^T (S^T Y)`` (S^T Y: per-image sums of the outputs) and the
    correlations' means, variances and covariances are the same weighted sums, so the Gram and the
    correlations cost r / n of the row-expanded ones. Inputs repeat when X is an :class:`InputMatrix` with
    ``rows`` (encoding: features per image); outputs repeat when :meth:`fit` gets ``y_rows`` (decoding:
    features of the image shown in each sample). The selection stays fastl2lir's: near-ties within the
    rounding difference of the two arithmetics are decided by the row-expanded values (see
    :func:`_refine_selection`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), or InputMatrix
    dtype : {'float32', 'float64'}
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU.
    exact_rows : bool
        Always compute on the row-expanded samples (the arithmetic of fastl2lir; for checking).
    """

    def __init__(self, X, dtype="float64", device=None, exact_rows: bool = False):
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        self.exact_rows = bool(exact_rows)
        self.src = as_input(X, self.dtype)  # row-expanded view: exact recomputations, plain ridge
        self.n, self.n_inputs = self.src.shape
        if self.n < 2:
            raise ValueError(f"need at least 2 samples, got {self.n}")
        self.groups: Groups | None = None
        if self.src.rows is not None and not self.exact_rows:
            groups = Groups.from_rows(self.src.rows)
            if groups.worthwhile:
                self.groups = groups
        self._x_sums: tuple[np.ndarray, object] | None = None  # (inverse, per-group sums of centred X)
        self.X = None
        if self.groups is None:
            X = self.src.materialize()
            _check_finite(X, "X")
            self._X_host = X
            if self._xp_cpu:
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
                Xa = torch.cat(
                    [self.X, torch.ones((self.n, 1), dtype=self.X.dtype, device=self.device)], dim=1
                )
                self.G = Xa.T @ Xa
        else:
            self._init_per_image()
        self._input_offset = _input_offset(self.stats)

    def _init_per_image(self) -> None:
        """Distinct rows F (r, n_inputs), weighted statistics and ``[F, 1]^T diag(c) [F, 1]``."""
        g = self.groups
        img = InputMatrix(self.src.data, g.source_rows, self.src.center, self.src.scale, self.dtype)
        F = img.materialize()
        _check_finite(F, "X")
        c = g.counts.astype(self.dtype)
        w = np.sqrt(c)  # [F, 1]^T diag(c) [F, 1] = Fw^T Fw with Fw = diag(sqrt(c)) [F, 1]
        if self._xp_cpu:
            self.F = F
            self.counts = c
            self.stats, var0 = _weighted_stats(F, c, self.n)
            Fw = F * w[:, None]
            Ga = np.empty((self.n_inputs + 1, self.n_inputs + 1), dtype=self.dtype)
            Ga[:-1, :-1] = Fw.T @ Fw  # syrk
            colsum = c @ F
            Ga[:-1, -1] = colsum
            Ga[-1, :-1] = colsum
            Ga[-1, -1] = self.n
            self.G = torch.from_numpy(Ga)
        else:
            self.F = _to_torch(F, self.device)
            self.counts = _to_torch(c, self.device)
            self.stats, var0 = _weighted_stats(self.F, self.counts, self.n)
            wt = _to_torch(w, self.device)[:, None]
            Fwa = torch.cat([self.F * wt, wt], dim=1)
            self.G = Fwa.T @ Fwa

        def exact_var(idx: np.ndarray) -> np.ndarray:
            cols = _pad_index(idx, 2, self.n_inputs)  # a single column would be summed pairwise
            return np.var(self.src.take(cols), axis=0)[np.searchsorted(cols, idx)]

        _resolve_constant(self.stats, var0, exact_var)

    @property
    def _xp_cpu(self) -> bool:
        return _numpy_path(self.device)

    @property
    def per_image(self) -> bool:
        """Whether the inputs are handled per distinct row."""
        return self.groups is not None

    def fit(
        self,
        Y,
        alpha: float = 1.0,
        n_feat: int = 0,
        batch_size: int | None = None,
        budget: int | None = None,
        progress: bool = False,
        y_rows: np.ndarray | None = None,
    ) -> RidgeFit:
        """Fit every output column of ``Y``; see :func:`fit`.

        Parameters
        ----------
        Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
        y_rows : ndarray of shape (n_samples,) of int, optional
            The outputs of sample i are ``Y[y_rows[i]]`` (decoding: the features of the image shown).
        """
        budget = _device_budget(budget, self.device)
        y_groups = None
        if y_rows is not None:
            y_rows = np.asarray(y_rows, dtype=np.int64)
            if y_rows.shape != (self.n,):
                raise ValueError(
                    f"y_rows must have one entry per sample ({self.n}), got shape {y_rows.shape}"
                )
            Y = np.asarray(Y.detach().cpu().numpy() if isinstance(Y, torch.Tensor) else Y)
            Y = Y[:, None] if Y.ndim == 1 else Y
            y_groups = Groups.from_rows(y_rows)
            if self.per_image or self.exact_rows or not y_groups.worthwhile:
                Y, y_groups = Y[y_rows], None
            else:
                Y = _as_outputs(Y[y_groups.source_rows], y_groups.n_groups, self.dtype)
        if y_groups is None:
            Y = _as_outputs(Y, self.n, self.dtype)
        q, m = Y.shape[1], self.n_inputs
        if n_feat == 0 or n_feat >= m:
            return self._fit_plain(Y if y_groups is None else y_groups.expand(Y), alpha)
        k = int(n_feat)
        item = self.dtype.itemsize
        # outputs per block: P, C, keys (n_inputs x block) in float64 at most
        block = _auto_batch(m * 8 * 4, budget, lo=1, hi=q)
        coef = np.empty((q, k), dtype=self.dtype)
        sel = np.empty((q, k), dtype=np.int64)
        b = np.empty((1, q), dtype=self.dtype)
        self.selection_counts = {"clear": 0, "band": 0, "full": 0}
        # seconds: per-group sums of the inputs (once per grouping, cached), correlations + selection, solves
        self.timings = {"group_sums": 0.0, "select": 0.0, "solve": 0.0}
        t_start = time.perf_counter()
        if y_groups is not None:
            self._centred_input_sums(y_groups)
            self.timings["group_sums"] = time.perf_counter() - t_start
        bar = _Bar(q, "fastl2lir outputs", progress)
        with _torch_single_thread(self.device) as n_workers:
            if batch_size is None:
                per_output = (k + 1) ** 2 * item * 3 * n_workers
                batch_size = _auto_batch(per_output, budget // 2, lo=1, hi=128 if self._xp_cpu else 2048)
                batch_size = max(1, min(batch_size, -(-q // (4 * n_workers))))  # a few batches per worker
            for a, z in _batches(q, block):
                t0 = time.perf_counter()
                if y_groups is not None:
                    sel_b, XtY = self._select_grouped_outputs(Y[:, a:z], k, y_groups, budget)
                elif self.per_image:
                    sel_b, XtY = self._select_grouped_inputs(Y[:, a:z], k, budget)
                else:
                    sel_b, XtY = self._select(Y[:, a:z], k)  # (B, k) ascending, (m + 1, B)
                sel[a:z] = sel_b.cpu().numpy()
                self.timings["select"] += time.perf_counter() - t0
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
        self.timings["solve"] = (
            time.perf_counter() - t_start - self.timings["select"] - self.timings["group_sums"]
        )
        info = {"per_image": self.per_image or y_groups is not None, **self.timings, **self.selection_counts}
        return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)

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

    def _finish_selection(
        self, C, XtY, k: int, ys: _Stats, exact_x, exact_y, full
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image correlations C (n_inputs, B) -> fastl2lir's selection (B, k) ascending, and XtY."""
        keys = _rank_keys(C)
        K = min(self.n_inputs, k + BAND_EXTRA)
        vals, idx, nxt = _topk(keys, K)
        bound = _rounding_bound(self.dtype, self.n, self._input_offset, _offset_ratio(ys))
        sel, counts = _refine_selection(
            vals, idx, nxt, k, bound, exact_x, exact_y, full, self.n_inputs, C.shape[1]
        )
        for key, v in counts.items():
            self.selection_counts[key] += v
        return torch.sort(torch.from_numpy(sel).to(self.device), dim=1).values, XtY

    def _full_chunk(self, budget: int, n_outputs: int) -> int:
        return _auto_batch(
            3 * self.n * self.dtype.itemsize + 4 * n_outputs * 8, budget, lo=2, hi=self.n_inputs
        )

    def _select_grouped_inputs(self, Y: np.ndarray, k: int, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`_select`, with the inputs per distinct row: ``(F - mean)^T (S^T Y_c)``."""
        n, g = self.n, self.groups
        ys = _stats(Y, with_const=False)  # the outputs are not repeated: fastl2lir's own statistics
        S = g.sum(Y - ys.mean)  # (r, B) per-image sums of the centred outputs
        if self._xp_cpu:
            P = _centred_product(self.F, self.stats, S)  # (m, B)
            C = _correlation(P, n, self.stats, ys)
            XtY = np.empty((self.n_inputs + 1, Y.shape[1]), dtype=self.dtype)
            XtY[:-1] = P + n * np.outer(self.stats.mean, ys.mean)
            XtY[-1] = Y.sum(axis=0)
            XtY = torch.from_numpy(XtY)
        else:
            yst = _Stats(_to_torch(ys.mean, self.device), _to_torch(ys.std, self.device), None)
            P = _centred_product(self.F, self.stats, _to_torch(S, self.device))
            C = _correlation(P, n, self.stats, yst)
            bias = _to_torch(Y.sum(axis=0, keepdims=True), self.device)
            XtY = torch.cat([P + n * torch.outer(self.stats.mean, yst.mean), bias], dim=0)
        chunk = self._full_chunk(budget, Y.shape[1])
        exact_y = _exact_columns(Y, ys)
        return self._finish_selection(
            C, XtY, k, ys,
            exact_x=lambda U: (self.src.take(U), None),
            exact_y=exact_y,
            full=lambda J: _wide_tied_selection(self.src, exact_y, J, Y.shape[1], k, chunk),
        )  # fmt: skip

    def _select_grouped_outputs(
        self, G: np.ndarray, k: int, yg: Groups, budget: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`_select`, with the outputs per distinct row G (r, B): ``(S^T X_c)^T (G - mean)``."""
        n = self.n
        c = yg.counts.astype(self.dtype)
        ys, _ = _weighted_stats(G, c, n, with_const=False)
        Gc = G - ys.mean
        XS = self._centred_input_sums(yg)  # (r, m)
        if self._xp_cpu:
            P = XS.T @ Gc  # (m, B)
            C = _correlation(P, n, self.stats, ys)
            XtY = np.empty((self.n_inputs + 1, G.shape[1]), dtype=self.dtype)
            XtY[:-1] = P + n * np.outer(self.stats.mean, ys.mean)
            XtY[-1] = c @ G
            XtY = torch.from_numpy(XtY)
        else:
            yst = _Stats(_to_torch(ys.mean, self.device), _to_torch(ys.std, self.device), None)
            P = XS.T @ _to_torch(Gc, self.device)
            C = _correlation(P, n, self.stats, yst)
            bias = _to_torch((c @ G)[None, :], self.device)
            XtY = torch.cat([P + n * torch.outer(self.stats.mean, yst.mean), bias], dim=0)
        X = self._X_host
        chunk = self._full_chunk(budget, G.shape[1])
        expanded = {}

        def exact_y(J: np.ndarray) -> tuple[np.ndarray, _Stats]:  # fastl2lir's statistics: of the whole block
            if "ys" not in expanded:
                expanded["ys"] = _stats(yg.expand(G), with_const=False)
            ye = expanded["ys"]
            return yg.expand(np.take(G, J, axis=1)), _Stats(ye.mean[J], ye.std[J], None)

        return self._finish_selection(
            C, XtY, k, ys,
            exact_x=lambda U: (np.take(X, U, axis=1), self._host_stats(U)),
            exact_y=exact_y,
            full=lambda J: _wide_tied_selection(InputMatrix(X, dtype=self.dtype), exact_y, J, G.shape[1], k, chunk),
        )  # fmt: skip

    def _host_stats(self, idx: np.ndarray) -> _Stats | None:
        """numpy's statistics of the inputs ``idx`` (those of the row-expanded X); None on a GPU (its own
        statistics may differ from numpy's in the last bit: recompute)."""
        if not self._xp_cpu:
            return None
        st = self.stats
        return _Stats(st.mean[idx], st.std[idx], st.const[idx])

    def _centred_input_sums(self, yg: Groups):
        """Per-group sums of the centred inputs, ``S^T (X - mean)`` (r, n_inputs), cached per grouping."""
        if self._x_sums is None or not np.array_equal(self._x_sums[0], yg.inverse):
            mean = self.stats.mean if self._xp_cpu else self.stats.mean.cpu().numpy()
            XS = yg.sum(self._X_host - mean)
            self._x_sums = (yg.inverse.copy(), XS if self._xp_cpu else _to_torch(XS, self.device))
        return self._x_sums[1]

    def _fit_plain(self, Y: np.ndarray, alpha: float) -> RidgeFit:
        """No selection: ridge on ``[X, 1]`` with alpha on the whole diagonal (primal or dual form)."""
        n, m = self.n, self.n_inputs
        Yt = _to_torch(Y, self.device)
        X = self.X if self.X is not None else _to_torch(self.src.materialize(), self.device)
        Xt = X if isinstance(X, torch.Tensor) else torch.from_numpy(X)
        if n > m + 1:  # primal, (m + 1) x (m + 1)
            A = self.G.clone()
            A.diagonal().add_(alpha)
            R = torch.cat([Xt.T @ Yt, Yt.sum(dim=0, keepdim=True)], dim=0)
            Wb = _solve_spd_multi(A, R)
        else:  # dual, n x n
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
    exact_rows: bool = False,
) -> RidgeFit:
    """FastL2LiR without the n_inputs x n_inputs Gram: chunked correlation + running top-k, then sub-Grams
    from the selected columns only. Inputs whose ``rows`` repeat go per image (:func:`_wide_fit_per_image`)
    unless ``exact_rows``."""
    if src.rows is not None and not exact_rows:
        groups = Groups.from_rows(src.rows)
        if groups.worthwhile:
            return _wide_fit_per_image(
                src, groups, Y, alpha, k, device, batch_size, chunk_size, budget, progress
            )
    n, m = src.shape
    q = Y.shape[1]
    dt = src.dtype
    item = dt.itemsize
    cpu = _numpy_path(device)
    if chunk_size is None:  # chunk: X block, centred copy (n x w), P, C, keys (w x q, float64 at most)
        lo = min(m, max(1024, k + 1))
        chunk_size = _auto_batch(3 * n * item + 4 * q * 8, budget, lo=lo, hi=m)
    if cpu:
        ys = _stats(Y, with_const=False)
        Yc = Y - ys.mean
    else:
        Yt = _to_torch(Y, device)
        ys = _stats(Yt, with_const=False)
        Yc = Yt - ys.mean

    # pass 1: correlations by chunks of inputs, running top-k per output
    t0 = time.perf_counter()
    top = _RunningTop(q, k, _torch_dtype(dt), device)
    chunks = list(_batches(m, chunk_size))
    for a, z in _progress(chunks, len(chunks), "correlation chunks", progress):
        Xb = src.columns(a, z)
        _check_finite(Xb, f"X columns {a}:{z}")
        if not cpu:
            Xb = _to_torch(Xb, device)
        xs = _stats(Xb)
        top.add(_rank_keys(_correlation(_centred_product(Xb, xs, Yc), n, xs, ys)).to(device), a)
        del Xb
    best_v, best_i, disc = top.result()
    tied = torch.nonzero(disc.to(best_v.dtype) == best_v[:, -1]).flatten().cpu().numpy()
    if tied.size:
        best_i[torch.from_numpy(tied).to(device)] = torch.from_numpy(
            _wide_tied_selection(src, _exact_columns(Y, ys), tied, q, k, chunk_size)
        ).to(device)
    sel = torch.sort(best_i, dim=1).values.cpu().numpy()
    t1 = time.perf_counter()
    log.debug("wide pass 1 (correlation, top-k, %d tied outputs): %.1f s", tied.size, t1 - t0)

    # pass 2: per batch of outputs, sub-Grams from the selected columns
    coef, b = _wide_solve(src.take, np.ones(n, dtype=dt), Y, sel, alpha, device, batch_size, budget, progress)
    t2 = time.perf_counter()
    log.debug("wide pass 2 (sub-Grams and solves): %.1f s", t2 - t1)
    info = {"per_image": False, "select": t1 - t0, "solve": t2 - t1, "full": int(tied.size)}
    return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)


class _RunningTop:
    """The ``k`` largest keys per output over chunks of inputs, and the largest key left out."""

    def __init__(self, q: int, k: int, dtype: torch.dtype, device: torch.device):
        self.k = k
        self.vals = self.idx = None
        self.disc = torch.full((q,), -math.inf, dtype=dtype, device=device)

    def add(self, keys: torch.Tensor, offset: int) -> None:
        """Merge the keys (q, w) of inputs ``offset .. offset + w``."""
        k = self.k
        v, i, nxt = _topk(keys, k, offset=offset)
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


def _wide_fit_per_image(
    src: InputMatrix,
    groups: Groups,
    Y: np.ndarray,
    alpha: float,
    k: int,
    device: torch.device,
    batch_size: int | None,
    chunk_size: int | None,
    budget: int,
    progress: bool,
) -> RidgeFit:
    """Wide mode with the inputs per distinct row (r of them, n = sum of the counts c samples).

    Pass 1 streams the r x n_inputs distinct rows (not the n x n_inputs expanded ones): weighted column
    statistics and ``(F - mean)^T (S^T Y_c)`` per chunk, a running top-(k + BAND_EXTRA) per output; the
    selection is then made fastl2lir's by :func:`_refine_selection`. Pass 2 builds the sub-Grams from the r
    rows weighted by sqrt(c): ``[F, 1]^T diag(c) [F, 1]``, right-hand sides ``[F, 1]^T S^T y``.
    """
    n, m = src.shape
    q = Y.shape[1]
    dt = src.dtype
    item = dt.itemsize
    cpu = _numpy_path(device)
    r = groups.n_groups
    img = InputMatrix(src.data, groups.source_rows, src.center, src.scale, dt)  # (r, m)
    c = groups.counts.astype(dt)
    w = np.sqrt(c)
    K = min(m, k + BAND_EXTRA)
    if chunk_size is None:
        chunk_size = _auto_batch(3 * r * item + 4 * q * 8, budget, lo=K + 1, hi=max(m, K + 1))
    exact_chunk = _auto_batch(3 * n * item + 4 * q * 8, budget, lo=k + 1, hi=max(m, k + 1))

    ys = _stats(Y, with_const=False)  # the outputs are not repeated: fastl2lir's own statistics
    S = groups.sum(Y - ys.mean)  # (r, q) per-image sums of the centred outputs
    if cpu:
        Sd, ysd, cd = S, ys, c
    else:
        Sd, cd = _to_torch(S, device), _to_torch(c, device)
        ysd = _Stats(_to_torch(ys.mean, device), _to_torch(ys.std, device), None)

    t0 = time.perf_counter()
    top = _RunningTop(q, K, _torch_dtype(dt), device)
    input_offset = 1.0
    chunks = list(_batches(m, chunk_size))
    for a, z in _progress(chunks, len(chunks), "correlation chunks (per image)", progress):
        Fb = img.columns(a, z)
        _check_finite(Fb, f"X columns {a}:{z}")
        if not cpu:
            Fb = _to_torch(Fb, device)
        xs, var0 = _weighted_stats(Fb, cd, n)

        def exact_var(idx: np.ndarray, a: int = a) -> np.ndarray:
            cols = _pad_index(idx + a, 2, m)
            return np.var(src.take(cols), axis=0)[np.searchsorted(cols, idx + a)]

        _resolve_constant(xs, var0, exact_var)
        input_offset = max(input_offset, _input_offset(xs))
        top.add(_rank_keys(_correlation(_centred_product(Fb, xs, Sd), n, xs, ysd)).to(device), a)
        del Fb
    vals, idx, disc = top.result()
    bound = _rounding_bound(dt, n, input_offset, _offset_ratio(ys))
    exact_y = _exact_columns(Y, ys)
    sel, counts = _refine_selection(
        vals, idx, disc, k, bound,
        exact_x=lambda U: (src.take(U), None),
        exact_y=exact_y,
        full=lambda J: _wide_tied_selection(src, exact_y, J, q, k, exact_chunk),
        n_inputs=m, n_outputs=q,
    )  # fmt: skip
    sel = np.sort(sel, axis=1)
    t1 = time.perf_counter()
    log.debug(
        "wide pass 1 per image (%d rows for %d samples): %.1f s; outputs decided by per-image values %d, "
        "by the near-tie band %d, by whole exact columns %d",
        r, n, t1 - t0, counts["clear"], counts["band"], counts["full"],
    )  # fmt: skip

    def take_weighted(U: np.ndarray) -> np.ndarray:
        return img.take(U) * w[:, None]

    Yr = groups.sum(Y) / w[:, None]  # so that [F w, w]^T Yr = [F, 1]^T S^T Y
    coef, b = _wide_solve(take_weighted, w, Yr.astype(dt, copy=False), sel, alpha, device, batch_size,
                          budget, progress)  # fmt: skip
    t2 = time.perf_counter()
    log.debug("wide pass 2 per image (sub-Grams and solves): %.1f s", t2 - t1)
    info = {"per_image": True, "select": t1 - t0, "solve": t2 - t1, **counts}
    return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)


def _wide_solve(
    take,
    ones: np.ndarray,
    Y: np.ndarray,
    sel: np.ndarray,
    alpha: float,
    device: torch.device,
    batch_size: int | None,
    budget: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
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

    Returns
    -------
    coef : ndarray of shape (n_outputs, k)
    b : ndarray of shape (1, n_outputs)
    """
    n_rows = ones.size
    q, k = sel.shape
    dt = Y.dtype
    item = dt.itemsize
    cpu = _numpy_path(device)
    if batch_size is None:  # per output: gathered columns (n x (k+1)) 3x, sub-Gram and factor, per worker
        n_par = max(1, torch.get_num_threads()) if cpu else 1
        per_output = (3 * n_rows * (k + 1) * item + 3 * (k + 1) ** 2 * item) * n_par
        batch_size = _auto_batch(per_output, budget, lo=1, hi=256 if cpu else 2048)
    coef = np.empty((q, k), dtype=dt)
    b = np.empty((1, q), dtype=dt)
    tdt = _torch_dtype(dt)
    ones_t = _to_torch(ones.astype(dt, copy=False)[:, None], device)
    Yd = torch.from_numpy(Y) if cpu else _to_torch(Y, device)

    def work(a: int, z: int) -> int:
        S = sel[a:z]  # (B, k)
        U, pos = np.unique(S, return_inverse=True)
        XU = _to_torch(take(U), device)  # (n_rows, u), the union of the batch's selected columns
        Yb = Yd[:, a:z].to(tdt)
        B = z - a
        posb = torch.from_numpy(pos.reshape(S.shape)).to(device)
        idx = torch.cat([posb, torch.full((B, 1), U.size, dtype=torch.int64, device=device)], dim=1)
        if U.size**2 <= B * (k + 1) ** 2:  # selections overlap: one Gram of the union is cheaper
            XUa = torch.cat([XU, ones_t], dim=1)
            Gs = _gather_subgrams(XUa.T @ XUa, idx)
            r = torch.gather((XUa.T @ Yb).T, 1, idx)
        else:  # one sub-Gram per output
            Xs = torch.cat([XU[:, posb].permute(1, 0, 2), ones_t.expand(B, n_rows, 1)], dim=2)  # (B, n, k+1)
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
        _run_batches(q, batch_size, work, n_workers, bar, flops=q * (k + 1) ** 2 * (n_rows + k / 3))
    bar.close()
    return coef, b


def _exact_columns(Y: np.ndarray, ys: _Stats | None = None):
    """``exact_y`` for outputs that are not repeated: C-contiguous columns of Y and fastl2lir's statistics
    of them (``ys``, computed on the whole Y as fastl2lir does; numpy's sums over a fancy-indexed,
    non-C-ordered copy would be ordered differently)."""
    if ys is None or not isinstance(ys.mean, np.ndarray):
        ys = _stats(Y, with_const=False)
    return lambda J: (np.take(Y, J, axis=1), _Stats(ys.mean[J], ys.std[J], None))


def _wide_tied_selection(
    src: InputMatrix, exact_y, J: np.ndarray, n_outputs: int, k: int, chunk_size: int
) -> np.ndarray:
    """Whole |C| columns of a few outputs J (numpy, on the CPU, in fastl2lir's arithmetic), then fastl2lir's
    argsort rule: (len(J), k). ``exact_y`` as for :func:`_refine_selection`."""
    n, m = src.shape
    Jp = _pad_index(np.asarray(J, dtype=np.int64), _PAD_OUTPUTS, n_outputs)  # products of >= 8 columns
    YJ, ys = exact_y(Jp)
    Yc = YJ - ys.mean
    C = np.empty((m, Jp.size), dtype=src.dtype)
    for a, z in _batches(m, chunk_size):
        Xb = src.columns(a, z)
        xs = _stats(Xb)
        C[a:z] = _correlation(_centred_product(Xb, xs, Yc), n, xs, ys)
    return np.stack([_fastl2lir_order(np.abs(C[:, c]), k) for c in np.searchsorted(Jp, J)])


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
    y_rows: np.ndarray | None = None,
    exact_rows: bool = False,
) -> RidgeFit:
    """Fit FastL2LiR: per output, the ``n_feat`` inputs with the largest |r|, then ridge with a bias.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), numpy.memmap, or InputMatrix
        An :class:`InputMatrix` whose ``rows`` repeat (encoding: features per image, each image shown
        several times) is fitted with the per-image algebra (see :class:`GramInputs`).
    Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
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
    y_rows : ndarray of shape (n_samples,) of int, optional
        The outputs of sample i are ``Y[y_rows[i]]`` (decoding: the features of the image shown); fitted
        per image in Gram mode, expanded in wide mode.
    exact_rows : bool
        Compute on the row-expanded samples, never per image (the arithmetic of fastl2lir; for checking).

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
        return GramInputs(src, dt, dev, exact_rows=exact_rows).fit(
            Y, alpha, n_feat, batch_size=batch_size, budget=budget, progress=progress, y_rows=y_rows
        )
    if y_rows is not None:
        Y = np.asarray(Y.detach().cpu().numpy() if isinstance(Y, torch.Tensor) else Y)
        Y = Y[np.asarray(y_rows, dtype=np.int64)]
    Yn = _as_outputs(Y, n, dt)
    if n_feat == 0 or n_feat >= m:
        if chunk_size is None:
            chunk_size = _auto_batch(3 * n * dt.itemsize + 4 * Yn.shape[1] * 8, budget, lo=min(m, 1024), hi=m)
        return _wide_plain(src, Yn, alpha, dev, chunk_size)
    return _wide_fit(src, Yn, alpha, int(n_feat), dev, batch_size, chunk_size, budget, progress, exact_rows)


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
