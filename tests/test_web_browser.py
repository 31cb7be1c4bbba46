"""A reader's whole journey in a real headless Chromium against the real
`dispatch serve`: the signup form, the confirmation email read from the
capture maildir, the Confirm button, the next digest arriving; then the
preference page from that digest's footer, and unsubscribing from
everything. Every page is screenshot at 375 px and 1280 px, light and dark,
into test-artifacts/web/ (docs/signup-form.png in the README is
subscribe-375.png from there), fits at 375 px, has a lang, and has no serious or
critical axe-core violation.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.delivery_kit import free_port
from tests.web_kit import SECRET, serving

from dispatch.config import load_settings
from dispatch.store import open_store
from dispatch.subscribers import get_subscriber
from email_browser import CHROMIUM, SKIP_REASON
from web_browser import ARTIFACTS, AXE, AXE_SKIP, REPO, WebBrowser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON),
    pytest.mark.skipif(not AXE.exists(), reason=AXE_SKIP),
]

READER = "rea.der@example.com"
# A guard against a wedged server, not a performance assertion.
DEADLINE_S = 60.0


def wait_for(check, what: str):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling, not waiting for time to pass


@pytest.fixture(scope="module")
def browser() -> Iterator[WebBrowser]:
    chromium = WebBrowser()
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def served(example_site: Path) -> Iterator[tuple[Path, str, dict[str, str]]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    toml = example_site / "dispatch.toml"
    text = toml.read_text(encoding="utf-8").replace(
        'confirm_within = "7d"', 'confirm_within = "7d"\nmin_submit_seconds = 0')
    toml.write_text(text + f'\n[web]\npublic_url = "{base}"\n', encoding="utf-8")
    env = {**os.environ, "DISPATCH_SECRET_KEY": SECRET}
    env.pop("DISPATCH_DATABASE_URL", None)
    dispatch = str(REPO / ".venv" / "bin" / "dispatch")
    # The sample lists exist before anyone signs up (as after any first pass).
    subprocess.run([dispatch, "subscribers", "import", str(example_site / "subscribers.csv"),
                    "--list", "weekly", "--root", str(example_site)], env=env, check=True,
                   capture_output=True)
    with serving(example_site, port, env):
        yield example_site, base, env


def mail_to(root: Path, address: str, subject_part: str) -> list[EmailMessage]:
    found = []
    for path in sorted((root / ".dispatch" / "maildir" / "new").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if str(message["Delivered-To"]).lower() == address and \
                subject_part in str(message["Subject"]):
            found.append(message)
    return found


def link(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(rf"http://127\.0\.0\.1:\d+{re.escape(path)}\S+", str(body.get_content()))
    assert found, f"no {path} link"
    return found.group()


def inspect_page(browser: WebBrowser, name: str) -> None:
    """Every width and scheme: screenshot, fits at 375 px, lang, no serious axe issue."""
    assert browser.evaluate("document.documentElement.lang") == "en"
    for width in (375, 1280):
        for dark in (False, True):
            browser.view(width, dark)
            browser.shoot(name)
            assert browser.overflow() <= 0, f"{name} is wider than {width} px"
            violations = browser.axe()
            assert violations == [], f"{name} at {width}px dark={dark}: {violations}"
    browser.view(1280)


def test_reader_signs_up_confirms_gets_the_digest_then_leaves(browser: WebBrowser,
                                                              served) -> None:  # type: ignore[no-untyped-def]
    root, base, env = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.view(1280)
    browser.goto(f"{base}/subscribe")
    inspect_page(browser, "subscribe")
    browser.fill("#email", READER)
    browser.fill("#name", "Rea Der")
    browser.check('input[value="weekly"]')
    browser.press("button[type=submit]")
    assert "Check your inbox" in browser.text()
    inspect_page(browser, "subscribe-accepted")

    [confirmation] = wait_for(lambda: mail_to(root, READER, "confirm"),
                              "the confirmation email")
    browser.goto(link(confirmation, "/confirm/"))
    assert "Confirm your subscription" in browser.text()
    inspect_page(browser, "confirm")
    settings = load_settings(root)
    store = open_store(settings.database_url)
    try:
        assert get_subscriber(store, READER).status == "pending"  # type: ignore[union-attr]
        browser.press("button[type=submit]")
        assert "You are subscribed" in browser.text()
        inspect_page(browser, "confirmed")
        assert get_subscriber(store, READER).status == "active"  # type: ignore[union-attr]

        # The next digest reaches the new reader.
        sent = subprocess.run([str(REPO / ".venv" / "bin" / "dispatch"), "send", "--digest",
                               "--audience", "weekly", "--since", "2026-10-01", "--deliver",
                               "--root", str(root)], env=env, capture_output=True, text=True)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        [digest] = mail_to(root, READER, "")[-1:]
        assert "confirm" not in str(digest["Subject"]).lower()
        # The name typed into the form greets the reader ("Hi Rea,").
        assert "Hi Rea," in str(digest.get_body(("plain",)).get_content())  # type: ignore[union-attr]

        browser.goto(f"{base}/archive/")
        assert str(digest["Subject"]) in browser.text()
        inspect_page(browser, "archive")

        browser.goto(link(digest, "/preferences/"))
        assert READER in browser.text()
        inspect_page(browser, "preferences")
        browser.fill("#name", "Rea D.")
        browser.check('input[value="heart-health"]')
        browser.check('input[value="weekly"]', False)
        browser.press("form:first-of-type button[type=submit]")
        assert "Saved" in browser.text()
        inspect_page(browser, "preferences-saved")
        person = get_subscriber(store, READER)
        assert person is not None and person.name == "Rea D."
        browser.press("button.secondary")
        assert "You are unsubscribed" in browser.text()
        inspect_page(browser, "preferences-left")
        assert get_subscriber(store, READER).status == "unsubscribed"  # type: ignore[union-attr]

        browser.goto(link(digest, "/unsubscribe/"))
        inspect_page(browser, "unsubscribe")
        browser.goto(f"{base}/confirm/not-a-token")
        inspect_page(browser, "invalid-link")
    finally:
        store.dispose()
