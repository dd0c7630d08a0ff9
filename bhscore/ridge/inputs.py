"""The solver's inputs and outputs: a column-readable input matrix, checks, and samples grouped by the row
they repeat (each training image was shown several times)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bhscore.ridge.backend import resolve_dtype

#: Per-image arithmetic is used only when the distinct rows are at most this fraction of the samples.
MAX_DISTINCT_FRACTION = 0.8


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
        """The whole matrix, shape (n_samples, n_inputs)."""
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


def check_finite(a: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming the columns of ``a`` (n_rows, n_cols) that hold NaN or inf."""
    if not np.isfinite(a).all():
        bad = np.unique(np.nonzero(~np.isfinite(a))[1])
        raise ValueError(
            f"{what} has non-finite values (NaN/inf) in {bad.size} column(s), e.g. {bad[:5].tolist()}"
        )


def as_outputs(Y, n: int, dtype: np.dtype) -> np.ndarray:
    """The outputs as a C-contiguous, finite ``dtype`` array of shape (n, n_outputs) (a vector: one
    output)."""
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
    check_finite(Y, "Y")
    return Y


def host_array(Y) -> np.ndarray:
    """``Y`` as a numpy array (a tensor is detached and copied to the host)."""
    return np.asarray(Y.detach().cpu().numpy() if isinstance(Y, torch.Tensor) else Y)


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
        """Whether the rows repeat enough for the per-image arithmetic (:data:`MAX_DISTINCT_FRACTION`)."""
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
