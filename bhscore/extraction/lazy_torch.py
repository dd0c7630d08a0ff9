"""``torch``, imported on first use, and the check that it is installed.

Importing torch takes over a second, which the CLI's start-up (argument parsing only) should not pay; the
modules of this package use ``torch`` from here as if it were the module.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bhscore.errors import UserError


class _LazyTorch:
    """Forwards attribute access to ``torch``, importing it on the first access."""

    _module = None

    def __getattr__(self, name: str) -> Any:
        if _LazyTorch._module is None:
            import torch as module

            _LazyTorch._module = module
        return getattr(_LazyTorch._module, name)


torch = _LazyTorch()


def require_torch() -> None:
    """Raise :class:`UserError` (with the install command) when PyTorch is not installed."""
    if importlib.util.find_spec("torch") is None:  # pragma: no cover - only inside the Caffe image
        raise UserError("PyTorch is not installed: pip install 'bhscore[extract]'")
