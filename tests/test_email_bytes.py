"""Per-recipient bytes: MessageFactory's shortcuts (values shared between
slots, the encoder skipped where it would change nothing, a value no slot
shows never computed) write exactly the bytes of a straightforward fill, in
which every slot's value is encoded on its own."""

from __future__ import annotations

import binascii
import html
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from dispatch.config import Settings
from dispatch.render import Edition, MessageFactory, Recipient, render_digest_edition
from dispatch.render.edition import PLACEHOLDERS, first_name
from dispatch.render.mime import (
    _qp_checked,
    _qp_name,
    _qp_value,
    _to_header,
    message_id,
)
from dispatch.render.settings import load_email_settings
from email_fixtures import SEND_DATE, articles_of, make_site

# Every slot kind: each value in the text part, in HTML text and (all but the
# names, which templates may not put there) in an attribute; a value across a
# 76-column line; "=" and "." where quoted-printable treats them specially.
_P = PLACEHOLDERS
EVERY_SLOT = Edition(
    edition_id="every-slot", kind="digest", subject="Sübject = ?", list_id="<l.example>",
    text=(f"Hello {_P['name']}, {_P['first_name']}!\n" + "x" * 70 + _P["email"] + "y" * 9
          + f"\nUnsubscribe: {_P['unsubscribe_url']}\nWeb: {_P['webview_url']}"
          f" Preferences: {_P['preferences_url']}\n.\n=end"),
    html=(f"<p>Hi {_P['name']} &amp; {_P['first_name']}</p>"
          f'<a href="{_P["unsubscribe_url"]}">u</a><a href="{_P["webview_url"]}?a=1">w</a>'
          f'<a href="{_P["preferences_url"]}">p</a><a href="mailto:{_P["email"]}">m</a>'
          f"<p>{_P['email']} {_P['unsubscribe_url']} {_P['webview_url']}"
          f" {_P['preferences_url']}</p>" + "é" * 90))

NAMES = ["Ann", "Ann Reader", "Tom & Jerry", "Zoë Ångström", "山田 太郎", None, "",
         "Mary O'Neil", 'Mary "May" O\'Neil', "Dr. Smith, Jr.", "Reader, Ann", "محمد",
         "<script>alert(1)</script>", "  runs   of  spaces ", "a=b", ".", "=?utf-8?q?x?=",
         "back\\slash", "😀", "é" * 40, "A" * 80, "x" * 300, "\u200fRTL mark"]
URL_TAIL = st.text(st.sampled_from("abcXYZ019-._~:/?#[]@!$&'()*+,;=%"), max_size=120)
EMAIL = st.sampled_from(["ann@example.org", "Bob@Example.COM", "a&b@example.org",
                         "x=y@example.org", "o'brien+news@example.org",
                         "a." + "b" * 60 + "@long-example.org", "k@xn--bcher-kva.de"])


def straightforward(factory: MessageFactory, edition: Edition, settings: Settings,
                    person: Recipient, date: datetime) -> bytes:
    """The factory's static pieces with each slot filled by the obvious code."""
    es = load_email_settings(settings)
    values = {"email": person.email, "unsubscribe_url": person.unsubscribe_url,
              "webview_url": person.webview_url,
              "preferences_url": person.preferences_url or person.unsubscribe_url,
              "name": person.name or es.name_fallback,
              "first_name": first_name(person.name) or es.first_name_fallback}
    unsubscribe = f"<{person.unsubscribe_url}>"
    if person.unsubscribe_mailto:
        unsubscribe += f",\r\n <{person.unsubscribe_mailto}>"
    domain = settings.sender.email.rpartition("@")[2]
    headers = {
        "to": _to_header(person),
        "date": f"Date: {format_datetime(date)}\r\n".encode(),
        "mid": f"Message-ID: {message_id(edition.edition_id, person.email, domain)}\r\n".encode(),
        "unsub_header": f"List-Unsubscribe: {unsubscribe}\r\n".encode(),
    }
    out = list(factory.layout)
    for index, key in zip(factory.slot_indices, factory.slot_keys, strict=True):
        if key in headers:
            out[index] = headers[key]
            continue
        part, _, field = key.partition(":")
        value = values[field] if part == "t" else html.escape(values[field], quote=False)
        out[index] = binascii.b2a_qp(value.encode()).replace(b"=\n", b"=\r\n")
    return b"".join(out)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_site(tmp_path_factory.mktemp("bytes") / "site")


@pytest.fixture(scope="module")
def editions(site: Settings) -> list[Edition]:
    return [render_digest_edition(site, articles_of(site), "weekly-2026-44"), EVERY_SLOT]


def _people(token: str, prefs: str | None, mailto: bool) -> list[Recipient]:
    return [Recipient(email="ann@example.org" if i % 2 else "a&b@example.org", name=name,
                      unsubscribe_url=f"https://journal.test/u/{token}",
                      webview_url=f"https://journal.test/e/{token}", preferences_url=prefs,
                      unsubscribe_mailto=f"mailto:u+{token}@journal.test" if mailto else None)
            for i, name in enumerate(NAMES)]


@pytest.mark.parametrize(("token", "prefs", "mailto"), [
    ("0123abcd", None, True),
    ("t?l=weekly&x=1", "https://journal.test/p/tok?a=1&b=2", False),
    ("z" * 80, "https://journal.test/preferences/" + "q" * 60, True),
])
def test_named_readers_get_the_straightforward_bytes(
        site: Settings, editions: list[Edition], token: str, prefs: str | None,
        mailto: bool) -> None:
    later = datetime(2026, 1, 5, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    for edition in editions:
        factory = MessageFactory(edition, site)
        for person in _people(token, prefs, mailto):
            for date in (SEND_DATE, later, SEND_DATE):
                assert factory.build(person, date=date) == straightforward(
                    factory, edition, site, person, date), (edition.edition_id, person)


@hyp_settings(max_examples=80, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(name=st.one_of(st.none(), st.text(
           st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)),
       email=EMAIL, unsub=URL_TAIL, web=URL_TAIL, prefs=st.one_of(st.none(), URL_TAIL),
       mailto=st.one_of(st.none(), URL_TAIL))
def test_any_reader_gets_the_straightforward_bytes(
        site: Settings, editions: list[Edition], name: str | None, email: str, unsub: str,
        web: str, prefs: str | None, mailto: str | None) -> None:
    person = Recipient(email=email, name=name, unsubscribe_url=f"https://journal.test/u/{unsub}",
                       webview_url=f"https://journal.test/{web}",
                       preferences_url=None if prefs is None else f"https://j.test/p{prefs}",
                       unsubscribe_mailto=None if mailto is None else f"mailto:u{mailto}@j.test")
    date = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    for edition in editions:
        factory = MessageFactory(edition, site)
        assert factory.build(person, date=date) == straightforward(
            factory, edition, site, person, date)


@given(st.text(st.sampled_from("abcXYZ019-._~:/?#[]@!$&'()*+,;=%"), max_size=200))
def test_a_checked_value_is_encoded_like_any_other(tail: str) -> None:
    # Printable ASCII without spaces: what check_recipient lets through.
    for value in (f"https://j.test/{tail}", f"mailto:{tail}", f"{tail}@example.org", tail):
        assert _qp_checked(value) == _qp_value(value)


@given(st.text(max_size=100))
def test_a_name_is_encoded_like_any_other(name: str) -> None:
    assert _qp_name(name) == (_qp_value(name), _qp_value(html.escape(name, quote=False)))

