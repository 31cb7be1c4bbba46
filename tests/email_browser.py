"""A small headless-Chromium driver for the email tests (CDP over a pipe).

``--remote-debugging-pipe`` speaks the DevTools protocol as NUL-terminated
JSON on file descriptors 3 (commands in) and 4 (replies out), so no
websocket library and no network port are needed. Every remote host
resolves to nothing (``--host-resolver-rules``): a page can never reach
the network and never waits on it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# The Debian launcher script is only a wrapper; the pipe fds survive best when
# the real binary is started directly.
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
SKIP_REASON = "chromium not installed (apt-get install chromium)"
# A guard against a wedged browser, not a performance assertion.
REPLY_DEADLINE_S = 60.0


class BrowserError(RuntimeError):
    pass


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Chromium:
    def __init__(self, binary: Path = CHROMIUM_BINARY, *, local_server: bool = False) -> None:
        """``local_server``: let pages reach 127.0.0.1 (a server the test
        started); every other host still resolves to nothing."""
        self._profile = tempfile.mkdtemp(prefix="dispatch-chromium-")
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()
        # Move the child's ends above 9 so the redirections cannot clobber them
        # (bash, not dash: dash only takes one-digit fds).
        cmd_read, out_write = (_high_fd(cmd_read), _high_fd(out_write))
        args = [
            str(binary), "--headless", "--remote-debugging-pipe", "--no-sandbox",
            "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--hide-scrollbars", "--mute-audio", "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND"
            + (", EXCLUDE 127.0.0.1" if local_server else ""),
            f"--user-data-dir={self._profile}",
            "about:blank",
        ]
        # The shell moves our pipe ends onto fds 3 and 4, where Chromium expects them.
        script = f'exec "$@" 3<&{cmd_read} 4>&{out_write} {cmd_read}<&- {out_write}>&-'
        self._proc = subprocess.Popen(["/bin/bash", "-c", script, "chromium", *args],
                                      pass_fds=(cmd_read, out_write),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_read)
        os.close(out_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session: str | None = None
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self._session = attached["sessionId"]
        self.call("Page.enable")

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer")
            ready, _, _ = select.select([self._out_read], [], [], left)
            if ready:
                chunk = os.read(self._out_read, 1 << 20)
                if not chunk:
                    raise BrowserError("Chromium closed the pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + REPLY_DEADLINE_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_DEADLINE_S
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i)
            reply = self._read_message(deadline)
            if "method" in reply:
                self._events.append(reply)

    def open(self, path: Path, *, width: int, dark: bool = False, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 500})
        self.call("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
        self._events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def screenshot(self, path: Path, *, width: int) -> None:
        """A full-page PNG: the viewport is stretched to the document's height."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 500})
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close", session=False)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._cmd_write)
        os.close(self._out_read)
        shutil.rmtree(self._profile, ignore_errors=True)


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# Body text and the background it is painted on: the first ancestor with an
# opaque background colour, falling back to the canvas (white).
TEXT_COLOURS_JS = r"""
(() => {
  const parse = s => (s.match(/[\d.]+/g) || []).map(Number);
  const out = [];
  const sel = ['.content p', '.content li', '.intro', '.greeting', '.dek', '.excerpt',
               '.takeaway p', '.footer-text', '.content pre', '.content code',
               '.content h1', '.content h2', '.content h3', '.content h4', '.content td',
               '.content th', '.sources-title', '.sources li', '.sources p', '.title',
               '.card-link', '.category', '.meta'].join(', ');
  for (const el of document.querySelectorAll(sel)) {
    if (!el.textContent.trim()) continue;
    const fg = parse(getComputedStyle(el).color);
    let node = el, bg = null;
    while (node && node.nodeType === 1) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c; break; }
      node = node.parentElement;
    }
    out.push({text: el.textContent.trim().slice(0, 40), fg: fg.slice(0, 3),
              bg: (bg || [255, 255, 255]).slice(0, 3)});
  }
  return out;
})()
"""
