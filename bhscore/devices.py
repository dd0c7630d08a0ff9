"""The one device resolver: which torch device a fit or a feature extraction runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bhscore.errors import UserError

if TYPE_CHECKING:
    import torch

#: Spellings of "CUDA when available, else the CPU".
AUTO = (None, "", "auto")


class DeviceUnavailableError(UserError, ValueError):
    """A device was asked for that this machine does not have (a ``ValueError`` for library callers)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to compute on.

    Parameters
    ----------
    device : str, torch.device or None
        None, ``''`` or ``'auto'``: CUDA when available, else the CPU; otherwise anything ``torch.device``
        accepts ('cpu', 'cuda', 'cuda:1', 'mps', a ``torch.device``).

    Returns
    -------
    torch.device
        ``str()`` of it is the device's name ('cpu', 'cuda', 'cuda:1').

    Raises
    ------
    DeviceUnavailableError
        A CUDA device is asked for and CUDA is not available (names the remedy).
    RuntimeError
        ``device`` is not a device string torch knows (torch's own error).
    """
    import torch

    if isinstance(device, str | type(None)) and device in AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {str(device)!r} requested but CUDA is not available here (use 'cpu')")
    return dev
