"""The web view of a sent edition: the edition as sent, with nobody's personal data.

Only an edition with at least one sent message has a page (ids are guessable:
``<slug>.<list>``); conditional GETs compare entity tags as RFC 9110 says.
Runs on SQLite and on PostgreSQL.
"""

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

from dispatch.content import load_site
from dispatch.delivery import CaptureTransport, DeliverySettings, captured, deliver
from dispatch.outbox import cancel, edition_status, pause, queue_edition
from dispatch.render import render_article_edition
from dispatch.render.edition import PLACEHOLDERS
from dispatch.unsubscribe import make_token, webview_path
from dispatch.web.app import create_app


@pytest.fixture
def site(example_site: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[WebSite]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    made = make_site(example_site, database_url, digest=True)
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


def queue_another(site: WebSite, index: int) -> str:
    """Queue one more (article) edition to the same list; return its id."""
    articles = [a for a in load_site(site.settings).articles if a.is_published(NOW)]
    edition = render_article_edition(site.settings, articles[index],
                                     f"{articles[index].slug}.weekly")
    queue_edition(site.store, edition, ["weekly"], NOW)
    return edition.edition_id


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
        assert name.split()[0] in sent and token in sent and address in sent
        for private in (name, name.split()[0], address, address.split("@")[0], token):
            assert private not in page, private
    assert not any(token in page for token in PLACEHOLDERS.values())
    assert "/unsubscribe/" in page and "This email was sent to you" in page
    assert "Hi there," in page  # the fallback from [email] first_name_fallback
    # Everything else is the edition as sent: the same article, links and footer.
    titles = re.findall(r"<h2[^>]*>(.*?)</h2>", html_of(messages[PEOPLE[0][0]]), re.S)
    assert titles and all(t in page for t in titles)
    assert page.count('href="') == html_of(messages[PEOPLE[0][0]]).count('href="')


def test_only_an_edition_with_a_sent_message_has_a_web_view(site: WebSite) -> None:
    cancelled, paused = queue_another(site, 0), queue_another(site, 1)
    with TestClient(create_app(site.settings, site.store)) as http:
        assert http.get(webview_path("no-such-edition")).status_code == 404
        # Queued and stored, nothing sent yet: as unknown as a made-up id.
        assert edition_status(site.store, site.edition_id).sent == 0
        assert http.get(webview_path(site.edition_id)).status_code == 404
        # `dispatch queue cancel` before anything left: never public.
        assert cancel(site.store, cancelled, NOW) == len(PEOPLE)
        assert edition_status(site.store, cancelled).sent == 0
        assert http.get(webview_path(cancelled)).status_code == 404
        assert pause(site.store, paused, NOW)
        sent_messages(site)  # the digest goes out; the paused edition does not
        assert edition_status(site.store, site.edition_id).sent == len(PEOPLE)
        assert edition_status(site.store, paused).sent == 0
        shown = http.get(webview_path(site.edition_id))
        assert shown.status_code == 200 and "<html" in shown.text
        assert http.get(webview_path(paused)).status_code == 404
        assert http.get(webview_path(cancelled)).status_code == 404
        neutral = http.get("/unsubscribe/")
        assert neutral.status_code == 200 and "personal to your address" in neutral.text


def test_if_none_match_compares_entity_tags(site: WebSite) -> None:
    sent_messages(site)
    with TestClient(create_app(site.settings, site.store)) as http:
        first = http.get(webview_path(site.edition_id))
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')

        def status(if_none_match: str) -> int:
            response = http.get(webview_path(site.edition_id),
                                headers={"If-None-Match": if_none_match})
            if response.status_code == 304:
                assert response.content == b"" and response.headers["etag"] == etag
            else:
                assert response.content == first.content
            return response.status_code

        assert status(etag) == 304
        assert status(f'"other", W/{etag}') == 304  # a list, weak comparison
        assert status(f'W/"other" ,, {etag}') == 304  # empty list elements are allowed
        assert status("*") == 304
        assert status('"other"') == 200
        assert status(f'W/"{etag[1:-1]}-gzip"') == 200  # another representation
        # Our tag inside a longer one, or after junk: not a match (a substring
        # test would answer 304 to both).
        assert status(f'"{etag}"') == 200
        assert status(f"x{etag}") == 200


def test_web_view_over_a_real_socket(site: WebSite) -> None:
    env = {"DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_DATABASE_URL": str(site.store.engine.url.render_as_string(False))}
    never_sent = queue_another(site, 0)
    cancel(site.store, never_sent, NOW)
    sent_messages(site)
    with dispatch_serve(site.root, env) as base, client(base) as http:
        page = http.get(webview_path(site.edition_id))
        assert page.status_code == 200 and "<html" in page.text
        assert http.get(webview_path(never_sent)).status_code == 404
        assert all(name not in page.text and address not in page.text
                   for address, name in PEOPLE)
        assert http.get(webview_path("nope")).status_code == 404
