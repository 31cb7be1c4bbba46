"""One-click unsubscribe (RFC 8058), in-process and over a real socket.

POST with no cookie, session or CSRF token unsubscribes at once (and a
message still queued to that address is then not sent); GET never does;
every kind of bad token gets a plain 400 page and changes nothing.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.web_kit import (
    FORM_BODY,
    FORM_TYPE,
    MULTIPART_BODY,
    MULTIPART_TYPE,
    NOW,
    PEOPLE,
    SECRET,
    WebSite,
    client,
    dispatch_serve,
    make_site,
)

from dispatch.delivery import CaptureTransport, DeliverySettings, captured, deliver
from dispatch.outbox import edition_status
from dispatch.unsubscribe import make_token
from dispatch.web.app import create_app

ALICE, BOB, CAROL = (email for email, _ in PEOPLE)


@pytest.fixture
def site(example_site: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[WebSite]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    made = make_site(example_site, database_url)
    yield made
    made.store.dispose()


@pytest.fixture
def app_client(site: WebSite) -> Iterator[TestClient]:
    with TestClient(create_app(site.settings, site.store)) as c:
        yield c


def token_for(site: WebSite, address: str) -> str:
    return make_token(site.key, site.ids[address], site.edition_id)


def bad_tokens(site: WebSite) -> dict[str, str]:
    alice, bob = token_for(site, ALICE), token_for(site, BOB)
    payload, mac = alice.split(".")
    flipped = mac[:5] + ("A" if mac[5] != "A" else "B") + mac[6:]
    return {
        "forged": "MTIzOmUx.bm90LWEtcmVhbC1tYWMtYXQtYWxsLXJlYWxseQ",
        "altered": f"{payload}.{flipped}",
        "truncated": alice[:-4],
        "payload-only": payload,
        "wrong-key": make_token(b"the key we used last year", site.ids[ALICE], site.edition_id),
        "other-subscriber": f"{bob.split('.')[0]}.{mac}",  # Bob's id under Alice's mac
        "overlong": alice + "A" * 2000,
        "not-ascii": "é.ü",
    }


def test_one_click_post_unsubscribes_and_stops_queued_mail(site: WebSite,
                                                           app_client: TestClient) -> None:
    url = f"/unsubscribe/{token_for(site, BOB)}"
    response = app_client.post(url, content=FORM_BODY, headers={"Content-Type": FORM_TYPE})
    assert response.status_code == 200, response.text
    assert "unsubscribed" in response.text
    assert "set-cookie" not in response.headers and not app_client.cookies
    assert site.status(BOB) == "unsubscribed"
    assert (site.status(ALICE), site.status(CAROL)) == ("active", "active")
    # Idempotent: the provider may retry; the answer stays 200.
    again = app_client.post(url, content=MULTIPART_BODY, headers={"Content-Type": MULTIPART_TYPE})
    assert again.status_code == 200 and site.status(BOB) == "unsubscribed"
    # The edition queued before the click now goes to the other two only.
    maildir = site.root / "maildir"
    report = deliver(site.store, site.settings, NOW, config=DeliverySettings(),
                     transport=CaptureTransport(maildir))
    assert report.sent == 2 and report.suppressed == 0
    recipients = sorted(email.message_from_bytes(p.read_bytes(), policy=policy.default)
                        ["Delivered-To"] for p in captured(maildir))
    assert recipients == [ALICE, CAROL]
    status = edition_status(site.store, site.edition_id)
    assert (status.sent, status.suppressed, status.pending) == (2, 1, 0) and status.reconciles


def test_get_shows_a_button_and_never_unsubscribes(site: WebSite,
                                                   app_client: TestClient) -> None:
    url = f"/unsubscribe/{token_for(site, ALICE)}"
    for _ in range(3):  # a link scanner, a prefetcher, the person
        page = app_client.get(url)
        assert page.status_code == 200
        assert app_client.head(url).status_code == 200
    assert '<form method="post">' in page.text  # no action: back to this same URL
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert site.status(ALICE) == "active"
    assert edition_status(site.store, site.edition_id).pending == 3
    # After the POST the same GET says so, and still changes nothing more.
    assert app_client.post(url).status_code == 200  # an empty body works too
    assert "You are unsubscribed" in app_client.get(url).text


def test_bad_tokens_get_a_plain_400_and_change_nothing(site: WebSite,
                                                      app_client: TestClient) -> None:
    for kind, token in bad_tokens(site).items():
        for method in ("GET", "POST"):
            response = app_client.request(method, f"/unsubscribe/{token}", content=FORM_BODY,
                                          headers={"Content-Type": FORM_TYPE})
            assert response.status_code == 400, (kind, method, response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            assert "not valid" in response.text and "Traceback" not in response.text, kind
    assert [site.status(a) for a in (ALICE, BOB, CAROL)] == ["active"] * 3
    status = edition_status(site.store, site.edition_id)
    assert (status.pending, status.suppressed) == (3, 0)


def test_a_signed_token_for_a_removed_subscriber_is_still_a_200(site: WebSite,
                                                               app_client: TestClient) -> None:
    ghost = make_token(site.key, 999_999, site.edition_id)
    assert app_client.post(f"/unsubscribe/{ghost}").status_code == 200
    assert "You are unsubscribed" in app_client.get(f"/unsubscribe/{ghost}").text
    assert [site.status(a) for a in (ALICE, BOB, CAROL)] == ["active"] * 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_over_a_real_socket_with_dispatch_serve(site: WebSite) -> None:
    """The real ``dispatch serve`` (uvicorn) on 127.0.0.1: one-click in both
    encodings, bad tokens, GET, and the feeds with conditional GET."""
    env = {"DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_DATABASE_URL": str(site.store.engine.url.render_as_string(False))}
    with dispatch_serve(site.root, env) as base, client(base) as http:
        alice, bob = token_for(site, ALICE), token_for(site, BOB)
        assert http.get(f"/unsubscribe/{alice}").status_code == 200
        assert site.status(ALICE) == "active"
        one = http.post(f"/unsubscribe/{alice}", content=MULTIPART_BODY,
                        headers={"Content-Type": MULTIPART_TYPE})
        two = http.post(f"/unsubscribe/{bob}", content=FORM_BODY,
                        headers={"Content-Type": FORM_TYPE})
        assert (one.status_code, two.status_code) == (200, 200)
        assert "cookie" not in one.request.headers and not http.cookies
        assert (site.status(ALICE), site.status(BOB), site.status(CAROL)) == (
            "unsubscribed", "unsubscribed", "active")
        for kind, token in bad_tokens(site).items():
            bad = http.post(f"/unsubscribe/{token}", content=FORM_BODY,
                            headers={"Content-Type": FORM_TYPE})
            assert bad.status_code == 400 and "Traceback" not in bad.text, kind
        assert site.status(CAROL) == "active"

        for path, media in (("/feed.xml", "application/rss+xml; charset=utf-8"),
                            ("/atom.xml", "application/atom+xml; charset=utf-8"),
                            ("/feed.json", "application/feed+json; charset=utf-8")):
            first = http.get(path)
            assert first.status_code == 200 and first.headers["content-type"] == media
            assert first.content == (site.root / "public" / path.lstrip("/")).read_bytes()
            again = http.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
