"""Signed unsubscribe tokens and the unsubscribe() entry point for the web app."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.delivery_kit import T0, edition, seed

from dispatch.config import load_settings
from dispatch.errors import InputError
from dispatch.outbox import edition_status, queue_edition
from dispatch.store import open_store
from dispatch.subscribers import get_subscriber
from dispatch.unsubscribe import (
    UnsubscribeToken,
    make_token,
    secret_key,
    unsubscribe,
    unsubscribe_url,
    verify_token,
    webview_url,
)

KEY = b"0123456789abcdef"


@given(st.integers(min_value=1, max_value=2**62), st.text(min_size=1, max_size=80))
def test_tokens_round_trip(sid: int, scope: str) -> None:
    token = make_token(KEY, sid, scope)
    assert verify_token(KEY, token) == UnsubscribeToken(sid, scope)
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


def test_forged_or_foreign_tokens_are_refused() -> None:
    token = make_token(KEY, 42, "e1")
    payload, mac = token.split(".")
    other = make_token(KEY, 43, "e1")
    assert verify_token(b"another key", token) is None
    assert verify_token(KEY, f"{other.split('.')[0]}.{mac}") is None  # someone else's id
    assert verify_token(KEY, payload) is None
    assert verify_token(KEY, token[:-2]) is None
    assert verify_token(KEY, "") is None and verify_token(KEY, "é.é") is None


def test_development_key_is_created_once_and_private(site_root: Path) -> None:
    settings = load_settings(site_root)
    first = secret_key(settings, {})
    path = settings.state_dir / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(settings, {}) == first and len(first) == 64
    assert secret_key(settings, {"DISPATCH_SECRET_KEY": "prod"}) == b"prod"


def test_urls_use_the_public_web_base(site_root: Path) -> None:
    settings = load_settings(site_root)
    assert unsubscribe_url(settings, KEY, 7, "e1").startswith("https://journal.test/unsubscribe/")
    assert webview_url(settings, "e1") == "https://journal.test/editions/e1/"
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[web]\npublic_url = "https://news.example.org/"\n')
    settings = load_settings(site_root)
    url = unsubscribe_url(settings, KEY, 7, "e1")
    assert url.startswith("https://news.example.org/unsubscribe/")
    assert verify_token(KEY, url.rsplit("/", 1)[1]) == UnsubscribeToken(7, "e1")


@pytest.mark.parametrize("form", ["token", "string", "id", "email"])
def test_unsubscribe_accepts_every_form(database_url: str, form: str) -> None:
    store = open_store(database_url)
    emails = seed(store, 3)
    queue_edition(store, edition(), ["main"], T0)
    person = get_subscriber(store, emails[1])
    assert person is not None
    target: object = {"token": UnsubscribeToken(person.id, "e1"),
                      "string": make_token(KEY, person.id, "e1"),
                      "id": person.id, "email": f"  {emails[1]} "}[form]
    assert unsubscribe(store, target, T0, key=KEY) is True  # type: ignore[arg-type]
    assert get_subscriber(store, emails[1]).status == "unsubscribed"  # type: ignore[union-attr]
    assert edition_status(store, "e1").suppressed == 1
    with pytest.raises(InputError):
        unsubscribe(store, "forged.token", T0, key=KEY)
    with pytest.raises(InputError):
        unsubscribe(store, "nobody@example.com", T0)
    store.dispose()
