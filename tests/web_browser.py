"""Driving the reader's pages in headless Chromium over the DevTools protocol:
load a URL at a width and colour scheme, fill and press like a reader, take a
full-page screenshot, and run axe-core (pinned in tests/web_js/) on the page.

Built on the pipe-based driver of the email tests (no websocket, no port).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from email_browser import BrowserError, Chromium

REPO = Path(__file__).resolve().parent.parent
AXE = REPO / "tests" / "web_js" / "node_modules" / "axe-core" / "axe.min.js"
AXE_SKIP = "axe-core not installed (cd tests/web_js && npm ci --ignore-scripts)"
ARTIFACTS = REPO / "test-artifacts" / "web"


class WebBrowser(Chromium):
    def __init__(self) -> None:
        super().__init__(local_server=True)
        # axe is injected by DevTools; the pages' CSP allows no script at all.
        self.call("Page.setBypassCSP", {"enabled": True})
        self.width = 1280
        self.dark = False

    def view(self, width: int, dark: bool = False) -> None:
        self.width, self.dark = width, dark
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1,
                   "mobile": width < 500})
        self.call("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})

    def goto(self, url: str) -> None:
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def text(self) -> str:
        return str(self.evaluate("document.body.innerText"))

    def fill(self, selector: str, value: str) -> None:
        """Focus a field, clear it, and type ``value`` as keyboard input."""
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      "e.focus(); e.select && e.select(); e.value = ''; })()")
        self.call("Input.insertText", {"text": value})

    def check(self, selector: str, on: bool = True) -> None:
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      f"if (e.checked !== {json.dumps(on)}) e.click(); }})()")

    def press(self, selector: str) -> None:
        """Click a button and wait for the page it leads to."""
        self._events.clear()
        box = self.evaluate(f"(() => {{ const r = document.querySelector("
                            f"{json.dumps(selector)}).getBoundingClientRect();"
                            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        if box is None:
            raise BrowserError(f"no {selector}")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView()")
        box = self.evaluate(f"(() => {{ const r = document.querySelector("
                            f"{json.dumps(selector)}).getBoundingClientRect();"
                            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})
        self.wait_event("Page.loadEventFired")

    def overflow(self) -> int:
        """How far the page is wider than the viewport (0 when it fits)."""
        return int(self.evaluate("document.documentElement.scrollWidth - window.innerWidth"))

    def shoot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}-{self.width}{'-dark' if self.dark else ''}.png"
        self.screenshot(path, width=self.width)
        self.view(self.width, self.dark)  # screenshot() stretched the viewport
        return path

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page."""
        if not self.evaluate("typeof window.axe !== 'undefined'"):
            self.evaluate(AXE.read_text(encoding="utf-8"))
        result = self.call("Runtime.evaluate", {
            "expression": "axe.run(document, {resultTypes: ['violations']})"
                          ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
                          " help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)})))",
            "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(str(result["exceptionDetails"]))
        found: list[dict[str, Any]] = result["result"]["value"]
        return [v for v in found if v["impact"] in ("serious", "critical")]
