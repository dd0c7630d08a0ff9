"""How to download: endpoints, timeouts, retries (:class:`DownloadOptions`), from arguments or environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from bhscore.errors import UserError

API_ENV = "BHSCORE_FIGSHARE_API"
FILES_ENV = "BHSCORE_FIGSHARE_FILES"
TIMEOUT_ENV = "BHSCORE_DOWNLOAD_TIMEOUT"
DEFAULT_API = "https://api.figshare.com/v2"
DEFAULT_FILES = "https://ndownloader.figshare.com/files"
DEFAULT_CONNECT_TIMEOUT = 5.0
#: A connection that delivers fewer bytes than this in the stall window (the timeout) is abandoned.
STALL_MIN_BYTES = 1024
#: Bytes per read of a download, and per copy when unpacking or joining files.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DownloadOptions:
    """How to download. ``None`` fields take the environment variable or the default.

    Parameters
    ----------
    api_base : str, optional
        figshare API root (``$BHSCORE_FIGSHARE_API`` or ``https://api.figshare.com/v2``).
    files_base : str, optional
        Download root, ``<files_base>/<file id>`` (``$BHSCORE_FIGSHARE_FILES`` or figshare's ndownloader).
    connect_timeout : float, optional
        Seconds to wait for a connection (``$BHSCORE_DOWNLOAD_TIMEOUT`` or 5): an unreachable host fails fast.
        The other timeouts default to it (:mod:`bhscore.download.transfer`, "Timeouts").
    read_timeout : float, optional
        Seconds to wait for the next bytes of an answer (default: ``connect_timeout``).
    stall_timeout : float, optional
        A file download that receives fewer than :data:`STALL_MIN_BYTES` in this many seconds is abandoned
        (default: ``read_timeout``).
    retries : int
        Further attempts after a dropped connection or a transient HTTP error (each resumes the download);
        the count restarts whenever an attempt made progress.
    backoff : float
        Seconds before the first retry, doubling each time (capped at 30 s).
    progress : bool
        Show tqdm progress bars.
    verify : bool
        Also re-check complete entries: re-hash single files, check unpacked trees against their manifests.
    keep_archives : bool
        Keep the zips (in ``<data root>/downloads``) after unpacking.
    chunk_size : int
        Bytes per read; a dropped connection loses at most the chunk in flight.
    """

    api_base: str | None = None
    files_base: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    stall_timeout: float | None = None
    retries: int = 5
    backoff: float = 1.0
    progress: bool = True
    verify: bool = False
    keep_archives: bool = False
    chunk_size: int = CHUNK_BYTES

    def resolved(self) -> DownloadOptions:
        """These options with every ``None`` filled from the environment or the defaults, and checked.

        Raises
        ------
        UserError
            A timeout that is not a positive finite number of seconds.
        """
        timeout = self.connect_timeout
        if timeout is None:
            env = os.environ.get(TIMEOUT_ENV)
            try:
                timeout = float(env) if env else DEFAULT_CONNECT_TIMEOUT
            except ValueError:
                raise UserError(f"{TIMEOUT_ENV}={env!r} is not a number of seconds") from None
        read = timeout if self.read_timeout is None else self.read_timeout
        stall = read if self.stall_timeout is None else self.stall_timeout
        for name, value in (("timeout", timeout), ("read timeout", read), ("stall timeout", stall)):
            if not (0 < value < float("inf")):
                raise UserError(f"the download {name} must be a positive number of seconds, got {value}")
        return replace(
            self,
            api_base=(self.api_base or os.environ.get(API_ENV) or DEFAULT_API).rstrip("/"),
            files_base=(self.files_base or os.environ.get(FILES_ENV) or DEFAULT_FILES).rstrip("/"),
            connect_timeout=timeout,
            read_timeout=read,
            stall_timeout=stall,
        )
