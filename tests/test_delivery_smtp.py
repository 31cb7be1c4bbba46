"""The sender lanes' cheap paths: the SMTP client's own MAIL/RCPT/DATA (the same
bytes on the wire as smtplib's)."""

from __future__ import annotations

import smtplib

from hypothesis import given
from hypothesis import strategies as st
from tests.delivery_kit import Sink, start_sink

from dispatch.delivery.settings import SmtpSettings
from dispatch.delivery.smtp import _PLAIN, SmtpTransport, dot_stuff, quote_address


@given(st.binary(max_size=64) | st.lists(st.sampled_from([b".", b"\r", b"\n", b"a", b".."]),
                                         max_size=24).map(b"".join))
def test_dot_stuffing_matches_smtplib(data: bytes) -> None:
    assert dot_stuff(data) == smtplib._quote_periods(data)  # type: ignore[attr-defined]


@given(st.from_regex(_PLAIN, fullmatch=True))
def test_plain_addresses_are_quoted_as_smtplib_would(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address) == f"<{address}>"


@given(st.text(max_size=30))
def test_any_address_is_quoted_as_smtplib_would(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address)


def test_leading_dots_and_odd_addresses_survive_a_real_server() -> None:
    sink = Sink()
    ctl = start_sink(sink)
    try:
        conn = SmtpTransport(SmtpSettings("127.0.0.1", ctl.port, tls="none", timeout=10)).open()
        message = (b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\nmiddle . dot\r\n"
                   b".\r\nno final line end")
        first = conn.send("Sender Name <news@example.org>", "reader@example.com", message)
        second = conn.send("news@example.org", "o'neil+tag@mail.example.com", b".\r\n")
        conn.close()
    finally:
        ctl.stop()
    assert (first.outcome, second.outcome) == ("sent", "sent")
    assert sink.accepted == [("reader@example.com", message + b"\r\n"),
                             ("o'neil+tag@mail.example.com", b".\r\n")]


