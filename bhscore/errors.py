"""Exceptions that carry a message a user can act on (printed by the CLI without a traceback)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class UserError(Exception):
    """An error the user can fix: a bad argument, a missing input, a corrupt file."""


class MissingDataError(UserError, FileNotFoundError):
    """An input file or directory is missing; the message names it and how to produce it.

    Parameters
    ----------
    path : path-like
        What is missing.
    how : str, optional
        The Make target or command that produces it, e.g. ``"make download-fmri"``.
    what : str, optional
        A short description (``"fMRI file"``).
    """

    def __init__(self, path: str | Path, how: str | None = None, what: str = "file"):
        self.path = Path(path)
        self.how = how
        msg = f"{what} not found: {self.path}"
        if how:
            msg += f"\n  produce it with: {how}"
        super().__init__(msg)


class CorruptFileError(UserError):
    """A file exists but cannot be read in the expected format; the message names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        super().__init__(f"cannot read {self.path}: {reason}\n  delete it and re-create or re-download it")


class MissingItemError(UserError, LookupError):
    """A readable file lacks the asked-for item (a variable, an ROI); the message names what the file has.

    Unlike :class:`CorruptFileError` the file itself is fine: re-downloading it would not help, asking for
    an item it has would.

    Parameters
    ----------
    path : path-like
        The file.
    kind : str
        What was asked for (``"variable"``, ``"ROI"``).
    name : str
        The item's name.
    available : sequence of str, optional
        The items of that kind the file has (listed in the message).
    problem : str, optional
        Instead of "has no <kind>": what is wrong with the item that is there (``"has no voxels"``).
    """

    def __init__(
        self,
        path: str | Path,
        kind: str,
        name: str,
        available: Sequence[str] = (),
        problem: str | None = None,
    ):
        self.path = Path(path)
        self.kind, self.name, self.available = kind, name, list(available)
        if problem is None:
            msg = f"{self.path} has no {kind} {name!r}; it has: {', '.join(self.available) or 'none'}"
        else:
            msg = f"{self.path}: {kind} {name!r} {problem}"
        super().__init__(msg)
