"""The HTTP session to figshare, its retry back-off, and figshare's API (an article's file list)."""

from __future__ import annotations

import time

import requests

from bhscore.download.errors import DownloadError, Unreachable
from bhscore.download.options import DownloadOptions

_PAGE_SIZE = 1000  # figshare's largest page of an article's file list
#: HTTP statuses worth another attempt (after the back-off).
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"bhscore/{version('bhscore')} (Brain Hierarchy score data downloader)"
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "bhscore (data downloader)"


class Client:
    """One HTTP session to figshare: timeouts, the back-off between retries, and the API's file lists.

    The bytes of a file are fetched by :func:`bhscore.download.transfer.fetch` through this session.
    """

    def __init__(self, opts: DownloadOptions):
        self.opts = opts
        self.session = requests.Session()
        self.session.headers["User-Agent"] = _user_agent()
        self._articles: dict[int, dict[int, dict]] = {}

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeouts in seconds, as requests takes them."""
        return (self.opts.connect_timeout, self.opts.read_timeout)

    def wait(self, failures: int) -> None:
        """Sleep before the next attempt: ``backoff`` seconds, doubling per failure in a row, at most 30 s."""
        delay = min(self.opts.backoff * 2 ** (failures - 1), 30.0)
        if delay > 0:
            time.sleep(delay)

    def article_files(self, article: int, wanted: set[int]) -> dict[int, dict]:
        """``{file id: figshare file record}`` of an article (all pages, until ``wanted`` are seen)."""
        cached = self._articles.get(article)
        if cached is not None and wanted <= cached.keys():
            return cached
        url = f"{self.opts.api_base}/articles/{article}/files"
        found: dict[int, dict] = {}
        for page in range(1, 101):
            items = self._get_json(url, {"page": page, "page_size": _PAGE_SIZE})
            if not isinstance(items, list):
                raise DownloadError(f"unexpected answer from figshare's API {url}: not a list of files")
            new = 0
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), int) and item["id"] not in found:
                    found[item["id"]] = item
                    new += 1
            if len(items) < _PAGE_SIZE or new == 0 or wanted <= found.keys():
                break
        self._articles[article] = found
        return found

    def _get_json(self, url: str, params: dict) -> object:
        failures = 0
        while True:
            try:
                r = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                raise Unreachable(
                    url, e, "fetching the file list (MD5 checksums) from figshare's API"
                ) from e
            if r.status_code in RETRY_STATUS and failures < self.opts.retries:
                failures += 1
                self.wait(failures)
                continue
            if r.status_code != 200:
                raise DownloadError(f"figshare's API answered HTTP {r.status_code} for {r.url}")
            try:
                return r.json()
            except ValueError:
                raise DownloadError(f"figshare's API sent something that is not JSON for {r.url}") from None
