"""The bytes of one file, streamed into ``<destination>.part``: resumed, retried, hashed on the way.

Timeouts
--------
One timeout T (``--timeout``, ``BHSCORE_DOWNLOAD_TIMEOUT``, default 5 s) bounds three waits:

- connecting: no connection within T is "unreachable" (fails at once, with instructions);
- each read: no byte for T seconds drops the connection (then it is retried, resuming);
- a stall: a connection that delivers fewer than :data:`~bhscore.download.options.STALL_MIN_BYTES` (1 KiB)
  in any T seconds is abandoned, so a server that trickles bytes forever (one a second, say) is left after T
  to 2T seconds. A stalled attempt is retried like a dropped one, but does not count as progress, so after
  ``retries`` stalls in a row the download fails with a message naming the URL.

Nothing bounds the total time: a slow download that keeps delivering at least 1 KiB per T seconds runs to
the end, however large the file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from bhscore.download.client import RETRY_STATUS, Client
from bhscore.download.errors import DownloadError, Stalled, Unreachable
from bhscore.download.options import STALL_MIN_BYTES, TIMEOUT_ENV, DownloadOptions
from bhscore.download.verify import md5_of

log = logging.getLogger(__name__)

_STREAM_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def fetch(client: Client, url: str, part: Path, size: int, desc: str, how: str) -> tuple[str, bool]:
    """Download ``url`` into ``part`` until it holds ``size`` bytes, resuming what ``part`` holds.

    Parameters
    ----------
    client : Client
        The session, timeouts and back-off.
    url : str
        The file's download URL.
    part : Path
        The partial download: kept on failure, resumed by the next call.
    size : int
        The file's size in bytes (figshare's).
    desc : str
        Names the file in progress bars and log messages.
    how : str
        The command that runs the download again, for the failure message.

    Returns
    -------
    md5 : str
        Hex MD5 of the ``size`` bytes now in ``part`` (the caller compares it).
    resumed : bool
        Whether any bytes came from an earlier attempt or run (a ``Range`` request).

    Raises
    ------
    Unreachable
        The first request got no connection or no answer (nothing written).
    DownloadError
        ``retries`` further attempts failed; ``part`` keeps what arrived (the next run resumes it).
    """
    return _Transfer(client, url, part, size, desc, how).run()


class _Transfer:
    """One call of :func:`fetch`: the attempts so far, the failures in a row, and the MD5 of ``part``."""

    def __init__(self, client: Client, url: str, part: Path, size: int, desc: str, how: str):
        self.client, self.opts = client, client.opts
        self.url, self.part, self.size, self.desc, self.how = url, part, size, desc, how
        self.hasher, self.hashed = hashlib.md5(), 0  # MD5 of the first `hashed` bytes of `part`
        self.failures = self.attempts = 0
        self.contacted = self.resumed = False
        self.last_error: object = None

    def run(self) -> tuple[str, bool]:
        self.part.parent.mkdir(parents=True, exist_ok=True)
        while True:
            have = self._resume_point()
            if have == self.size:
                return self.hasher.hexdigest(), self.resumed
            self._before_attempt(have)
            if self._attempt(have):
                return self.hasher.hexdigest(), self.resumed

    def _resume_point(self) -> int:
        """Bytes already in ``part``, with the MD5 brought up to them (an oversized ``part`` is deleted)."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if have > self.size:
            self.part.unlink()
            have = 0
        if have == 0:
            self.hasher, self.hashed = hashlib.md5(), 0
        elif have != self.hashed:  # bytes from an earlier run: hash them first
            self.hasher = md5_of(self.part, have, self.opts.progress, f"{self.desc} (checking partial)")
            self.hashed, self.resumed = have, True
        return have

    def _before_attempt(self, have: int) -> None:
        """Give up after too many failures in a row (or attempts in all), else wait the back-off."""
        if self.attempts == 0:
            return
        if self.failures > self.opts.retries or self.attempts > 10 * (self.opts.retries + 1):
            raise DownloadError(
                f"download failed after {self.attempts} attempts: {self.url}\n"
                f"  last error: {self.last_error}\n"
                f"  {have} of {self.size} bytes are kept in {self.part}; run `{self.how}` again to resume"
            )
        self.client.wait(self.failures)

    def _fail(self, why: object) -> None:
        self.failures += 1
        self.last_error = why

    def _attempt(self, have: int) -> bool:
        """One request for the bytes from ``have`` on; True when ``part`` holds exactly ``size`` bytes."""
        self.attempts += 1
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = self.client.session.get(
                self.url, headers=headers, stream=True, timeout=self.client.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            if not self.contacted:
                raise Unreachable(self.url, e, "downloading the file") from e
            self._fail(e)
            return False
        self.contacted = True
        with response:
            start = self._body_start(response, have)
            return start is not None and self._receive(response, start)

    def _body_start(self, response: requests.Response, have: int) -> int | None:
        """Where the answer's body goes in ``part`` (its offset); None for an answer to retry (recorded)."""
        status = response.status_code
        if status == 416:  # our range starts past the end: the partial file is not this file
            self.part.unlink(missing_ok=True)
            self._fail("HTTP 416 (range not satisfiable); restarting")
            return None
        if status in RETRY_STATUS:
            self._fail(f"HTTP {status}")
            return None
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} for {self.url} ({self.desc}); the file may have moved")
        if status == 206 and _range_start(response.headers.get("Content-Range")) != have:
            self.part.unlink(missing_ok=True)
            self._fail("unexpected Content-Range; restarting")
            return None
        if status == 200 and have:
            log.info("%s: the server does not resume downloads; starting again from the beginning", self.desc)
            self.hasher, self.hashed, have = hashlib.md5(), 0, 0
        self.resumed = self.resumed or status == 206
        return have

    def _receive(self, response: requests.Response, start: int) -> bool:
        """Append the body to ``part`` from offset ``start``; True when it holds exactly ``size`` bytes."""
        have, err, stalled = start, None, False
        try:
            mode = "ab" if have else "wb"
            with open(self.part, mode) as f, _bar(self.desc, self.size, have, self.opts) as bar:
                for chunk in stream_body(response, self.opts):
                    f.write(chunk)
                    self.hasher.update(chunk)
                    have += len(chunk)
                    bar.update(len(chunk))
                    if have > self.size:
                        break
        except Stalled as e:
            err, stalled = e, True
        except _STREAM_ERRORS as e:
            err = e
        self.hashed = have
        if have - start >= (STALL_MIN_BYTES if stalled else 1):  # a trickle is no progress
            self.failures = 0
        if have < self.size:
            self._fail(err or f"connection closed after {have} of {self.size} bytes")
            log.info("%s: interrupted at %d of %d bytes (%s); resuming", self.desc, have, self.size,
                     err if stalled else type(err).__name__ if err else "connection closed")  # fmt: skip
            return False
        if have > self.size:
            self.part.unlink(missing_ok=True)
            raise DownloadError(
                f"{self.url} sent more than the {self.size} bytes figshare announces; deleted"
            )
        return True


def stream_body(response: requests.Response, opts: DownloadOptions) -> Iterator[bytes]:
    """The body's bytes as they arrive (at most ``chunk_size`` at a time), until the connection ends.

    Raises :class:`~bhscore.download.errors.Stalled` when fewer than :data:`STALL_MIN_BYTES` arrived in the
    last ``stall_timeout`` seconds: each read returns within ``read_timeout``, but a server may trickle a
    byte at a time forever. ``read1`` returns what has arrived instead of waiting for a full chunk, so the
    check runs after every network read.
    """
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read  # urllib3 < 2 has no read1
    window = opts.stall_timeout
    total = 0
    marks = deque([(time.monotonic(), 0)])  # (time, bytes received by then), oldest first
    while True:
        chunk = read(opts.chunk_size, decode_content=True)
        if not chunk:
            return
        yield chunk
        total += len(chunk)
        now = time.monotonic()
        marks.append((now, total))
        while len(marks) > 1 and marks[1][0] <= now - window:  # keep one mark at or before now - window
            marks.popleft()
        since, then = marks[0]
        if now - since >= window and total - then < STALL_MIN_BYTES:
            raise Stalled(
                f"stalled: {total - then} bytes in the last {now - since:.1f} s (less than "
                f"{STALL_MIN_BYTES} bytes in {window:g} s; the timeout is set by --timeout or {TIMEOUT_ENV})"
            )


def _bar(desc: str, total: int, initial: int, opts: DownloadOptions) -> tqdm:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not opts.progress, dynamic_ncols=True)  # fmt: skip


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    return int(m.group(1)) if m else None
