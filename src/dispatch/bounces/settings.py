"""``[bounces]`` in dispatch.toml: the return path, the bounce mailbox, the
suppression policy and the provider webhooks.

Secrets never come from the file: the mailbox password, the Postmark
webhook password and the Mailgun signing key are environment variables,
named here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from dispatch.errors import Problem
from dispatch.sections import CONFIG_FILE, SectionModel
from dispatch.sourcelines import SourceLines

MAILBOX_ENV = "DISPATCH_BOUNCE_MAILBOX"
PASSWORD_ENV = "DISPATCH_BOUNCE_PASSWORD"
POSTMARK_PASSWORD_ENV = "DISPATCH_POSTMARK_WEBHOOK_PASSWORD"
MAILGUN_KEY_ENV = "DISPATCH_MAILGUN_SIGNING_KEY"
SENDGRID_KEY_ENV = "DISPATCH_SENDGRID_PUBLIC_KEY"

TOKEN_MAX = 36
"""The longest VERP token: a 19-digit row id, a dash and a 16-letter MAC."""
LOCAL_PART_MAX = 64
"""RFC 5321's limit on the part of an address before the @."""
_BARE = re.compile(r"^([A-Za-z0-9.!#$%&'*/=?^_`{|}~-]+)"
                   r"@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")


def split_base(value: str) -> tuple[str, str]:
    """``bounces@example.org`` -> (``bounces``, ``example.org``), or ValueError.

    A ``+`` is refused in the base: it separates the token."""
    found = _BARE.match(value.strip())
    if found is None:
        raise ValueError('a bare address without "+", such as "bounces@example.org"')
    local, domain = found.groups()
    if len(local) + 1 + TOKEN_MAX > LOCAL_PART_MAX:
        raise ValueError(f"a local part of at most {LOCAL_PART_MAX - 1 - TOKEN_MAX} characters "
                         f"(the +TOKEN must fit in {LOCAL_PART_MAX})")
    return local, domain.lower()


class BounceOptions(SectionModel):
    address: str | None = None
    """VERP return path: ``bounces@example.org`` sends each message from
    ``bounces+TOKEN@example.org``; unset, the sender's address is the return path."""
    mailbox: str | None = Field(default=None, json_schema_extra={"env": MAILBOX_ENV,
                                                                 "secret": True})
    """Where bounces and complaints arrive: maildir:///path, imaps://user@host/INBOX or
    pop3s://user@host; the password in DISPATCH_BOUNCE_PASSWORD."""
    processed_folder: str = "dispatch-processed"
    """Maildir subfolder / IMAP folder that recognised reports are moved to."""
    soft_limit: int = Field(default=3, ge=1)
    """Soft bounces (4.x.x, delayed) within soft_window that suppress an address."""
    soft_window: int = Field(default=30, ge=1)
    """Days over which soft bounces are counted."""
    replay_window: int = Field(default=900, ge=30)
    """Seconds a signed webhook request stays acceptable; older ones are refused."""
    ses_cert_hosts: tuple[str, ...] = ("sns.*.amazonaws.com", "sns.*.amazonaws.com.cn")
    """Hosts (``*`` = one DNS label) an SNS SigningCertURL may point at."""
    ses_topics: tuple[str, ...] = ()
    """SNS topic ARNs accepted at /webhooks/ses; empty accepts any correctly signed topic."""
    postmark_user: str = "postmark"
    """Basic-auth user of /webhooks/postmark; the password in
    DISPATCH_POSTMARK_WEBHOOK_PASSWORD."""
    sendgrid_public_key: str | None = Field(default=None,
                                            json_schema_extra={"env": SENDGRID_KEY_ENV})
    """The Event Webhook's verification key (base64, as SendGrid shows it)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        split_base(value)
        return value.strip()

    @classmethod
    def cross_check(cls, raw: Mapping[str, Any], lines: SourceLines) -> list[Problem]:
        # Read with the rest of the file, not first when bounces are
        # processed, so that every mistake in it shows in one run.
        url = raw.get("mailbox")
        if not isinstance(url, str) or not url.strip():
            return []
        from dispatch.bounces.mailboxurl import url_problems

        return [Problem(CONFIG_FILE, message, lines.line(("bounces", "mailbox")),
                        "bounces.mailbox", expected) for message, expected in url_problems(url)]

    @field_validator("processed_folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", value):
            raise ValueError("a folder name of letters, digits, - and _")
        return value

    @field_validator("ses_cert_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("ses_topics", mode="before")
    @classmethod
    def _topics(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class BounceSettings:
    """``[bounces]`` with the environment applied: what the code runs with."""

    options: BounceOptions
    mailbox: str | None
    password: str | None
    postmark_password: str | None
    mailgun_key: str | None
    sendgrid_key: str | None

    @property
    def soft_window(self) -> timedelta:
        return timedelta(days=self.options.soft_window)


def bounce_settings(options: BounceOptions, environ: Mapping[str, str]) -> BounceSettings:
    return BounceSettings(
        options=options,
        mailbox=environ.get(MAILBOX_ENV) or options.mailbox,
        password=environ.get(PASSWORD_ENV) or None,
        postmark_password=environ.get(POSTMARK_PASSWORD_ENV) or None,
        mailgun_key=environ.get(MAILGUN_KEY_ENV) or None,
        sendgrid_key=environ.get(SENDGRID_KEY_ENV) or options.sendgrid_public_key,
    )
