"""What can go wrong in a download, and the messages that say what to do about it."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from bhscore.download.options import DEFAULT_FILES, TIMEOUT_ENV, DownloadOptions
from bhscore.download.registry import MAKE_TARGET, RemoteFile
from bhscore.errors import UserError


class DownloadError(UserError):
    """A download that cannot complete; the message says what failed and what to do."""


class NetworkError(DownloadError):
    """figshare cannot be reached; the message names the URL and how to place the file by hand."""


class ChecksumError(DownloadError):
    """A downloaded file does not match figshare's MD5; it has been deleted."""


class Stalled(Exception):
    """A connection delivered fewer than STALL_MIN_BYTES in the stall window (internal: it is retried)."""


class Unreachable(Exception):
    """First contact with a host failed: no connection, or no answer within the timeout (internal).

    Turned into a :class:`NetworkError` by :func:`offline_message` for the entry being fetched.
    """

    def __init__(self, url: str, cause: BaseException, what: str):
        super().__init__(f"{what}: {url}: {cause}")
        self.url, self.cause, self.what = url, cause, what


def reason(error: BaseException, opts: DownloadOptions) -> str:
    """A short account of a connection failure (which timeout ran out, or the OS error)."""
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {opts.connect_timeout:g} s"
    if isinstance(error, requests.ReadTimeout):
        return f"connected, but no answer within {opts.read_timeout:g} s"
    text = str(error)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return m.group(0).strip() if m else text[:300]


def offline_message(
    entry: RemoteFile, error: Unreachable, root: Path, opts: DownloadOptions, lock_path: Path
) -> str:
    """The :class:`NetworkError` text for ``entry``: what failed, how to retry, how to place it by hand."""
    how = MAKE_TARGET[entry.group]
    part = entry.part_path(root)
    lines = [
        f"cannot download {entry.description} ({entry.name}): network unreachable while {error.what}",
        f"  URL: {error.url}",
        f"  reason: {reason(error.cause, opts)}",
        f"  Check the network connection (or HTTPS_PROXY) and run `{how}` again "
        f"(timeout {opts.connect_timeout:g} s, set by --timeout or {TIMEOUT_ENV}).",
    ]
    if part.exists():
        lines.append(f"  The partial download {part} is kept; the next run resumes it.")
    lines += [
        "  Or place the file by hand: download",
        f"      {entry.url(DEFAULT_FILES)}",
        f"  (figshare article https://doi.org/10.6084/m9.figshare.{entry.article}) and save it as",
        f"      {entry.download_path(root)}",
        f"  then run `{how}` again: it checks the file against figshare's MD5 (or the one recorded in "
        f"{lock_path})" + (" and unpacks it." if entry.archive else "."),
    ]
    return "\n".join(lines)
