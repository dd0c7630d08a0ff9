"""Exceptions that carry a message a user can act on (printed by the CLI without a traceback)."""

from __future__ import annotations

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
