"""The sender lanes' cheap paths: the SMTP client's own MAIL/RCPT/DATA (the same
bytes on the wire as smtplib's) and the worker-wide suppression re-check."""

from __future__ import annotations

import random
import smtplib
import threading
import time
from pathlib import Path
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from tests.delivery_kit import T0, Clock, Sink, seed, start_sink

from dispatch.delivery.engine import _Run
from dispatch.delivery.settings import SmtpSettings
from dispatch.delivery.smtp import _PLAIN, SmtpTransport, dot_stuff, quote_address
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.subscribers.repository import set_status


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


def _run_over(store: Store, recheck_seconds: float) -> _Run:
    """Only the parts of a run the shared suppression re-check touches."""
    unused = cast(Any, None)
    return _Run(store=store, settings=unused, config=unused, transport=unused, source=unused,
                clock=Clock(), burst=True, stop=threading.Event(), owner="t",
                rng=random.Random(0), bucket=unused, progress=None, total=0,
                recheck_seconds=recheck_seconds)


def _unsubscribe(store: Store, subscriber_id: int) -> None:
    with store.write() as conn:
        set_status(conn, [subscriber_id], "unsubscribed", T0)


def test_the_shared_suppression_recheck_is_never_staler_than_its_window(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed(store, 4)
    # Within the window, a freshly claimed batch relies on its claim's read.
    run = _run_over(store, 3600)
    claimed_at = time.monotonic()
    held_at = run.hold("a", [1, 2])
    _unsubscribe(store, 1)
    assert run.inactive(held_at, claimed_at) == frozenset()
    # A window of zero re-checks before every send, for every lane's rows.
    run.recheck_seconds = 0
    run.hold("b", [3, 4])
    _unsubscribe(store, 4)
    assert run.inactive(held_at, claimed_at) == {1, 4}
    # A batch claimed long ago and held after the last re-check is not
    # covered by that re-check: it forces a new one that includes it.
    run.recheck_seconds = 3600
    run.let_go("a")
    run.let_go("b")
    held_late = run.hold("c", [2, 3])
    _unsubscribe(store, 3)
    assert run.inactive(held_late, claimed_at - 7200) == {3}
    # Once a re-check that began after the hold exists, it is reused.
    _unsubscribe(store, 2)
    assert run.inactive(held_late, claimed_at - 7200) == {3}
    store.dispose()
