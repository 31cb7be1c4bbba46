"""Test sends: one edition to a few addresses staff give, outside the outbox.

A test is for looking at the real message in a real mailbox before readers
get it. So it goes only to the addresses given, its subject starts with
``[TEST]``, and it never touches the outbox: it is not the edition, it is
not counted, and sending the edition later is unaffected. Its unsubscribe
link names no subscriber, so pressing it in the test changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from dispatch.config import Settings
from dispatch.errors import InputError
from dispatch.render import Edition

TEST_PREFIX = "[TEST] "
MAX_TEST_ADDRESSES = 10
"""A test goes to a handful of people; more than this is a send, not a test."""


@dataclass(frozen=True, slots=True)
class TestOutcome:
    address: str
    ok: bool
    detail: str


def test_edition(edition: Edition) -> Edition:
    """The same edition marked as a test: ``[TEST]`` subject, its own id."""
    subject = edition.subject if edition.subject.startswith(TEST_PREFIX) else (
        TEST_PREFIX + edition.subject)
    return replace(edition, subject=subject, edition_id="test." + edition.edition_id)


def _address_parts(raw: Sequence[str]) -> list[str]:
    """Each address given: "a@x b@y", "a@x, b@y" and the display form
    "Ann <ann@example.com>" (whose space must not split it in two) all work."""
    from email.utils import getaddresses

    parts: list[str] = []
    for text in raw:
        if "<" not in text:
            parts.extend(text.replace(",", " ").split())
            continue
        for _name, address in getaddresses([text]):
            # getaddresses gives ("", "") for what it cannot read: report the
            # whole text rather than silently dropping it.
            parts.append(address or text)
    return parts


def test_addresses(raw: Sequence[str]) -> list[str]:
    """Parse and deduplicate the given addresses, or refuse them all at once."""
    from dispatch.values.address import InvalidAddress, normalise_email

    found: list[str] = []
    bad: list[str] = []
    for part in _address_parts(raw):
        try:
            address = normalise_email(part)
        except InvalidAddress as exc:
            bad.append(str(exc) if len(part) <= 200 else f"{part[:60]}…: not an address")
            continue
        if address.lower() not in {a.lower() for a in found}:
            found.append(address)
    if bad:
        raise InputError("not an email address: " + "; ".join(bad))
    if not found:
        raise InputError("give at least one address to send the test to")
    if len(found) > MAX_TEST_ADDRESSES:
        raise InputError(f"a test goes to at most {MAX_TEST_ADDRESSES} addresses "
                         f"({len(found)} given)")
    return found


def send_test(settings: Settings, edition: Edition, addresses: Sequence[str],
              now: datetime) -> list[TestOutcome]:
    """Build and send one message per address over the configured transport."""
    import os

    from dispatch.delivery.engine import make_transport
    from dispatch.delivery.personalise import recipient_for
    from dispatch.delivery.settings import load_delivery_settings
    from dispatch.delivery.transport import Envelope, TransportUnavailable
    from dispatch.dkim.sign import load_signer
    from dispatch.jobs.states import ResultClass
    from dispatch.render import MessageFactory
    from dispatch.unsubscribe import secret_key

    marked = test_edition(edition)
    factory = MessageFactory(marked, settings)
    # Signed like the real send, so a test shows whether DKIM passes.
    signer = load_signer(settings, os.environ)
    key = secret_key(settings)
    transport = make_transport(settings, load_delivery_settings(settings))
    outcomes: list[TestOutcome] = []
    try:
        conn = transport.open()
    except TransportUnavailable as exc:
        return [TestOutcome(a, False, f"not sent: {exc}") for a in addresses]
    try:
        for address in addresses:
            recipient = recipient_for(settings, key, marked.edition_id, 0, address, "")
            message = (factory.build(recipient, date=now) if signer is None
                       else signer.build(factory, recipient, now))
            result = conn.send(Envelope(settings.sender.email, address, message))
            ok = result.klass is ResultClass.DELIVERED
            outcomes.append(TestOutcome(address, ok, result.text or
                                        ("sent" if ok else str(result.klass))))
    finally:
        conn.close()
    return outcomes
