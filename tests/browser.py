"""A headless Chromium driven over the DevTools protocol through a pipe (no WebDriver, no extra package).

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from file descriptor 3 and writes
responses and events to descriptor 4, each a JSON message ended by a NUL byte. :class:`Browser` opens one page,
records its console messages, uncaught exceptions, log entries and network requests, evaluates JavaScript,
clicks with real mouse events and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

#: The flags that work on a CI machine without a display, a sandbox or a network.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]  # fmt: skip


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian: ``chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def install_chromium(timeout: float = 900) -> tuple[str | None, str]:
    """Install Debian's ``chromium`` with apt-get when it is missing (CI runs as root).

    Returns
    -------
    path : str or None
        The executable, or None when it could not be installed.
    why : str
        What happened (the reason to skip when ``path`` is None).
    """
    path = find_chromium()
    if path:
        return path, "found"
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed and installing it with apt-get needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`{' '.join(cmd)}` failed: {e}"
        if r.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip()[-300:]}"
    path = find_chromium()
    return (
        (path, "installed with apt-get")
        if path
        else (None, "apt-get installed chromium but it is not on PATH")
    )


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page.

    Parameters
    ----------
    executable : str
    width, height : int
        The viewport.
    timeout : float
        Seconds to wait for any one protocol answer.

    Attributes
    ----------
    console : list of dict
        ``{"level", "text"}`` of every console call, uncaught exception and log entry of the page.
    requests : list of str
        URL of every request the page made.
    """

    def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="bhscore-chromium-")
        cmd_read, cmd_write = os.pipe()  # we write commands, Chromium reads them on fd 3
        ev_read, ev_write = os.pipe()  # Chromium writes on fd 4, we read

        def child_fds():
            os.dup2(cmd_read, 3)
            os.dup2(ev_write, 4)

        self.proc = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
                "about:blank",
            ],  # fmt: skip
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(cmd_read)
        os.close(ev_write)
        self._out = os.fdopen(cmd_write, "wb", buffering=0)
        self._in = os.fdopen(ev_read, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        self.console: list[dict] = []
        self.requests: list[str] = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip

    # protocol ---------------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        self._out.write(json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("no answer from Chromium in time")
            chunk = self._in.read(65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                raise BrowserError(f"Chromium closed the pipe: {err[-500:]}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _record(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append({"level": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.console.append(
                {"level": "exception", "text": d.get("exception", {}).get("description") or d.get("text")}
            )
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.console.append(
                {"level": e.get("level"), "text": f"{e.get('source')}: {e.get('text')} {e.get('url', '')}"}
            )
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        self._events.append(msg)

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._receive(deadline)
            if msg.get("id") == self._next_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def call(self, method: str, params: dict | None = None) -> dict:
        """A protocol command on the page's session."""
        return self._call(method, params, self.session)

    def wait_for(self, method: str, timeout: float | None = None) -> dict:
        """The first event ``method`` (already received or the next ones)."""
        for msg in self._events:
            if msg.get("method") == method:
                self._events.remove(msg)
                return msg
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._receive(deadline)
            self._record(msg)
            if msg.get("method") == method:
                self._events.remove(msg)
                return msg

    # page -------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        r = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})  # fmt: skip

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        """A PNG of the page (all of it with ``full_page``)."""
        params: dict = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})  # fmt: skip
        data = self.call("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[dict]:
        """Console errors, uncaught exceptions and error log entries so far."""
        return [m for m in self.console if m["level"] in ("error", "exception", "assert")]

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except (BrowserError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._out, self._in, self.proc.stderr):
            f.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
