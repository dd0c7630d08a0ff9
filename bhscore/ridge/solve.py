"""Batched symmetric positive definite solves, and the batching that feeds them (threads, progress bars)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

#: Solves smaller than this (floating point operations) are not worth worker threads.
SMALL_FLOPS = 2e8


def batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive slices of ``range(n)``, ``size`` long (the last one shorter)."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def with_progress(iterable, total: int, desc: str, enabled: bool):
    """``iterable`` wrapped in a tqdm bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


class Bar:
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


def solve_spd(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
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


def solve_spd_multi(A: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Solve ``A W = R`` for one SPD matrix A (m, m) and many right-hand sides R (m, q)."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        return torch.from_numpy(np.linalg.solve(A.cpu().numpy(), R.cpu().numpy())).to(R.device)
    return torch.cholesky_solve(R, L)


def gather_subgrams(G: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
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
def torch_single_thread(device: torch.device) -> Iterator[int]:
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


def run_batches(n_items: int, batch_size: int, work, n_workers: int, bar, flops: float = math.inf) -> None:
    """Call ``work(start, stop)`` on consecutive batches of ``n_items``, in ``n_workers`` threads.

    ``work`` must write disjoint outputs; numpy and torch release the GIL in the heavy parts. Work of fewer
    than ``SMALL_FLOPS`` (estimated by ``flops``) runs in the calling thread.
    """
    todo = list(batches(n_items, batch_size))
    if n_workers <= 1 or len(todo) <= 1 or flops < SMALL_FLOPS:
        for c0, c1 in todo:
            bar.update(work(c0, c1))
        return
    from concurrent.futures import ThreadPoolExecutor

    n_threads = min(n_workers, len(todo))
    with ThreadPoolExecutor(n_threads, initializer=torch.set_num_threads, initargs=(1,)) as ex:
        for done in ex.map(lambda ab: work(*ab), todo):
            bar.update(done)
