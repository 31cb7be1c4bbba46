"""Email rendering: templates → inlined HTML + text → MIME, once per edition.

Public names::

    Recipient, Edition                     values crossing to the outbox
    render_article_edition()               single-article email, rendered once
    render_digest_edition()                digest, rendered once
    MessageFactory                         per-edition; build(recipient, date=) -> bytes
    build_naive_message()                  the per-recipient baseline (tests, bench)
    RecipientError > HeaderInjectionError  refused recipient values (InputError)
"""

from dispatch.render.edition import (
    Edition,
    Recipient,
    render_article_edition,
    render_digest_edition,
    render_for_recipient,
)
from dispatch.render.mime import (
    HeaderInjectionError,
    MessageFactory,
    RecipientError,
    assemble_naive,
    build_naive_message,
    check_recipient,
)
from dispatch.render.settings import EmailSettings, load_email_settings

__all__ = [
    "Edition",
    "EmailSettings",
    "HeaderInjectionError",
    "MessageFactory",
    "Recipient",
    "RecipientError",
    "assemble_naive",
    "build_naive_message",
    "check_recipient",
    "load_email_settings",
    "render_article_edition",
    "render_digest_edition",
    "render_for_recipient",
]
