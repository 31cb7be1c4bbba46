"""The web view of a sent edition: the edition as sent, with nobody's personal data."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.web_kit import NOW, PEOPLE, SECRET, WebSite, client, dispatch_serve, make_site

from dispatch.delivery import CaptureTransport, DeliverySettings, captured, deliver
from dispatch.render.edition import PLACEHOLDERS
from dispatch.unsubscribe import make_token, webview_path
from dispatch.web.app import create_app


@pytest.fixture
def site(example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[WebSite]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    made = make_site(example_site, f"sqlite:///{tmp_path / 'web.db'}", digest=True)
    yield made
    made.store.dispose()


def sent_messages(site: WebSite) -> dict[str, EmailMessage]:
    maildir = site.root / "maildir"
    report = deliver(site.store, site.settings, NOW, config=DeliverySettings(),
                     transport=CaptureTransport(maildir))
    assert report.sent == len(PEOPLE)
    found: dict[str, EmailMessage] = {}
    for path in captured(maildir):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[str(message["Delivered-To"])] = message
    return found


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_web_view_shows_the_edition_without_personal_data(site: WebSite) -> None:
    messages = sent_messages(site)
    with TestClient(create_app(site.settings, site.store)) as http:
        response = http.get(webview_path(site.edition_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    for address, name in PEOPLE:
        sent = html_of(messages[address])
        token = make_token(site.key, site.ids[address], site.edition_id)
        # The sent email carries this person's data (so the checks below
        # could fail), and the web view carries none of it.
        assert name in sent and token in sent and address in sent
        for private in (name, name.split()[0], address, address.split("@")[0], token):
            assert private not in page, private
    assert not any(token in page for token in PLACEHOLDERS.values())
    assert "/unsubscribe/" in page and "This email was sent to you" in page
    assert "Hi reader," in page  # the name fallback from [email] name_fallback
    # Everything else is the edition as sent: the same article, links and footer.
    titles = re.findall(r"<h2[^>]*>(.*?)</h2>", html_of(messages[PEOPLE[0][0]]), re.S)
    assert titles and all(t in page for t in titles)
    assert page.count('href="') == html_of(messages[PEOPLE[0][0]]).count('href="')


def test_unknown_edition_is_404_and_a_repeat_gets_304(site: WebSite) -> None:
    with TestClient(create_app(site.settings, site.store)) as http:
        assert http.get(webview_path("no-such-edition")).status_code == 404
        first = http.get(webview_path(site.edition_id))
        again = http.get(webview_path(site.edition_id),
                         headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        neutral = http.get("/unsubscribe/")
        assert neutral.status_code == 200 and "personal to your address" in neutral.text


def test_web_view_over_a_real_socket(site: WebSite) -> None:
    env = {"DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_DATABASE_URL": str(site.store.engine.url.render_as_string(False))}
    with dispatch_serve(site.root, env) as base, client(base) as http:
        page = http.get(webview_path(site.edition_id))
        assert page.status_code == 200 and "<html" in page.text
        assert all(name not in page.text and address not in page.text
                   for address, name in PEOPLE)
        assert http.get(webview_path("nope")).status_code == 404
