"""The staff pages in a real headless Chromium against the real ``dispatch serve``:
log in, read the calendar, pause the sending edition, find a reader's history,
send a test. Screenshots of every page go to test-artifacts/admin/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.email_browser import CHROMIUM, SKIP_REASON
from tests.web_browser import AXE, AXE_SKIP, WebBrowser
from tests.web_kit import dispatch_serve

from dispatch.cli import main

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON),
              pytest.mark.skipif(not AXE.exists(), reason=AXE_SKIP)]

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "admin"
PASSWORD = "correct horse battery staple"
STAFF = "editor@journal.test"


def cli(root: Path, *args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(main, [*args, "--root", str(root)], input=input)
    assert result.exit_code == 0, result.output
    return result.output


class Browser:
    """Navigation and forms on top of the reader pages' browser driver."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.chrome = WebBrowser()
        self.width = 1280

    def size(self, width: int, *, dark: bool = False) -> None:
        self.width = width
        self.chrome.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": 900, "deviceScaleFactor": 1,
                          "mobile": width < 500})
        self.chrome.call("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})

    def go(self, path: str) -> None:
        self.chrome._events.clear()
        self.chrome.call("Page.navigate", {"url": self.base + path})
        self.chrome.wait_event("Page.loadEventFired")

    def submit(self, script: str) -> None:
        """Run ``script`` (which fills and submits a form) and wait for the next page."""
        self.chrome._events.clear()
        self.chrome.evaluate(script)
        self.chrome.wait_event("Page.loadEventFired")

    def click(self, selector: str) -> None:
        self.submit(f"document.querySelector({selector!r}).click()")

    def js(self, expression: str) -> object:
        return self.chrome.evaluate(expression)

    @property
    def path(self) -> str:
        return str(self.js("location.pathname + location.search"))

    def text(self) -> str:
        return str(self.js("document.body.innerText"))

    def shot(self, name: str) -> None:
        """Screenshots at 1280 px and 375 px (and dark at 375), each checked for
        sideways overflow of the page itself and by axe-core."""
        for width, dark, suffix in ((1280, False, ""), (375, False, "-375"),
                                    (375, True, "-375-dark")):
            self.size(width, dark=dark)
            overflow = self.js("document.documentElement.scrollWidth")
            assert isinstance(overflow, int) and overflow <= width + 1, (name, width, overflow)
            assert self.js("document.documentElement.lang") == "en"
            violations = self.chrome.axe()
            assert violations == [], (name, width, dark, violations)
            self.chrome.screenshot(SHOTS / f"{name}{suffix}.png", width=width)
        self.size(1280)

    def close(self) -> None:
        self.chrome.close()


@pytest.fixture
def staff_site(example_site: Path) -> Iterator[tuple[Path, str]]:
    cli(example_site, "run", "--once")
    out = cli(example_site, "send", "--digest", "--audience", "weekly", "--since", "2026-10-01")
    edition_id = re.search(r"edition (\S+): queued", out)
    assert edition_id is not None
    cli(example_site, "staff", "add", STAFF, "--password-stdin", input=PASSWORD + "\n")
    yield example_site, edition_id.group(1)


def test_a_staff_member_steers_the_week_from_the_browser(staff_site: tuple[Path, str]) -> None:
    root, edition_id = staff_site
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    with dispatch_serve(root, {"DISPATCH_SECRET_KEY": "k" * 40}) as base:
        b = Browser(base)
        try:
            # Anonymous: every page sends us to the login page.
            b.go("/admin/calendar")
            assert b.path.startswith("/admin/login")
            b.shot("login")
            b.submit(f"document.getElementById('email').value = {STAFF!r};"
                     f"document.getElementById('password').value = {PASSWORD!r};"
                     "document.querySelector('form[action=\"/admin/login\"]').submit()")
            assert b.path == "/admin/calendar", b.text()
            # The cookie is HttpOnly: no script on the page can read it.
            assert "dispatch-staff" not in str(b.js("document.cookie"))
            text = b.text()
            assert "The next 30 days" in text and "weekly-digest" in text
            firings = b.js("document.querySelectorAll('li.firing[data-fire-time]').length")
            assert isinstance(firings, int) and firings > 10
            b.shot("calendar")
            b.go("/admin/calendar?view=week")
            assert "Week of" in b.text()
            b.shot("calendar-week")

            b.go("/admin/")
            b.shot("overview")
            b.go("/admin/editions")
            assert edition_id in b.text()
            b.shot("editions")
            b.click(f"a[href=\"/admin/editions/{edition_id}\"]")
            assert "sending" in b.text()
            frame = b.js("document.querySelector('iframe.email').getAttribute('sandbox')")
            assert frame == ""
            # The live counts' source answers the page's own script (same origin,
            # the session cookie travels with it).
            live = b.chrome.call("Runtime.evaluate", {
                "expression": "fetch(document.getElementById('progress').dataset.url)"
                              ".then(r => r.json())", "awaitPromise": True,
                "returnByValue": True})["result"]["value"]
            assert live["state"] == "sending" and live["total"] > 0
            b.shot("edition")
            b.click("a[href$=\"/control/pause\"]")
            assert "Yes, pause" in b.text()
            b.shot("confirm-pause")
            b.click("form button[type=submit]:not(.secondary)")
            assert b.path == f"/admin/editions/{edition_id}"
            assert re.search(r"State:\s*paused", b.text())

            b.go("/admin/subscribers")
            b.submit("document.getElementById('q').value = 'example';"
                     "document.querySelector('form[role=search]').submit()")
            first = b.js("document.querySelector('td a[href^=\"/admin/subscribers/\"]')"
                         ".getAttribute('href')")
            assert isinstance(first, str)
            b.shot("subscribers")
            b.go(first)
            assert edition_id in b.text() and "queued" in b.text()
            b.shot("subscriber")

            b.go("/admin/social")
            b.shot("social")
            b.go("/admin/schedules")
            assert "is valid" in b.text()
            b.shot("schedules")

            b.go("/admin/test-send")
            b.submit("document.getElementById('to').value = 'me@journal.test';"
                     "document.querySelector('form[action=\"/admin/test-send\"]').submit()")
            assert "[TEST]" in b.text() and "me@journal.test: sent" in b.text()
            b.shot("test-send")
        finally:
            b.close()
    tests = [p for p in (root / ".dispatch" / "maildir" / "new").glob("*.eml")
             if b"Subject: [TEST]" in p.read_bytes()]
    assert len(tests) == 1
    log = cli(root, "staff", "log")
    for action in ("login", "edition pause", "view subscriber", "test send"):
        assert action in log
