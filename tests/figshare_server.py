"""A local HTTP server that imitates figshare, for the download tests.

It serves, on 127.0.0.1 only:

- ``GET /v2/articles/<article>/files?page=&page_size=``: the JSON list figshare's public API returns
  (``id``, ``name``, ``size``, ``is_link_only``, ``download_url``, ``supplied_md5``, ``computed_md5``,
  ``mimetype``), paginated like figshare (default page size 10);
- ``GET /ndownloader/files/<id>``: a redirect to ``/s3/<id>``, as figshare's download host redirects to its
  object store;
- ``GET /s3/<id>``: the bytes, honouring ``Range: bytes=N-`` / ``bytes=N-M`` (206 with ``Content-Range``,
  416 when unsatisfiable).

Faults are injected per file: a reported MD5 that does not match the bytes, a connection dropped after a
number of body bytes (for the first ``drop_times`` downloads), a server that ignores ``Range``, a forced
HTTP status, a paced body (``pace``: n bytes, then a pause, repeated; a trickle such as one byte a second,
or a slow but steady download). Every request is recorded; past ``max_requests`` the server answers 503 and sets ``overflow``
so a runaway retry loop fails the test instead of hanging it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_PAGE_SIZE = 10  # figshare's default when page_size is not given


@dataclass
class ServedFile:
    """One file of a fake figshare article."""

    file_id: int
    article: int
    name: str
    data: bytes
    #: MD5 the API reports; None: the true MD5 of ``data``.
    reported_md5: str | None = None
    #: Close the connection after this many body bytes ...
    drop_after: int | None = None
    #: ... for this many download requests (then serve normally).
    drop_times: int = 0
    #: Answer every download with 200 and the whole file, whatever ``Range`` says.
    ignore_range: bool = False
    #: Answer downloads with this HTTP status instead of the bytes.
    status: int | None = None
    #: Send the body ``(n_bytes, seconds)`` at a time: n bytes, then a pause of that many seconds, repeated.
    pace: tuple[int, float] | None = None

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


@dataclass
class RequestRecord:
    method: str
    path: str
    range: str | None


@dataclass
class FakeFigshare:
    """The server. Use as a context manager; ``api_base`` and ``files_base`` are the URLs to point at."""

    max_requests: int = 200
    files: dict[int, ServedFile] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    overflow: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()  # ends paced bodies when the server shuts down
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # setup ---------------------------------------------------------------------------------------
    def add(self, served: ServedFile) -> ServedFile:
        self.files[served.file_id] = served
        return served

    def __enter__(self) -> FakeFigshare:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None and self._thread is not None
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/v2"

    @property
    def files_base(self) -> str:
        return f"{self.base}/ndownloader/files"

    # inspection ----------------------------------------------------------------------------------
    def downloads(self, file_id: int | None = None) -> list[RequestRecord]:
        """Requests for file bytes (after the redirect), optionally of one file."""
        out = []
        for r in self.requests:
            path = urlsplit(r.path).path
            if path.startswith("/s3/") and (file_id is None or path == f"/s3/{file_id}"):
                out.append(r)
        return out

    def api_calls(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.startswith("/v2/")]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeFigshare
    timeout = 10  # a stuck client never blocks a server thread for long

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        fake = self.fake
        with fake._lock:
            fake.requests.append(RequestRecord("GET", self.path, self.headers.get("Range")))
            if len(fake.requests) > fake.max_requests:
                fake.overflow = True
                return self._send(503, b"too many requests in this test")
        url = urlsplit(self.path)
        if m := re.fullmatch(r"/v2/articles/(\d+)/files", url.path):
            return self._api(int(m.group(1)), parse_qs(url.query))
        if m := re.fullmatch(r"/ndownloader/files/(\d+)", url.path):
            if int(m.group(1)) not in fake.files:
                return self._send(404, b'{"message": "File not found"}')
            self.send_response(302)
            self.send_header("Location", f"/s3/{m.group(1)}?signature=fake")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if m := re.fullmatch(r"/s3/(\d+)", url.path):
            return self._bytes(int(m.group(1)))
        return self._send(404, b"not found")

    # routes ----------------------------------------------------------------------------------------
    def _api(self, article: int, query: dict[str, list[str]]) -> None:
        items = [f for f in self.fake.files.values() if f.article == article]
        if not items:
            return self._send(404, b'{"message": "Entity not found: article"}')
        items.sort(key=lambda f: f.file_id)
        page = int(query.get("page", ["1"])[0])
        size = min(int(query.get("page_size", [str(DEFAULT_PAGE_SIZE)])[0]), 1000)
        chunk = items[(page - 1) * size : page * size]
        body = [
            {
                "id": f.file_id,
                "name": f.name,
                "size": len(f.data),
                "is_link_only": False,
                "download_url": f"{self.fake.files_base}/{f.file_id}",
                "supplied_md5": "",
                "computed_md5": f.reported_md5 or f.md5,
                "mimetype": "application/octet-stream",
            }
            for f in chunk
        ]
        return self._send(200, json.dumps(body).encode(), "application/json")

    def _bytes(self, file_id: int) -> None:
        served = self.fake.files.get(file_id)
        if served is None:
            return self._send(404, b"no such key")
        if served.status is not None:
            return self._send(served.status, b"forced error")
        data, total = served.data, len(served.data)
        start, end, partial = 0, total - 1, False
        rng = self.headers.get("Range")
        if rng and not served.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            partial = True
        body = data[start : end + 1]
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        with self.fake._lock:
            drop = served.drop_after is not None and served.drop_times > 0
            if drop:
                served.drop_times -= 1
        if drop:
            self.wfile.write(body[: served.drop_after])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if served.pace is not None:
            return self._paced(body, *served.pace)
        self.wfile.write(body)
        return None

    def _paced(self, body: bytes, n_bytes: int, pause: float) -> None:
        """Send ``body`` ``n_bytes`` at a time with a pause between (until the client or the server quits)."""
        for start in range(0, len(body), n_bytes):
            if self.fake._closing.wait(pause if start else 0):
                break
            try:
                self.wfile.write(body[start : start + n_bytes])
                self.wfile.flush()
            except OSError:  # the client gave up
                break
        self.close_connection = True

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip archive (deflated) holding ``members`` (name -> bytes); names ending in ``/`` are folders."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def closed_port() -> int:
    """A localhost port with nothing listening (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """A socket that accepts connections (kernel backlog) but never answers: a hung server."""

    def __enter__(self) -> SilentServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"
