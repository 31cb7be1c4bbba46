"""What to do about each firing: pure functions that take ``now``.

Nothing here reads the clock or the database, so tests can walk a whole week
(or a DST night) by handing in times. ``engine.py`` feeds these with what the
store remembers and carries the decisions out.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dispatch import digest
from dispatch.models import Article
from dispatch.schedule.model import EMAIL_KINDS, Schedule, format_duration
from dispatch.schedule.triggers import due_firings

Verdict = Literal["run", "skip", "wait"]


@dataclass(frozen=True, slots=True)
class Decision:
    schedule_id: str
    fire_time: datetime
    verdict: Verdict
    reason: str = ""
    article: str = ""
    """The article slug for an on-publish firing, "" for a calendar one."""


def local(instant: datetime, schedule: Schedule) -> str:
    return instant.astimezone(schedule.tz).strftime("%Y-%m-%d %H:%M %Z")


def start_time(schedule: Schedule, fire: datetime) -> datetime:
    """When a firing may start: its time, or the end of quiet hours it falls in."""
    if schedule.quiet_hours is None or not schedule.sends:
        return fire
    return schedule.quiet_hours.release(fire, schedule.tz)


def judge(schedule: Schedule, fire: datetime, now: datetime) -> tuple[Verdict, str]:
    """Run, skip (and why), or wait for the end of quiet hours."""
    if not schedule.enabled:
        return "skip", "paused (enabled: false)"
    start = start_time(schedule, fire)
    if now < start:
        return "wait", f"quiet hours {schedule.quiet_hours}: starts at {local(start, schedule)}"
    late = now - start
    if late > schedule.max_lateness:
        return "skip", (f"missed by {format_duration(late)} (max_lateness "
                        f"{format_duration(schedule.max_lateness)}); not sent late")
    return "run", ""


def decide_timed(schedule: Schedule, since: datetime, now: datetime) -> list[Decision]:
    """Decisions for calendar firings in ``(since, now]``, oldest first.

    Missed firings coalesce: only the latest may run; the older ones are
    recorded as skipped, so downtime never turns into a burst of sends.
    """
    return decide_fires(schedule, due_firings(schedule, since, now), now)


def decide_fires(schedule: Schedule, fires: Sequence[datetime], now: datetime) -> list[Decision]:
    """:func:`decide_timed` for firing times already computed (all at or before ``now``)."""
    if not fires:
        return []
    latest = fires[-1]
    verdict, reason = judge(schedule, latest, now)
    if verdict == "wait":
        return [Decision(schedule.id, latest, "wait", reason)]
    out = []
    for fire in fires[:-1]:
        older_verdict, older_reason = judge(schedule, fire, now)
        if older_verdict == "run" or verdict == "run":
            older_reason = f"coalesced: the firing at {local(latest, schedule)} covers it"
        out.append(Decision(schedule.id, fire, "skip", older_reason))
    out.append(Decision(schedule.id, latest, verdict, reason))
    return out


def publish_fire_time(schedule: Schedule, seen_at: datetime) -> datetime:
    delay = getattr(schedule.trigger, "delay", timedelta(0))
    return seen_at + delay


def decide_published(schedule: Schedule, pending: Sequence[tuple[Article, datetime]],
                     now: datetime) -> list[Decision]:
    """One decision per newly published article whose delay has passed.

    ``pending`` pairs each not-yet-fired matching article with the moment it
    was first seen published. Each article is its own firing: none coalesce.
    """
    out: list[Decision] = []
    for article, seen_at in sorted(pending, key=lambda p: (p[1], p[0].slug)):
        fire = publish_fire_time(schedule, seen_at)
        if fire > now:
            continue
        verdict, reason = judge(schedule, fire, now)
        out.append(Decision(schedule.id, fire, verdict, reason, article.slug))
    return out


def matches(schedule: Schedule, article: Article) -> bool:
    """The schedule's filters: any listed category, any listed tag, email opt-out."""
    if schedule.kind in EMAIL_KINDS and not article.email:
        return False
    if schedule.categories:
        wanted = {c.casefold() for c in schedule.categories}
        if (article.category or "").casefold() not in wanted:
            return False
    if schedule.tags:
        wanted = {t.casefold() for t in schedule.tags}
        if not wanted & {t.casefold() for t in article.tags}:
            return False
    return True


def window_start(schedule: Schedule, last_end: datetime | None, base: datetime) -> datetime:
    """Where a digest's next window of articles begins: the end of its last
    sent window; before any, ``starts:`` if given, else when the schedule was
    first seen."""
    if last_end is not None:
        return last_end
    return schedule.starts if schedule.starts is not None else base


def digest_window(schedule: Schedule, window: tuple[datetime, datetime]) -> digest.Window:
    """``(start, end]`` as the digest rule reads it for ``schedule``: its
    ``starts:`` is a floor on the articles' dates in every window, and a
    window beginning at it holds an article dated exactly then (a day's
    midnight is the date of every article written with that date alone)."""
    start, end = window
    return digest.Window(start, end, includes_start=start == schedule.starts,
                         not_before=schedule.starts)


def select_articles(schedule: Schedule, published: Sequence[tuple[Article, datetime]],
                    window: tuple[datetime, datetime],
                    sent: Collection[str] = ()) -> list[Article]:
    """Matching articles that belong to the window ``(start, end]``, newest first, capped.

    The rule is :func:`dispatch.digest.choose`'s (the same as ``dispatch send
    --digest``): an article dated at or before ``end`` belongs if it is new
    to the schedule since ``start`` (dated after it, or first seen after it),
    so a firing run late after an outage includes what was dated before its
    slot but first seen during the outage. ``sent`` (slugs already in one of
    this schedule's editions) keeps such an article out of the next window.
    ``starts:`` bounds the articles' dates (:func:`digest_window`).
    """
    return digest.choose(published, digest_window(schedule, window),
                         wanted=functools.partial(matches, schedule), sent=sent,
                         limit=schedule.max_articles)


def since_text(start: datetime, schedule: Schedule) -> str:
    """"since Mon 2026-11-30 08:00", in the schedule's zone."""
    return f"since {start.astimezone(schedule.tz):%a %Y-%m-%d %H:%M}"


def too_few(schedule: Schedule, count: int, start: datetime) -> str:
    """Why a digest is skipped: "0 new articles since Mon 2026-11-30 08:00; …"."""
    noun = "article" if count == 1 else "articles"
    return (f"{count} new {noun} {since_text(start, schedule)}; "
            f"min_articles is {schedule.min_articles}")


def edition_id(schedule: Schedule, fire_time: datetime, article: str = "") -> str:
    """Deterministic from (schedule, firing): a re-run queues nothing twice.
    A digest's is :func:`dispatch.digest.edition_id`'s."""
    if article:
        return f"{schedule.id}-{article}"
    return digest.edition_id(digest.Firing(schedule.id, fire_time),
                             digest.Window(fire_time, fire_time), ())
