"""Signup with double opt-in, on SQLite and PostgreSQL, through the real app.

The form, the confirmation email in the capture maildir, the GET that only
shows a button and the POST that confirms; what a second signup, an
unsubscribed address and an unknown address see (the same page); consent
records; the abuse limits (honeypot, time-to-submit, CSRF, per-network and
per-address limits, body size); expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from tests.signup_kit import (
    Clock,
    app_for,
    confirmations,
    form_token,
    link_in,
    path_of,
    running_app,
    submit,
)
from tests.web_kit import SECRET

from dispatch.config import Settings, load_settings
from dispatch.signup.consent import consents_of
from dispatch.signup.requests import expire
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.store.schema import signup_requests
from dispatch.subscribers import change_status, get_subscriber
from dispatch.subscribers.csvfile import import_csv

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ANN = "ann.reader@example.com"
ACCEPTED = "Check your inbox"


@pytest.fixture
def env(example_site: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[tuple[Settings, Store, Clock, TestClient]]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    with running_app(example_site, database_url, START) as running:
        yield running


def requests_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(signup_requests)).scalar_one())


def test_form_to_confirmed_subscriber_with_consent(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, clock, client = env
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert "Every Monday" in page.text  # the list's description
    assert "dispatch_csrf" in page.cookies
    status, text = submit(client, clock, {"email": "Ann.Reader@Example.com", "name": "Ann",
                                          "lists": ["weekly"]})
    assert status == 200 and ACCEPTED in text
    person = get_subscriber(store, "Ann.Reader@example.com")
    assert person is not None and person.status == "pending"
    [mail] = confirmations(settings.root, "Ann.Reader@example.com")
    url = link_in(mail, "/confirm/")
    # GET only shows the button (mail scanners open links).
    shown = client.get(path_of(url))
    assert shown.status_code == 200 and "<button" in shown.text
    person = get_subscriber(store, "Ann.Reader@example.com")
    assert person is not None and person.status == "pending"
    clock.advance(minutes=5)
    done = client.post(path_of(url), data={"form_token": form_token(shown.text)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    person = get_subscriber(store, "Ann.Reader@example.com")
    assert person is not None and person.status == "active"
    with store.read() as conn:
        [consent] = consents_of(conn, person.id)
    assert consent.list_name == "weekly" and consent.method == "form"
    assert consent.wording and "confirm" in consent.wording
    assert consent.wording_version and consent.wording_version.startswith("w")
    assert consent.requested_at == START + timedelta(seconds=5)
    assert consent.given_at == START + timedelta(seconds=5, minutes=5)
    # Pressing again is harmless.
    again = client.post(path_of(url), data={"form_token": form_token(shown.text)})
    assert "already subscribed" in again.text


def test_a_second_signup_reveals_nothing_and_sends_nothing(env) -> None:  # type: ignore[no-untyped-def]
    settings, _store, clock, client = env
    _, first = submit(client, clock, {"email": ANN, "lists": ["weekly"]})
    [mail] = confirmations(settings.root, ANN)
    shown = client.get(path_of(link_in(mail, "/confirm/")))
    client.post(path_of(link_in(mail, "/confirm/")), data={"form_token": form_token(shown.text)})
    clock.advance(hours=3)
    _, second = submit(client, clock, {"email": ANN, "lists": ["weekly"]})
    _, unknown = submit(client, clock, {"email": "nobody.yet@example.com", "lists": ["weekly"]})
    assert first == second == unknown
    assert len(confirmations(settings.root, ANN)) == 1
    assert len(confirmations(settings.root, "nobody.yet@example.com")) == 1


def test_an_unsubscribed_address_comes_back_only_through_confirmation(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, clock, client = env
    import_csv(store, settings.root / "subscribers.csv", "weekly", START)
    person = get_subscriber(store, "ada.lovelace@example.com")
    assert person is not None
    change_status(store, [person.id], "unsubscribed", START, "one-click")
    import_csv(store, settings.root / "subscribers.csv", "weekly", START)  # an import: no
    assert get_subscriber(store, person.email).status == "unsubscribed"  # type: ignore[union-attr]
    submit(client, clock, {"email": person.email, "lists": ["weekly"]})
    assert get_subscriber(store, person.email).status == "unsubscribed"  # type: ignore[union-attr]
    [mail] = confirmations(settings.root, person.email)
    url = path_of(link_in(mail, "/confirm/"))
    client.post(url, data={"form_token": form_token(client.get(url).text)})
    assert get_subscriber(store, person.email).status == "active"  # type: ignore[union-attr]


def test_one_confirmation_per_address_per_hour(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, clock, client = env
    for _ in range(3):
        submit(client, clock, {"email": ANN, "lists": ["weekly"]}, wait=60)
    assert len(confirmations(settings.root, ANN)) == 1
    clock.advance(hours=1)
    submit(client, clock, {"email": ANN, "lists": ["weekly"]})
    assert len(confirmations(settings.root, ANN)) == 2
    with store.read() as conn:
        outcomes = list(conn.execute(select(signup_requests.c.outcome)
                                     .order_by(signup_requests.c.id)).scalars())
    assert outcomes == ["sent", "limited", "limited", "sent"]


def test_a_confirmation_the_server_refused_does_not_use_up_the_hour(  # type: ignore[no-untyped-def]
        env, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, store, clock, client = env
    # Port 9 on loopback: nothing listens, the connection is refused.
    monkeypatch.setenv("DISPATCH_SMTP_URL", "smtp://127.0.0.1:9")
    submit(client, clock, {"email": ANN, "lists": ["weekly"]}, wait=60)
    assert confirmations(settings.root, ANN) == []
    monkeypatch.delenv("DISPATCH_SMTP_URL")
    submit(client, clock, {"email": ANN, "lists": ["weekly"]}, wait=60)
    assert len(confirmations(settings.root, ANN)) == 1
    submit(client, clock, {"email": ANN, "lists": ["weekly"]}, wait=60)
    assert len(confirmations(settings.root, ANN)) == 1  # the limit still holds
    with store.read() as conn:
        outcomes = list(conn.execute(select(signup_requests.c.outcome)
                                     .order_by(signup_requests.c.id)).scalars())
    assert outcomes[0].startswith("failed") and outcomes[1:] == ["sent", "limited"]


def test_per_network_limit_answers_429_with_retry_after(example_site: Path, database_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    settings = load_settings(example_site)
    store = open_store(database_url)
    clock = Clock(START)
    app = app_for(settings, store, clock)
    limit = settings.subscribers.signups_per_ip
    with TestClient(app, client=("203.0.113.7", 5000)) as one, \
            TestClient(app, client=("203.0.113.200", 5000)) as same_net, \
            TestClient(app, client=("198.51.100.9", 5000)) as other_net:
        for i in range(limit):
            status, _ = submit(one, clock, {"email": f"p{i}@example.com", "lists": ["weekly"]})
            assert status == 200
        page = same_net.get("/subscribe")
        clock.advance(seconds=10)
        refused = same_net.post("/subscribe", data={"email": "late@example.com",
                                                    "lists": ["weekly"],
                                                    "form_token": form_token(page.text)})
        assert refused.status_code == 429
        retry = int(refused.headers["Retry-After"])
        assert 0 < retry <= 3600
        assert "try again in" in refused.text
        status, _ = submit(other_net, clock, {"email": "else@example.com", "lists": ["weekly"]})
        assert status == 200
        clock.advance(seconds=retry)
        status, _ = submit(same_net, clock, {"email": "late@example.com", "lists": ["weekly"]})
        assert status == 200
        with store.read() as conn:
            networks = set(conn.execute(select(signup_requests.c.ip)).scalars())
        assert networks == {"203.0.113.0/24", "198.51.100.0/24"}
    store.dispose()


def test_honeypot_too_fast_and_missing_token_record_nothing(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, clock, client = env
    status, text = submit(client, clock, {"email": ANN, "lists": ["weekly"],
                                          "website": "http://spam.example"})
    assert status == 200 and ACCEPTED in text  # the robot sees the usual answer
    status, text = submit(client, clock, {"email": ANN, "lists": ["weekly"]}, wait=0)
    assert status == 200 and "press Subscribe again" in text
    # Posted from another website (or a forged token): the form, filled in, to press here.
    reply = client.post("/subscribe", data={"email": ANN, "lists": ["weekly"]})
    assert reply.status_code == 200 and f'value="{ANN}"' in reply.text
    assert "press Subscribe" in reply.text
    page = client.get("/subscribe")
    clock.advance(seconds=10)
    stranger = TestClient(client.app, base_url="https://testserver")
    reply = stranger.post("/subscribe", data={"email": ANN, "lists": ["weekly"],
                                              "form_token": form_token(page.text)})
    assert ACCEPTED not in reply.text  # a token is bound to its browser's cookie
    assert requests_count(store) == 0
    assert confirmations(settings.root, ANN) == []


@pytest.mark.parametrize("name", ["Ann\r\nBcc: victim@example.com", "Ann\nX: y", "A\u2028B",
                                  "x" * 101, "Ann\x00"])
def test_names_that_could_reach_a_header_are_refused(env, name: str) -> None:  # type: ignore[no-untyped-def]
    _settings, store, clock, client = env
    status, text = submit(client, clock, {"email": ANN, "name": name, "lists": ["weekly"]})
    assert status == 400 and 'class="error"' in text
    reply = client.post("/subscribe", json={"email": ANN, "name": name, "lists": ["weekly"]})
    assert reply.status_code == 400 and "name" in reply.json()["errors"]
    assert requests_count(store) == 0


@pytest.mark.parametrize("fields, problem", [
    ({"email": "", "lists": ["weekly"]}, "email"),
    ({"email": "not-an-address", "lists": ["weekly"]}, "email"),
    ({"email": ANN, "lists": []}, "lists"),
    ({"email": ANN, "lists": ["private-list"]}, "lists"),
    ({"email": ANN, "lists": "weekly", "name": 7}, "name"),
])
def test_json_signup_errors_name_the_field(env, fields, problem: str) -> None:  # type: ignore[no-untyped-def]
    _, store, _, client = env
    reply = client.post("/subscribe", json=fields)
    assert reply.status_code == 400 and problem in reply.json()["errors"]
    assert requests_count(store) == 0


def test_json_signup_and_body_limit(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, _clock, client = env
    reply = client.post("/subscribe", json={"email": ANN, "lists": ["heart-health"]})
    assert reply.status_code == 202
    [mail] = confirmations(settings.root, ANN)
    url = path_of(link_in(mail, "/confirm/"))
    client.post(url, data={"form_token": form_token(client.get(url).text)})
    person = get_subscriber(store, ANN)
    assert person is not None and person.status == "active"
    with store.read() as conn:
        assert [c.method for c in consents_of(conn, person.id)] == ["api"]
    big = client.post("/subscribe", content=b"email=" + b"a" * 20000,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    big = client.post("/subscribe", content=json.dumps({"email": "a" * 20000}),
                      headers={"content-type": "application/json"})
    assert big.status_code == 413


def test_confirmation_link_expires_and_pending_address_is_deleted(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, clock, client = env
    submit(client, clock, {"email": ANN, "lists": ["weekly"]})
    [mail] = confirmations(settings.root, ANN)
    url = path_of(link_in(mail, "/confirm/"))
    page = client.get(url)
    clock.advance(days=7)
    assert client.get(url).status_code == 410
    late = client.post(url, data={"form_token": form_token(page.text)})
    assert late.status_code == 410
    assert get_subscriber(store, ANN).status == "pending"  # type: ignore[union-attr]
    assert expire(store, clock()) == (1, 1)
    assert get_subscriber(store, ANN) is None
    assert client.get(url).status_code == 410


@pytest.mark.parametrize("token", ["", "abc", "abc.def", "x" * 600])
def test_bad_confirmation_tokens_get_400(env, token: str) -> None:  # type: ignore[no-untyped-def]
    _, _, _, client = env
    reply = client.get(f"/confirm/{token}") if token else client.get("/confirm/x.y")
    assert reply.status_code == 400


@pytest.mark.parametrize(("elapsed", "told"), [(timedelta(0), 3600),
                                               (timedelta(microseconds=1), 3600),
                                               (timedelta(seconds=1, microseconds=500), 3599),
                                               (timedelta(minutes=59, seconds=59,
                                                          microseconds=999_999), 1)])
def test_retry_after_counts_what_is_left_of_the_window_rounded_up(
        database_url: str, elapsed: timedelta, told: int) -> None:
    from dispatch.signup import limits

    store = open_store(database_url)
    try:
        with store.write() as conn:
            assert limits.hit(conn, "ip:test", 1, START).allowed
            refused = limits.hit(conn, "ip:test", 1, START + elapsed)
        assert not refused.allowed and refused.retry_after == told
    finally:
        store.dispose()
