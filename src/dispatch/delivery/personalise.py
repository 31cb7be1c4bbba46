"""Late personalisation: each row's message built at send time from the
edition stored once (never a rendered copy per recipient: an edition to
100,000 readers is one row of HTML, not 100,000).

Each worker parses a stored edition and builds its MessageFactory once, then
asks it for one message per recipient; nothing is re-rendered per person.
With ``[email] unsubscribe_mailto`` set, List-Unsubscribe also carries a
mailto: form, ``unsubscribe+TOKEN@…``, and with ``[bounces] address`` set the
envelope sender is ``bounces+TOKEN@…``: TOKEN names the outbox row
(``bounces/verp.py``), so a report or a mailto unsubscribe finds its message.
With ``[dkim]`` set, each message is signed last, on the bytes that are sent.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from dispatch.bounces.verp import make_token, tagged_address
from dispatch.config import Settings
from dispatch.dkim.sign import load_signer
from dispatch.errors import DeliveryError
from dispatch.outbox.lease import ClaimedRow
from dispatch.outbox.queue import edition_json
from dispatch.store.engine import Store
from dispatch.tokens import preferences_path
from dispatch.unsubscribe import (
    public_base,
    unsubscribe_path,
    unsubscribe_url,
    webview_path,
    webview_url,
)

if TYPE_CHECKING:  # rendering pulls in premailer: import it only when sending
    from dispatch.render import MessageFactory, Recipient


def recipient_for(settings: Settings, key: bytes, edition_id: str, subscriber_id: int,
                  email: str, name: str, row_id: int = 0) -> Recipient:
    """A recipient outside the outbox (a sample); row 0 names no message."""
    from dispatch.render import Recipient
    from dispatch.render.settings import load_email_settings

    url = unsubscribe_url(settings, key, subscriber_id, edition_id)
    return Recipient(
        email=email, name=name or None, unsubscribe_url=url,
        webview_url=webview_url(settings, edition_id),
        preferences_url=public_base(settings) + preferences_path(key, subscriber_id),
        unsubscribe_mailto=load_email_settings(settings).mailto_for(
            make_token(key, "unsubscribe", row_id)))


class MessageSource:
    """Messages for claimed rows; safe to share between sender threads."""

    def __init__(self, store: Store, settings: Settings, key: bytes) -> None:
        self.store = store
        self.settings = settings
        self.key = key
        self.factories: dict[str, MessageFactory] = {}
        self.lock = threading.Lock()
        self.base = public_base(settings)  # read once, not per message
        from dispatch.render.settings import load_email_settings

        self.email_settings = load_email_settings(settings)
        self.return_base = settings.bounces.address
        # Read once: a configured [dkim] without a usable key stops here,
        # before anything is sent, rather than sending unsigned mail.
        self.signer = load_signer(settings, os.environ)

    def envelope_sender(self, row: ClaimedRow) -> str:
        """The row's return path: ``bounces+TOKEN@…`` with ``[bounces] address``,
        else the sender's own address."""
        if self.return_base is None:
            return self.settings.sender.email
        return tagged_address(self.return_base, self.key, "bounce", row.id)

    def factory(self, edition_id: str) -> MessageFactory:
        # Read without the lock first: it is taken once per edition, not once
        # per message by every lane (a contended lock is a thread switch).
        found = self.factories.get(edition_id)
        if found is not None:
            return found
        with self.lock:
            found = self.factories.get(edition_id)
            if found is None:
                from dispatch.render import Edition, MessageFactory

                body = edition_json(self.store, edition_id)
                if body is None:
                    raise DeliveryError(f"edition {edition_id} is not stored")
                found = MessageFactory(Edition.from_json(body), self.settings)
                self.factories[edition_id] = found
            return found

    def build(self, row: ClaimedRow, date: datetime) -> bytes:
        from dispatch.render import Recipient

        path = unsubscribe_path(self.key, row.subscriber_id, row.edition_id)
        # The row's token is signed only when a mailto: form is configured.
        mailto = self.email_settings.mailto_for(make_token(self.key, "unsubscribe", row.id)) \
            if self.email_settings.unsubscribe_mailto else None
        recipient = Recipient(email=row.email, name=row.name or None,
                              unsubscribe_url=self.base + path,
                              webview_url=self.base + webview_path(row.edition_id),
                              preferences_url=self.base + preferences_path(
                                  self.key, row.subscriber_id),
                              unsubscribe_mailto=mailto)
        factory = self.factory(row.edition_id)
        if self.signer is None:
            return factory.build(recipient, date=date)
        return self.signer.build(factory, recipient, date)
