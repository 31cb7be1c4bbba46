"""Email rendering: templates → inlined HTML + text → MIME, once per edition.

Public names::

    Recipient, Edition                     values crossing to the outbox
    render_article_edition()               single-article email, rendered once
    render_digest_edition()                digest, rendered once
    MessageFactory                         per-edition; build(recipient, date=) -> bytes
    build_naive_message()                  the per-recipient baseline (tests, bench)
    RecipientError > HeaderInjectionError  refused recipient values (InputError)
"""

# Names are imported on first use (PEP 562): reading the settings models in
# this package must not load every module of it.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "Edition": "dispatch.render.edition",
    "Recipient": "dispatch.render.edition",
    "render_article_edition": "dispatch.render.edition",
    "render_digest_edition": "dispatch.render.edition",
    "render_for_recipient": "dispatch.render.edition",
    "HeaderInjectionError": "dispatch.render.mime",
    "MessageFactory": "dispatch.render.mime",
    "RecipientError": "dispatch.render.mime",
    "assemble_naive": "dispatch.render.mime",
    "build_naive_message": "dispatch.render.mime",
    "check_recipient": "dispatch.render.mime",
    "EmailSettings": "dispatch.render.settings",
    "load_email_settings": "dispatch.render.settings",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # Kept as a module attribute, so the next lookup does not come here: a
    # sender's per-message "from dispatch.render import Recipient" cost 2 us.
    globals()[name] = value
    return value
