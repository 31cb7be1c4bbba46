"""Read the bounce mailbox and act: ``dispatch bounces process`` and the
``bounces`` stage of every ``dispatch run`` pass.

Each message is classified (``classify.py``); a recognised one is matched
to its subscriber by the signed token, the decision is made by the policy
and written together with its evidence in ONE transaction, and only then is
the message moved to the processed folder. A crash between the two leaves
the message in place: it is read again next time, and the unique key on
(source, report id, address) makes the second reading change nothing.
``--dry-run`` classifies and decides the same way, and writes and moves
nothing. A message read and not recognised is remembered, not read again
(``--rescan`` forgets that, e.g. after ``[bounces] address`` was set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from dispatch.bounces.classify import Classified, Locals, classify
from dispatch.bounces.history import (
    Target,
    already_recorded,
    finding_event,
    forget_ignored,
    insert_event,
    remember_uid,
    resolve_links,
    resolve_rows,
    seen_uids,
    soft_count,
)
from dispatch.bounces.mailbox import MailItem, open_mailbox, parse_url
from dispatch.bounces.model import Finding
from dispatch.bounces.policy import Verdict, decide
from dispatch.bounces.settings import BounceSettings, bounce_settings, split_base
from dispatch.config import Settings
from dispatch.errors import MailboxError
from dispatch.store.engine import Store
from dispatch.subscribers.repository import set_status

log = logging.getLogger(__name__)
BATCH = 100
"""Reports decided in one transaction before their messages are moved."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One finding applied (or, in a dry run, that would be)."""

    source: str
    report_id: str
    format: str
    finding: Finding
    target: Target | None
    action: str
    changed: bool
    """Whether the subscriber's status changed (or would)."""
    repeated: bool = False
    """The same report was already recorded: nothing happened again."""


@dataclass(frozen=True)
class ProcessReport:
    mailbox: str
    read: int = 0
    untouched: int = 0
    decisions: tuple[Decision, ...] = field(default=())
    dry_run: bool = False

    @property
    def recognised(self) -> int:
        return self.read - self.untouched

    @property
    def changed(self) -> int:
        return sum(1 for d in self.decisions if d.changed)

    def summary(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        return (f"{self.mailbox}: {self.read} message(s) read, {self.recognised} recognised, "
                f"{self.untouched} left untouched; {verb} {self.changed} subscriber(s)")


def locals_for(settings: Settings, key: bytes) -> Locals:
    address = settings.bounces.address
    mailto = settings.email.unsubscribe_mailto
    return Locals(key, split_base(address)[0] if address else None,
                  mailto.rpartition("@")[0] if mailto else None)


def _pick(finding: Finding, targets: Sequence[Target]) -> Target | None:
    """The target a finding is about: the one whose address the report
    names, else the message the token names (VERP: the report came back to
    that message's own return path, whatever address it quotes)."""
    if not targets:
        return None
    wanted = finding.recipient.strip().lower()
    for target in targets:
        if wanted and target.email.lower() == wanted:
            return target
    return targets[0]


def apply_finding(conn: Connection, store: Store, config: BounceSettings, source: str,
                  report_id: str, finding: Finding, target: Target | None, now: datetime,
                  *, dry_run: bool = False) -> tuple[Verdict, bool]:
    """Decide and (unless ``dry_run``) record one finding in the caller's
    transaction. Returns the verdict and whether it was already recorded."""
    email = target.email if target else finding.recipient
    if already_recorded(conn, source, report_id, email):
        return Verdict(None, "no change: this report was already recorded"), True
    count = 0
    if target is not None and finding.kind.value == "soft":
        count = soft_count(conn, target.subscriber_id, now, config.soft_window,
                           target.outbox_id)
    verdict = decide(finding.kind, target.status if target else None, count,
                     config.options.soft_limit, config.options.soft_window)
    if dry_run:
        return verdict, False
    if not insert_event(conn, store, finding_event(source, report_id, finding, target, now,
                                                   verdict.action)):
        return Verdict(None, "no change: this report was already recorded"), True
    if verdict.status is not None and target is not None:
        set_status(conn, [target.subscriber_id], verdict.status, now,
                   f"{finding.kind.value}: {finding.status_code or ''} "
                   f"{finding.diagnostic or ''}".strip()[:500])
    return verdict, False


def apply_report(conn: Connection, store: Store, config: BounceSettings, source: str,
                 report: Classified, now: datetime, *, dry_run: bool = False
                 ) -> list[Decision]:
    """Every finding of one recognised report, in the caller's transaction."""
    decisions: list[Decision] = []
    targets = (resolve_rows(conn, report.tokens.bounce_rows)
               + resolve_rows(conn, report.tokens.unsubscribe_rows)
               + resolve_links(conn, report.tokens.links))
    for finding in report.findings:
        target = _pick(finding, targets)
        verdict, repeated = apply_finding(conn, store, config, source, report.report_id,
                                          finding, target, now, dry_run=dry_run)
        decisions.append(Decision(source, report.report_id, report.format, finding, target,
                                  verdict.action, verdict.status is not None, repeated))
    return decisions


def process_mailbox(settings: Settings, store: Store, key: bytes, now: datetime, *,
                    dry_run: bool = False, rescan: bool = False,
                    environ: Mapping[str, str] | None = None) -> ProcessReport:
    """Read every message of the configured mailbox not read before;
    MailboxError when there is none configured or it cannot be read.
    ``rescan`` first forgets the messages read and not recognised."""
    config = bounce_settings(settings.bounces, os.environ if environ is None else environ)
    if not config.mailbox:
        raise MailboxError("no bounce mailbox: set DISPATCH_BOUNCE_MAILBOX (or [bounces] "
                           "mailbox) to maildir:///path, imaps://user@host/INBOX or "
                           "pop3s://user@host")
    locals_ = locals_for(settings, key)
    if rescan and not dry_run:
        forget_ignored(store, parse_url(config.mailbox, config.password, settings.root).shown)
    box = open_mailbox(
        config.mailbox, config.password, config.options.processed_folder, settings.root,
        seen=lambda name: seen_uids(store, name),
        remember=lambda name, uid, state: remember_uid(store, name, uid, state, now))
    read = untouched = 0
    decisions: list[Decision] = []
    pending: list[tuple[MailItem, Classified]] = []

    def settle() -> None:
        # One transaction for a batch of reports, then their moves: a crash
        # in between leaves them in place, and reading them again changes
        # nothing (each report is recorded once).
        if not pending:
            return
        with (store.read() if dry_run else store.write()) as conn:
            for _, report in pending:
                decisions.extend(apply_report(conn, store, config, "mailbox", report, now,
                                              dry_run=dry_run))
        if not dry_run:
            for item, _ in pending:
                box.done(item, True)
        pending.clear()

    try:
        for item in box.items():
            read += 1
            report = classify(item.raw, locals_)
            if not report.recognised:
                untouched += 1
                if not dry_run:
                    box.done(item, False)
                continue
            pending.append((item, report))
            if len(pending) >= BATCH:
                settle()
        settle()
    except OSError as exc:
        raise MailboxError(f"{box.name}: {exc}") from None
    finally:
        box.close()
    return ProcessReport(box.name, read, untouched, tuple(decisions), dry_run)
