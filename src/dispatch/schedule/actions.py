"""What a firing does, behind one small protocol.

The scheduler decides *when*; rendering, queueing, social posts and feeds are
other stages' code. :class:`SiteActions` calls them (imported lazily, so
``dispatch check`` and ``dispatch schedules`` never load premailer);
:class:`RecordingActions` is the fake for fast unit tests.
The schedule's ``subject`` is a Jinja2 template handed to the renderer, which
renders it over the edition (articles, article, site). Every call is
idempotent downstream: editions on their deterministic id,
social posts on (article, network), feeds by rewriting the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dispatch.config import Settings
from dispatch.errors import ScheduleError
from dispatch.models import Article
from dispatch.schedule.model import Schedule
from dispatch.store.engine import Store

if TYPE_CHECKING:
    from dispatch.render.edition import Edition


class Actions(Protocol):
    def send_digest(self, schedule: Schedule, articles: Sequence[Article], edition_id: str,
                    fire_time: datetime, now: datetime) -> str: ...

    def send_article(self, schedule: Schedule, article: Article, edition_id: str,
                     now: datetime) -> str: ...

    def post_social(self, schedule: Schedule, articles: Sequence[Article],
                    now: datetime) -> str: ...

    def build_feeds(self, schedule: Schedule, articles: Sequence[Article],
                    now: datetime) -> str: ...

    def audience_size(self, audience: Sequence[str]) -> int: ...


def edition_subject(settings: Settings, schedule: Schedule, articles: Sequence[Article],
                    edition_id: str) -> str:
    """The subject line this schedule's edition of ``articles`` gets, rendered
    exactly as at send time (the whole edition, so its template is exercised
    too). Raises TemplateError as sending would."""
    return schedule_edition(settings, schedule, articles, edition_id).subject


def schedule_edition(settings: Settings, schedule: Schedule, articles: Sequence[Article],
                     edition_id: str) -> Edition:
    """This schedule's edition of ``articles``, rendered as at send time."""
    from dispatch.render import render_article_edition, render_digest_edition

    if schedule.kind == "article":
        return render_article_edition(settings, articles[0], edition_id,
                                      subject=schedule.subject, template=schedule.template)
    return render_digest_edition(settings, list(articles), edition_id, subject=schedule.subject,
                                 intro=schedule.intro, template=schedule.template)


class SiteActions:
    """The real thing: render with the email stage, queue in the outbox."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def send_digest(self, schedule: Schedule, articles: Sequence[Article], edition_id: str,
                    fire_time: datetime, now: datetime) -> str:
        from dispatch.outbox import queue_edition
        from dispatch.render import render_digest_edition

        edition = render_digest_edition(
            self.settings, list(articles), edition_id,
            subject=schedule.subject, intro=schedule.intro, template=schedule.template)
        queued = queue_edition(self.store, edition, schedule.audience, now)
        return f"edition {edition_id}: {queued.queued} recipient(s)" + (
            "" if queued.created else " (already queued)")

    def send_article(self, schedule: Schedule, article: Article, edition_id: str,
                     now: datetime) -> str:
        from dispatch.outbox import queue_edition
        from dispatch.render import render_article_edition

        edition = render_article_edition(
            self.settings, article, edition_id,
            subject=schedule.subject, template=schedule.template)
        queued = queue_edition(self.store, edition, schedule.audience, now)
        return f"edition {edition_id}: {queued.queued} recipient(s)" + (
            "" if queued.created else " (already queued)")

    def post_social(self, schedule: Schedule, articles: Sequence[Article], now: datetime) -> str:
        from dispatch.social import queue_social

        report = queue_social(self.store, self.settings, list(articles), now,
                              networks=list(schedule.networks) if schedule.networks else None)
        why = "; ".join(str(p) for p in report.problems)
        if report.problems and report.queued == 0:
            # Nothing went out because no post could be written: a failed
            # firing with the reason, not a success with a warning in a log.
            raise ScheduleError(f"no social post could be written: {why}")
        return report.summary + (f": {why}" if why else "")

    def build_feeds(self, schedule: Schedule, articles: Sequence[Article],
                    now: datetime) -> str:
        from dispatch.feeds import build_feeds

        return build_feeds(self.settings, list(articles), now).summary

    def audience_size(self, audience: Sequence[str]) -> int:
        from dispatch.outbox import audience_size

        return audience_size(self.store, audience)


@dataclass
class RecordingActions:
    """A fake that remembers every call, for unit tests of the engine."""

    calls: list[tuple[str, str, tuple[str, ...], datetime]] = field(default_factory=list)
    """(action, schedule id or "", article slugs, now)."""
    audience: int = 3
    fail_on: set[str] = field(default_factory=set)
    """Schedule ids whose action raises, to test failure recording."""

    def _record(self, action: str, schedule_id: str, articles: Sequence[Article],
                now: datetime) -> None:
        if schedule_id in self.fail_on:
            raise ScheduleError(f"{action} failed on purpose")
        self.calls.append((action, schedule_id, tuple(a.slug for a in articles), now))

    def send_digest(self, schedule: Schedule, articles: Sequence[Article], edition_id: str,
                    fire_time: datetime, now: datetime) -> str:
        self._record("digest", schedule.id, articles, now)
        return f"edition {edition_id}"

    def send_article(self, schedule: Schedule, article: Article, edition_id: str,
                     now: datetime) -> str:
        self._record("article", schedule.id, [article], now)
        return f"edition {edition_id}"

    def post_social(self, schedule: Schedule, articles: Sequence[Article], now: datetime) -> str:
        self._record("social", schedule.id, articles, now)
        return f"{len(articles)} post(s)"

    def build_feeds(self, schedule: Schedule, articles: Sequence[Article],
                    now: datetime) -> str:
        self._record("feeds", schedule.id, articles, now)
        return "feeds built"

    def audience_size(self, audience: Sequence[str]) -> int:
        return self.audience * len(audience)
