"""Helpers for the scheduler tests: articles, schedules and a controllable clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dispatch.models import Article
from dispatch.schedule.actions import RecordingActions
from dispatch.schedule.engine import FiringReport, tick
from dispatch.schedule.model import ScheduleSet
from dispatch.schedule.spec import parse_schedules
from dispatch.store.articles import record_publications
from dispatch.store.engine import Store


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def article(slug: str, date: datetime, *, category: str | None = None,
            tags: Sequence[str] = (), email: bool = True) -> Article:
    return Article(
        slug=slug, source=f"content/{slug}.md", title=slug.replace("-", " ").title(), date=date,
        summary=f"About {slug}.", body_markdown="Body.", body_html="<p>Body.</p>",
        sources_html="", sources=(), url=f"https://journal.test/{slug}/",
        content_hash=f"hash-{slug}", reading_minutes=1, excerpt="Body.", category=category,
        tags=tuple(tags), email=email)


def schedules(text: str, timezone: str = "Europe/London") -> ScheduleSet:
    parsed, problems = parse_schedules(text, timezone)
    errors = [str(p) for p in problems if p.is_error]
    assert not errors, errors
    return parsed


@dataclass
class Written:
    """An article file as it appears on disk at ``created`` (its date may be later)."""

    article: Article
    created: datetime


@dataclass
class Simulation:
    """Drive the scheduler through time the way ``dispatch run`` does each pass:
    record what is published at ``now``, then tick. No sleeping, no real clock."""

    store: Store
    schedules: ScheduleSet
    files: list[Written] = field(default_factory=list)
    actions: RecordingActions = field(default_factory=RecordingActions)
    reports: list[FiringReport] = field(default_factory=list)

    def visible(self, now: datetime) -> list[Article]:
        return [w.article for w in self.files if w.created <= now]

    def step(self, now: datetime) -> list[FiringReport]:
        articles = self.visible(now)
        record_publications(self.store, articles, now)
        found = tick(self.store, self.schedules, articles, now, self.actions)
        self.reports.extend(found)
        return found

    def run(self, start: datetime, end: datetime, every: timedelta) -> None:
        now = start
        while now <= end:
            self.step(now)
            now += every

    def calls(self, action: str | None = None) -> list[tuple[str, str, tuple[str, ...], datetime]]:
        return [c for c in self.actions.calls if action is None or c[0] == action]
