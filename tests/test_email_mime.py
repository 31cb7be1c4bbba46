"""Messages: fast personalisation equals the naive path; headers; injection."""

from __future__ import annotations

import email
import re
import threading
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from dispatch.errors import InputError
from dispatch.render import (
    Edition,
    HeaderInjectionError,
    MessageFactory,
    RecipientError,
    build_naive_message,
    render_article_edition,
    render_digest_edition,
)
from dispatch.render.edition import PLACEHOLDERS
from email_fixtures import SEND_DATE, articles_of, make_site, recipient

NAMES = [
    "Ann Reader",
    "Tom & Jerry",
    "<script>alert(1)</script>",
    'Mary "May" O\'Neil',
    "Zoë Ångström",
    "山田 太郎",
    "محمد الأحمد",
    "Dr. Smith, Jr. (clinic)",
    "😀 Emoji",
    None,
    "",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_site(tmp_path_factory.mktemp("mime") / "site")


@pytest.fixture(scope="module")
def digest(site):  # type: ignore[no-untyped-def]
    return render_digest_edition(site, articles_of(site), "weekly-2026-44")


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def shape(message: EmailMessage) -> dict[str, object]:
    """Everything a reader or a mail client sees, decoded."""
    headers = []
    for name, value in message.items():
        if name == "To":
            headers.append((name, [(a.display_name, a.addr_spec) for a in value.addresses]))
        else:
            headers.append((name, str(value)))
    parts = [(p.get_content_type(), p.get_content_charset(), p["Content-Transfer-Encoding"],
              p.get_content()) for p in message.iter_parts()]
    return {"headers": headers, "type": message.get_content_type(), "parts": parts}


@pytest.mark.parametrize("name", NAMES)
def test_personalised_digest_equals_rendering_from_scratch(site, digest, name) -> None:  # type: ignore[no-untyped-def]
    person = recipient(name)
    fast = MessageFactory(digest, site).build(person, date=SEND_DATE)
    slow = build_naive_message(site, "digest", articles_of(site), "weekly-2026-44", person,
                               date=SEND_DATE)
    assert shape(parse(fast)) == shape(parse(slow))
    html = parse(fast).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert not any(token in html for token in PLACEHOLDERS.values())


@pytest.mark.parametrize("name", ["Tom & Jerry", "山田 太郎", None])
def test_personalised_article_equals_rendering_from_scratch(site, name) -> None:  # type: ignore[no-untyped-def]
    article = next(a for a in articles_of(site) if a.slug == "salt")
    edition = render_article_edition(site, article, "salt-1")
    person = recipient(name, email="o'brien+news@example.org")
    fast = MessageFactory(edition, site).build(person, date=SEND_DATE)
    slow = build_naive_message(site, "article", [article], "salt-1", person, date=SEND_DATE)
    assert shape(parse(fast)) == shape(parse(slow))


@hyp_settings(max_examples=15, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(name=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                    max_size=30))
def test_any_printable_name_personalises_identically(site, digest, name) -> None:  # type: ignore[no-untyped-def]
    person = recipient(name)
    fast = MessageFactory(digest, site).build(person, date=SEND_DATE)
    slow = build_naive_message(site, "digest", articles_of(site), "weekly-2026-44", person,
                               date=SEND_DATE)
    assert shape(parse(fast)) == shape(parse(slow))


def test_message_structure_and_headers(site, digest) -> None:  # type: ignore[no-untyped-def]
    factory = MessageFactory(digest, site)
    person = recipient("Ann Reader", token="abc")
    raw = factory.build(person, date=SEND_DATE)
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    types = [p.get_content_type() for p in message.iter_parts()]
    assert types == ["text/plain", "text/html"]  # text first, HTML last
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert str(message["From"]) == "Test Journal <news@journal.test>"
    assert [a.addr_spec for a in message["To"].addresses] == ["ann@example.org"]
    assert str(message["Date"]) == "Mon, 02 Nov 2026 07:30:00 +0000"
    assert str(message["List-Unsubscribe"]) == (
        "<https://journal.test/u/abc?l=weekly&x=1>, <mailto:unsubscribe+abc@journal.test>")
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(message["List-Id"]) == "Test Journal <newsletter.journal.test>"
    assert str(message["Message-ID"]) == factory.message_id(person)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi Ann," in text and "https://journal.test/u/abc?l=weekly&x=1" in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'href="https://journal.test/u/abc?l=weekly&amp;x=1"' in html
    # SMTP: CRLF everywhere, no line over 78 characters (RFC 5322 SHOULD; 998 MUST).
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert raw.isascii()


def test_message_id_is_stable_per_edition_and_recipient(site, digest) -> None:  # type: ignore[no-untyped-def]
    factory = MessageFactory(digest, site)
    again = MessageFactory(Edition.from_json(digest.to_json()), site)
    ann, bob = recipient(email="ann@example.org"), recipient(email="bob@example.org")
    assert factory.message_id(ann) == again.message_id(ann)
    assert factory.message_id(ann) != factory.message_id(bob)
    other = render_digest_edition(site, articles_of(site), "weekly-2026-45")
    assert MessageFactory(other, site).message_id(ann) != factory.message_id(ann)
    assert re.fullmatch(r"<[0-9a-f]{24}\.weekly-2026-44@journal\.test>", factory.message_id(ann))
    # The same edition and recipient build the same bytes (a resend is recognisable).
    assert factory.build(ann, date=SEND_DATE) == again.build(ann, date=SEND_DATE)


def test_non_ascii_subject_is_rfc2047_encoded(site) -> None:  # type: ignore[no-untyped-def]
    edition = render_digest_edition(site, articles_of(site), "d",
                                    subject="Santé & café: {{ articles|length }} nouveautés")
    raw = MessageFactory(edition, site).build(recipient("Zoë"), date=SEND_DATE)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in header_block
    assert b"To: =?utf-8?" in header_block
    assert str(parse(raw)["Subject"]) == "Santé & café: 2 nouveautés"


@pytest.mark.parametrize("field,value", [
    ("name", "Ann\nBcc: victim@example.org"),
    ("name", "Ann\r\nX-Evil: 1"),
    ("name", "Ann\u2028Bcc: x@example.org"),
    ("email", "ann@example.org\r\nBcc: victim@example.org"),
    ("unsubscribe_url", "https://journal.test/u/x\r\nBcc: victim@example.org"),
    ("webview_url", "https://journal.test/e/x\nX: y"),
    ("unsubscribe_mailto", "mailto:u@journal.test\nBcc: v@example.org"),
])
def test_line_breaks_in_header_values_are_refused(site, digest, field, value) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    person = replace(recipient(), **{field: value})
    with pytest.raises(HeaderInjectionError, match="line break") as caught:
        MessageFactory(digest, site).build(person, date=SEND_DATE)
    assert isinstance(caught.value, InputError)
    assert caught.value.problems[0].field == field
    with pytest.raises(HeaderInjectionError):
        build_naive_message(site, "digest", articles_of(site), "x", person, date=SEND_DATE)


def test_line_break_in_subject_is_refused(site, digest) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    with pytest.raises(HeaderInjectionError):
        MessageFactory(replace(digest, subject="Hi\r\nBcc: x@example.org"), site)


@pytest.mark.parametrize("field,value", [
    ("email", "not-an-address"),
    ("email", "ann smith@example.org"),
    ("unsubscribe_url", "http://journal.test/u/x"),  # RFC 8058 wants https
    ("unsubscribe_url", "https://journal.test/u/a b"),
    ("webview_url", "javascript:alert(1)"),
    ("unsubscribe_mailto", "https://not-mailto.test"),
    ("name", "Ann\x00"),
])
def test_unusable_recipient_values_are_refused(site, digest, field, value) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    person = replace(recipient(), **{field: value})
    with pytest.raises(RecipientError):
        MessageFactory(digest, site).build(person, date=SEND_DATE)


def test_name_in_an_html_attribute_is_a_template_error(tmp_path: Path) -> None:
    from dispatch.errors import TemplateError
    from dispatch.render.env import PACKAGE_DIR

    settings = make_site(tmp_path / "s")
    source = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8")
    target = tmp_path / "s" / "templates" / "email" / "digest.html"
    target.parent.mkdir(parents=True)
    target.write_text(source.replace('<p class="intro">',
                                     '<p class="intro" title="{{ recipient.name }}">'))
    # Refused while rendering, naming the template file and line ...
    with pytest.raises(TemplateError, match="text only") as caught:
        render_digest_edition(settings, articles_of(settings), "x")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("templates/email/digest.html", 5)
    # ... and by the factory, for an edition that reached it some other way.
    edition = render_digest_edition(make_site(tmp_path / "plain"), articles_of(settings), "x")
    from dataclasses import replace

    bad = replace(edition, html=edition.html.replace(
        '<p class="intro"', f'<p class="intro" title="{PLACEHOLDERS["name"]}"', 1))
    with pytest.raises(TemplateError, match="text only") as caught:
        MessageFactory(bad, settings)
    assert caught.value.problems[0].path == "edition x"


def test_naive_date_is_refused(site, digest) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    with pytest.raises(ValueError):
        MessageFactory(digest, site).build(recipient(), date=datetime(2026, 1, 1))


def test_messages_survive_a_real_smtp_server(site, digest) -> None:  # type: ignore[no-untyped-def]
    import smtplib
    import socket

    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self) -> None:
            self.received: list[bytes] = []
            self.done = threading.Event()

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            self.received.append(envelope.original_content or envelope.content)
            if len(self.received) == 2:
                self.done.set()
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        factory = MessageFactory(digest, site)
        people = [recipient("Zoë & Co", email="zoe@example.org"), recipient(None)]
        sent = [factory.build(p, date=SEND_DATE) for p in people]
        with smtplib.SMTP("127.0.0.1", port) as client:
            for person, data in zip(people, sent, strict=True):
                client.sendmail("news@journal.test", [person.email], data)
        assert sink.done.wait(30)
    finally:
        controller.stop()
    for data, got in zip(sent, sink.received, strict=True):
        assert shape(parse(got)) == shape(parse(data))
    fallback = parse(sink.received[1]).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi there," in fallback
