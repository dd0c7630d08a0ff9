"""Where and in what precision the solver computes: device, dtype, numpy or torch, working-set sizes.

On the CPU the statistics and correlations are computed with numpy (fastl2lir's own operations, hence bitwise
equal to it); on a GPU with torch. Batches and chunks are sized from a working-set budget in bytes.
"""

from __future__ import annotations

import numpy as np
import torch

from bhscore.devices import resolve_device  # noqa: F401  (the one resolver; re-exported for the solver)

#: Default memory budget of the working set (bytes), used to size batches and chunks.
DEFAULT_BUDGET = 512 * 2**20


def resolve_dtype(dtype) -> np.dtype:
    """``float32`` or ``float64`` as a numpy dtype (accepts strings, numpy and torch dtypes)."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def torch_dtype(dt: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy float32 / float64 dtype."""
    return torch.float64 if dt == np.float64 else torch.float32


def numpy_path(device: torch.device) -> bool:
    """Whether to compute with numpy (CPU: fastl2lir's own operations) rather than torch (GPU)."""
    return device.type == "cpu"


def to_torch(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """A C-contiguous numpy array as a tensor on ``device`` (sharing memory on the CPU)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device) if device.type != "cpu" else t


def auto_batch(per_item_bytes: int, budget: int, lo: int = 1, hi: int = 4096) -> int:
    """How many items of ``per_item_bytes`` fit in ``budget``, clipped to ``[lo, hi]``."""
    return int(max(lo, min(hi, budget // max(per_item_bytes, 1))))


def device_budget(budget: int | None, device: torch.device) -> int:
    """The working-set budget (bytes): the given one, or on a GPU up to a quarter of its free memory (at least
    the default)."""
    if budget is not None:
        return int(budget)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(DEFAULT_BUDGET, min(free // 4, 8 * 2**30)))
    return DEFAULT_BUDGET
