"""The ``bounces`` stage of a ``dispatch run`` pass: read the bounce mailbox
when ``DISPATCH_BOUNCE_MAILBOX`` (or ``[bounces] mailbox``) names one.

It runs before delivery, so an address found bounced or complained in this
pass is not mailed by the same pass. A mailbox that cannot be read is
reported and the other stages go on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dispatch.bounces.process import process_mailbox
from dispatch.bounces.settings import bounce_settings
from dispatch.errors import MailboxError, Problem, Severity
from dispatch.unsubscribe import secret_key

if TYPE_CHECKING:
    from dispatch.stage import PassContext, StageReport


def bounces_stage(ctx: PassContext) -> StageReport:
    from dispatch.stage import StageReport

    config = bounce_settings(ctx.settings.bounces, os.environ)
    if not config.mailbox:
        return StageReport("bounces", "no bounce mailbox configured")
    try:
        report = process_mailbox(ctx.settings, ctx.store, secret_key(ctx.settings), ctx.now)
    except MailboxError as exc:
        return StageReport("bounces", f"bounce mailbox not read: {exc}",
                           (Problem("bounce mailbox", str(exc), severity=Severity.WARNING),))
    return StageReport("bounces", report.summary())
