"""The preference page (join/leave public lists, name, unsubscribe from
everything, each effective before the next message) and the archive
(/archive/ and its RSS feed: sent editions of public lists only, newest first,
no personal data), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient
from tests.signup_kit import Clock, form_token, running_app
from tests.web_kit import SECRET

from dispatch.config import Settings
from dispatch.outbox import queue_edition
from dispatch.signup.consent import consents_of
from dispatch.signup.preferences import reader
from dispatch.signup.tokens import preferences_token
from dispatch.store.engine import Store
from dispatch.store.schema import outbox
from dispatch.subscribers import add_subscriber, get_subscriber

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ANN = "ann@example.com"


@dataclass(frozen=True)
class StoredEdition:
    edition_id: str
    subject: str
    kind: str = "digest"

    def to_json(self) -> str:
        return "{}"


@pytest.fixture
def env(example_site: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[tuple[Settings, Store, Clock, TestClient]]:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    with running_app(example_site, database_url, START) as running:
        yield running


def statuses(store: Store, sid: int) -> dict[str, str]:
    with store.read() as conn:
        return dict(conn.execute(select(outbox.c.edition_id, outbox.c.status)
                                 .where(outbox.c.subscriber_id == sid)).all())


def test_preferences_join_leave_rename_effective_before_the_next_message(env) -> None:  # type: ignore[no-untyped-def]
    _, store, clock, client = env
    person, _ = add_subscriber(store, ANN, "weekly", START, name="Ann")
    add_subscriber(store, "bob@example.com", "heart-health", START)
    queue_edition(store, StoredEdition("d1.weekly", "Week 1"), ["weekly"], START)
    queue_edition(store, StoredEdition("both", "Both"), ["weekly", "heart-health"], START)
    url = f"/preferences/{preferences_token(SECRET.encode(), person.id)}"
    page = client.get(url)
    assert page.status_code == 200 and ANN in page.text
    assert 'value="weekly" checked' in page.text and 'value="heart-health">' in page.text
    # Without the form token nothing changes.
    refused = client.post(url, data={"action": "save", "name": "Eve", "lists": []})
    assert "Nothing was changed" in refused.text
    assert reader(store, person.id).lists == {"weekly"}  # type: ignore[union-attr]
    clock.advance(minutes=1)
    saved = client.post(url, data={"action": "save", "name": "Ann Byrne",
                                   "lists": ["heart-health"],
                                   "form_token": form_token(page.text)})
    assert saved.status_code == 200 and "Saved" in saved.text
    now = reader(store, person.id)
    assert now is not None and now.lists == {"heart-health"} and now.name == "Ann Byrne"
    # The weekly-only message still queued is not sent; the shared one still is.
    assert statuses(store, person.id) == {"d1.weekly": "suppressed", "both": "queued"}
    with store.read() as conn:
        methods = [(c.list_name, c.method) for c in consents_of(conn, person.id)]
    assert ("heart-health", "preferences") in methods
    bad = client.post(url, data={"action": "save", "name": "Ann\r\nBcc: x@example.com",
                                 "lists": ["heart-health"], "form_token": form_token(page.text)})
    assert bad.status_code == 400 and reader(store, person.id).name == "Ann Byrne"  # type: ignore[union-attr]


def test_unsubscribe_from_everything_and_coming_back_only_by_signup(env) -> None:  # type: ignore[no-untyped-def]
    _, store, _, client = env
    person, _ = add_subscriber(store, ANN, "weekly", START)
    queue_edition(store, StoredEdition("d1.weekly", "Week 1"), ["weekly"], START)
    url = f"/preferences/{preferences_token(SECRET.encode(), person.id)}"
    page = client.get(url)
    done = client.post(url, data={"action": "unsubscribe", "form_token": form_token(page.text)})
    assert "You are unsubscribed" in done.text
    assert get_subscriber(store, ANN).status == "unsubscribed"  # type: ignore[union-attr]
    assert statuses(store, person.id) == {"d1.weekly": "suppressed"}
    again = client.get(url)
    assert "not subscribed" in again.text and 'href="/subscribe"' in again.text
    assert client.post(url, data={"action": "save", "lists": ["weekly"],
                                  "form_token": form_token(page.text)}).status_code == 200
    assert get_subscriber(store, ANN).status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize("token", ["x.y", "abc", "x" * 600])
def test_bad_preference_tokens_get_400(env, token: str) -> None:  # type: ignore[no-untyped-def]
    _, _, _, client = env
    assert client.get(f"/preferences/{token}").status_code == 400
    assert client.post(f"/preferences/{token}", data={"action": "unsubscribe"}).status_code == 400


def test_archive_lists_sent_public_editions_newest_first_without_personal_data(env) -> None:  # type: ignore[no-untyped-def]
    settings, store, _, client = env
    add_subscriber(store, ANN, "weekly", START, name="Ann Quillfeather")
    add_subscriber(store, ANN, "staff", START)
    add_subscriber(store, ANN, "heart-health", START)
    plan = [("old.weekly", "Older weekly", ["weekly"], True, 0),
            ("new.weekly", "Newer weekly", ["weekly"], True, 2),
            ("heart.both", "Heart news", ["weekly", "heart-health"], True, 1),
            ("staff-only", "Staff memo", ["staff"], True, 3),
            ("mixed", "Staff and weekly", ["weekly", "staff"], True, 4),
            ("unsent.weekly", "Not sent yet", ["weekly"], False, 5)]
    for eid, subject, audience, sent, day in plan:
        queue_edition(store, StoredEdition(eid, subject), audience, START + timedelta(days=day))
        if sent:
            with store.write() as conn:
                conn.execute(update(outbox).where(outbox.c.edition_id == eid)
                             .values(status="sent", finished_at=START))
    page = client.get("/archive/")
    assert page.status_code == 200 and '<html lang="en">' in page.text
    order = [page.text.index(s) for s in ("Newer weekly", "Heart news", "Older weekly")]
    assert order == sorted(order)
    for hidden in ("Staff memo", "Staff and weekly", "Not sent yet", ANN, "Quillfeather"):
        assert hidden not in page.text
    assert 'href="/editions/new.weekly/"' in page.text
    feed = feedparser.parse(client.get("/archive/feed.xml").content)
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == ["Newer weekly", "Heart news", "Older weekly"]
    base = settings.site.url
    assert feed.entries[0].link == f"{base}/editions/new.weekly/"
    assert all("token" not in e.link and "@" not in e.link for e in feed.entries)
