"""A planned firing in words and as JSON: shared by ``dispatch plan`` and the
staff calendar, so both say exactly the same thing about every firing."""

from __future__ import annotations

from datetime import datetime

from dispatch.config import Settings
from dispatch.errors import InputError
from dispatch.schedule.actions import edition_subject
from dispatch.schedule.decide import edition_id
from dispatch.schedule.engine import failure_reason
from dispatch.schedule.model import EMAIL_KINDS, Schedule
from dispatch.schedule.plan import PlannedFiring


def iso(instant: datetime, schedule: Schedule) -> str:
    return instant.astimezone(schedule.tz).isoformat()


def firing_subject(settings: Settings, p: PlannedFiring) -> str | None:
    """The subject line the firing's email would have, rendered as it will be,
    or why it cannot be rendered."""
    if p.verdict != "send" or p.schedule.kind not in EMAIL_KINDS or not p.articles:
        return None
    slug = p.articles[0].slug if p.schedule.kind == "article" else ""
    try:
        return edition_subject(settings, p.schedule, p.articles,
                               edition_id(p.schedule, p.fire_time, slug))
    except InputError as exc:
        return f"cannot be rendered: {failure_reason(exc)}"


def firing_json(p: PlannedFiring, subject: str | None) -> dict[str, object]:
    s = p.schedule
    out: dict[str, object] = {
        "schedule": s.id, "kind": s.kind, "timezone": s.tz.key,
        "fire_time": iso(p.fire_time, s), "starts_at": iso(p.starts_at, s),
        "action": p.verdict, "reason": p.reason or None,
        "window": None if p.window is None else {
            "start": iso(p.window[0], s), "end": iso(p.window[1], s),
            "articles": len(p.articles)},
        "articles": [{"slug": a.slug, "title": a.title} for a in p.articles],
    }
    if p.verdict == "send":
        sends: dict[str, object] = {}
        if s.kind in EMAIL_KINDS:
            sends = {"email": {"audience": list(s.audience), "recipients": p.audience_size,
                               "subject": subject}}
        elif s.kind == "social":
            sends = {"social": {"networks": list(s.networks or ()) or "all configured"}}
        else:
            sends = {"feeds": ["rss", "atom", "json"]}
        out["sends"] = sends
    return out
