"""What ``dispatch check`` says about bounces: a mailbox URL that cannot be
read as one, and set-ups where reports would arrive but not be matched or
not be read at all."""

from __future__ import annotations

from collections.abc import Mapping

from dispatch.bounces.mailboxurl import parse_url
from dispatch.bounces.settings import MAILBOX_ENV, PASSWORD_ENV, bounce_settings
from dispatch.config import Settings
from dispatch.errors import MailboxError, Problem, Severity


def bounce_problems(settings: Settings, environ: Mapping[str, str]) -> list[Problem]:
    config = bounce_settings(settings.bounces, environ)
    problems: list[Problem] = []
    from_env = bool(environ.get(MAILBOX_ENV))
    where = "environment" if from_env else "dispatch.toml"
    field = MAILBOX_ENV if from_env else "bounces.mailbox"
    line = None if from_env else settings.line_of("bounces.mailbox")
    if config.mailbox:
        try:
            parsed = parse_url(config.mailbox, config.password, settings.root)
        except MailboxError as exc:
            # The message already says what was expected.
            problems.append(Problem(where, str(exc), line, field))
        else:
            if parsed.scheme != "maildir" and not parsed.password:
                problems.append(Problem("environment", "not set: the bounce mailbox "
                                        f"{parsed.shown} will refuse the login", None,
                                        PASSWORD_ENV, "the mailbox password",
                                        Severity.WARNING))
        if not settings.bounces.address:
            problems.append(Problem(
                "dispatch.toml", "not set: bounces come back to the sender's address, "
                "without a token naming the message, so most of them cannot be matched",
                settings.line_of("bounces"), "bounces.address",
                'a return-path address such as "bounces@example.org"', Severity.WARNING))
    elif settings.email.unsubscribe_mailto:
        problems.append(Problem(
            where, "[email] unsubscribe_mailto is set but no bounce mailbox is read: mail "
            "sent to it unsubscribes nobody", None, MAILBOX_ENV,
            "the mailbox that address delivers to", Severity.WARNING))
    return problems
