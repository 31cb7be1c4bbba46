"""The admin pages. Each takes (app, request, session) and returns a response;
reads run in a worker thread, since the store is synchronous."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from dispatch.errors import DispatchError, InputError
from dispatch.staff import StaffSession, audit_entries
from dispatch.web.admin import calendar as cal
from dispatch.web.admin.charts import Series, bar_chart

if TYPE_CHECKING:
    from dispatch.render import Edition
    from dispatch.schedule.plan import PlannedFiring
    from dispatch.staff.reports import EditionRow
    from dispatch.staff.testsend import TestOutcome
    from dispatch.web.admin import AdminApp

CONTROLS = {
    "pause": ("Pause", "Workers stop taking this edition's messages; those being sent finish."),
    "resume": ("Resume", "Sending continues; nobody who already got it gets it again."),
    "cancel": ("Cancel", "Everything not yet sent is cancelled. This cannot be undone."),
    "retry": ("Retry failed", "Failed messages to still-active readers are queued again."),
}

_LARGEST_ID = 2**63 - 1
"""The biggest integer SQLite and PostgreSQL's bigint store."""


async def home(app: AdminApp, request: Request, session: StaffSession) -> Response:
    def load() -> dict[str, Any]:
        from dispatch.staff.reports import edition_rows

        rows = edition_rows(app.store)[:5]
        return {"recent": rows, "log": audit_entries(app.store, limit=10)}

    return app.page("home.html", session=session, **await run_in_threadpool(load))


# --- calendar -------------------------------------------------------------------

def _planned(app: AdminApp, now: datetime, until: datetime
             ) -> tuple[list[PlannedFiring], object]:
    from dispatch.pipeline import load
    from dispatch.schedule.actions import SiteActions
    from dispatch.schedule.plan import plan
    from dispatch.schedule.sitefile import read_schedules

    schedule_set, _problems = read_schedules(app.settings, now, app.store)
    articles = load(app.settings, app.store).articles
    planned = plan(app.store, schedule_set, articles, now, until,
                   SiteActions(app.settings, app.store).audience_size)
    return planned, schedule_set


def _past(app: AdminApp, since: datetime, now: datetime, tz: ZoneInfo,
          schedule_set: object) -> list[cal.Entry]:
    from dispatch.schedule import firings
    from dispatch.schedule.model import ScheduleSet

    assert isinstance(schedule_set, ScheduleSet)
    by_id = {s.id: s for s in schedule_set.schedules}
    return [cal.past_entry(r, tz, by_id) for r in firings.runs(app.store, limit=5000)
            if since <= r.fire_time <= now]


def _day(text: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(text) if text else fallback
    except ValueError:
        return fallback


async def calendar(app: AdminApp, request: Request, session: StaffSession) -> Response:
    view = "week" if request.query_params.get("view") == "week" else "month"
    tz = app.settings.site.tz
    now = app.clock()
    today = now.astimezone(tz).date()

    def build() -> tuple[cal.Calendar, list[object]]:
        from dispatch.schedule.model import ScheduleSet

        planned, schedule_set = _planned(app, now, cal.horizon(now, tz))
        assert isinstance(schedule_set, ScheduleSet)
        upcoming = [cal.planned_entry(app.settings, p, tz) for p in planned]
        quiet: list[object] = [s for s in schedule_set.schedules
                               if s.quiet_hours is not None and s.enabled]
        if view == "week":
            start = _day(request.query_params.get("start"), today)
            monday = start - timedelta(days=start.weekday())
            first = datetime.combine(monday, time(0), tz)
            past = _past(app, first, now, tz, schedule_set)
            return cal.week_view(past + upcoming, schedule_set, monday, tz,
                                 f"Week of {monday:%d %B %Y}"), quiet
        first_day = today - timedelta(days=today.weekday())
        past = _past(app, datetime.combine(first_day, time(0), tz), now, tz, schedule_set)
        last_day = cal.horizon(now, tz).date()
        return cal.month_view(past + upcoming, schedule_set, first_day, last_day, today, tz,
                              "The next 30 days"), quiet

    built, quiet = await run_in_threadpool(build)
    return app.page("calendar.html", session=session, cal=built, view=view, today=today,
                    quiet=quiet,
                    tz=tz.key, prev_week=_shift(request, -7, today),
                    next_week=_shift(request, 7, today))


def _shift(request: Request, days: int, today: date) -> str:
    start = _day(request.query_params.get("start"), today)
    return (start + timedelta(days=days)).isoformat()


# --- editions -------------------------------------------------------------------

async def editions(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.staff.reports import edition_rows

    rows = await run_in_threadpool(edition_rows, app.store)
    return app.page("editions.html", session=session, rows=rows, tz=app.settings.site.tz)


@dataclass(frozen=True, slots=True)
class _EditionPage:
    row: EditionRow
    chart: str
    rate_table: list[tuple[str, int]]
    reasons: list[tuple[str, int]]


async def edition(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.staff.reports import edition_rows, failure_groups, send_rate

    edition_id = str(request.path_params["edition_id"])
    tz = app.settings.site.tz

    def load() -> _EditionPage | None:
        rows = edition_rows(app.store, edition_id=edition_id)
        if not rows:
            return None
        start, width, counts = send_rate(app.store, edition_id)
        labels = [f"{(start + width * i).astimezone(tz):%H:%M:%S}" for i in range(len(counts))]
        chart = bar_chart(f"Messages sent per {width.total_seconds():.0f} s",
                          labels, [Series("sent", tuple(counts), "sent")]) if counts else ""
        return _EditionPage(rows[0], chart, list(zip(labels, counts, strict=True)),
                            failure_groups(app.store, edition_id))

    found = await run_in_threadpool(load)
    if found is None:
        return app.page("refused.html", 404, session=session,
                        message=f"No edition {edition_id!r}.")
    row = found.row
    sending = row.status.state == "sending"
    return app.page("edition.html", session=session, row=row, chart=found.chart,
                    rate_table=found.rate_table, reasons=found.reasons, controls=CONTROLS,
                    live=sending, tz=tz)


async def progress(app: AdminApp, request: Request, session: StaffSession) -> Response:
    """An edition's counts as JSON, for the live progress script."""
    from dispatch.staff.reports import edition_rows

    rows = await run_in_threadpool(edition_rows, app.store,
                                   edition_id=str(request.path_params["edition_id"]))
    if not rows:
        return JSONResponse({"error": "no such edition"}, status_code=404)
    r = rows[0]
    s = r.status
    return JSONResponse({"state": str(s.state), "total": s.total, "sent": s.sent,
                         "pending": s.pending, "failed": s.failed, "bounced": r.bounced,
                         "unsubscribed": r.unsubscribed, "suppressed": s.suppressed,
                         "cancelled": s.cancelled}, headers={"Cache-Control": "no-store"})


async def edition_email(app: AdminApp, request: Request, session: StaffSession) -> Response:
    """The rendered email for the sandboxed frame: any state, neutral values."""
    from dispatch.outbox.queue import edition_json
    from dispatch.render import Edition
    from dispatch.web.webview import fill, neutral_values

    edition_id = str(request.path_params["edition_id"])
    body = await run_in_threadpool(edition_json, app.store, edition_id)
    if body is None:
        return HTMLResponse("no such edition", status_code=404)
    rendered = Edition.from_json(body)
    html = fill(rendered.html, neutral_values(app.settings, edition_id))
    # Shown inside the admin page: a sandbox with no scripts, no forms, and
    # no way to reach the admin session, whatever the email holds.
    return HTMLResponse(html, headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
                                   "style-src 'unsafe-inline'; frame-ancestors 'self'"})


async def control(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.outbox import cancel, pause, resume, retry_failed

    edition_id = str(request.path_params["edition_id"])
    action = str(request.path_params["action"])
    if action not in CONTROLS:
        return app.page("refused.html", 404, session=session, message="No such action.")
    if request.method == "GET":
        from dispatch.staff.reports import edition_rows

        # Asking "Pause?" about an edition that does not exist would only
        # fail one click later.
        if not await run_in_threadpool(edition_rows, app.store, edition_id=edition_id):
            return app.page("refused.html", 404, session=session,
                            message=f"No edition {edition_id!r}.")
        label, consequence = CONTROLS[action]
        return app.page("confirm.html", session=session, edition_id=edition_id, action=action,
                        label=label, consequence=consequence)
    run = {"pause": pause, "resume": resume, "cancel": cancel, "retry": retry_failed}[action]
    now = app.clock()
    try:
        result = await run_in_threadpool(run, app.store, edition_id, now)
    except DispatchError as exc:
        return app.page("refused.html", 409, session=session, message=str(exc))
    await run_in_threadpool(app.audit, session.email, f"edition {action}", edition_id,
                            f"result {result}")
    return RedirectResponse(f"/admin/editions/{edition_id}", status_code=303)


# --- subscribers ----------------------------------------------------------------

async def subscribers(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.staff.reports import find_people, list_growth
    from dispatch.subscribers import list_names

    query = request.query_params.get("q", "")[:320]
    now = app.clock()

    def load() -> dict[str, Any]:
        people = find_people(app.store, query) if query.strip() else []
        charts = []
        for name in list_names(app.store):
            weeks = list_growth(app.store, name, now)
            labels = [f"{w.week:%d %b}" for w in weeks]
            charts.append((name, bar_chart(
                f"List {name}: new, unsubscribed and bounced per week", labels,
                [Series("new", tuple(w.joined for w in weeks), "new"),
                 Series("unsubscribed", tuple(w.unsubscribed for w in weeks), "left"),
                 Series("bounced or complained", tuple(w.bounced for w in weeks), "bounced")]),
                weeks))
        return {"people": people, "charts": charts}

    return app.page("subscribers.html", session=session, query=query,
                    **await run_in_threadpool(load))


async def person(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.bounces.history import History, subscriber_history
    from dispatch.signup.consent import consents_of

    subscriber_id = int(request.path_params["subscriber_id"])
    if subscriber_id > _LARGEST_ID:
        # The database cannot even hold such a number: no such subscriber.
        return app.page("refused.html", 404, session=session, message="No such subscriber.")

    def load() -> tuple[History, list[str]] | None:
        who = subscriber_history(app.store, subscriber_id)
        if who is None:
            return None
        with app.store.read() as conn:
            consent = [c.describe() for c in consents_of(conn, who.subscriber_id)]
        return who, consent

    found = await run_in_threadpool(load)
    if found is None:
        return app.page("refused.html", 404, session=session, message="No such subscriber.")
    who, consent = found
    await run_in_threadpool(app.audit, session.email, "view subscriber", who.email)
    return app.page("person.html", session=session, who=who, consent=consent,
                    tz=app.settings.site.tz)


# --- social and schedules -------------------------------------------------------

async def social(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.staff.reports import social_rows

    rows = await run_in_threadpool(social_rows, app.store)
    networks = sorted({r.network for r in rows})
    return app.page("social.html", session=session, rows=rows, networks=networks,
                    tz=app.settings.site.tz)


async def schedules(app: AdminApp, request: Request, session: StaffSession) -> Response:
    from dispatch.schedule.sitefile import last_good_path, read_schedules, schedules_path

    def load() -> dict[str, Any]:
        schedule_set, problems = read_schedules(app.settings, app.clock(), app.store)
        errors = [p for p in problems if p.is_error]
        return {"schedules": schedule_set.schedules, "problems": [str(p) for p in problems],
                "valid": not errors, "path": schedules_path(app.settings).name,
                "fallback": bool(errors) and last_good_path(app.settings).exists()}

    return app.page("schedules.html", session=session, **await run_in_threadpool(load))


# --- test send ------------------------------------------------------------------

async def test_send(app: AdminApp, request: Request, session: StaffSession) -> Response:
    def choices() -> list[tuple[str, str]]:
        from dispatch.pipeline import load

        now = app.clock()
        published = [a for a in load(app.settings, app.store).articles
                     if a.is_published(now) and a.email]
        published.sort(key=lambda a: a.date, reverse=True)
        return [("digest", "The next digest")] + [(a.slug, a.title) for a in published[:50]]

    options = await run_in_threadpool(choices)
    if request.method == "GET":
        return app.page("test_send.html", session=session, options=options,
                        to=session.email, outcomes=None, error=None)
    form: dict[str, str] = request.state.form
    what, to = form.get("what", ""), form.get("to", "")
    try:
        subject, outcomes = await run_in_threadpool(_send_test, app, what, to)
    except InputError as exc:
        return app.page("test_send.html", 400, session=session, options=options, to=to,
                        outcomes=None, error=str(exc))
    await run_in_threadpool(app.audit, session.email, "test send", what,
                            ", ".join(o.address for o in outcomes))
    return app.page("test_send.html", session=session, options=options, to=to,
                    outcomes=outcomes, subject=subject, error=None)


def _send_test(app: AdminApp, what: str, to: str) -> tuple[str, list[TestOutcome]]:
    from dispatch.pipeline import load
    from dispatch.render import render_article_edition, render_digest_edition
    from dispatch.staff.testsend import send_test, test_addresses, test_edition

    addresses = test_addresses([to])
    now = app.clock()
    articles = [a for a in load(app.settings, app.store).articles
                if a.is_published(now) and a.email]
    if what == "digest":
        edition = _next_digest(app, now)
        if edition is None:
            recent = sorted(articles, key=lambda a: a.date, reverse=True)[:5]
            if not recent:
                raise InputError("there are no published articles for a digest")
            edition = render_digest_edition(app.settings, recent, "preview-digest")
    else:
        found = [a for a in articles if a.slug == what]
        if not found:
            raise InputError(f"no published article {what!r}")
        edition = render_article_edition(app.settings, found[0], f"{what}.preview")
    outcomes = send_test(app.settings, edition, addresses, now)
    return test_edition(edition).subject, list(outcomes)


def _next_digest(app: AdminApp, now: datetime) -> Edition | None:
    """The edition the next planned digest firing would send, if any."""
    from dispatch.render import render_digest_edition
    from dispatch.schedule.decide import edition_id

    planned, _set = _planned(app, now, cal.horizon(now, app.settings.site.tz))
    for p in planned:
        if p.schedule.kind == "digest" and p.verdict == "send" and p.articles:
            s = p.schedule
            return render_digest_edition(app.settings, list(p.articles),
                                         edition_id(s, p.fire_time, ""), subject=s.subject,
                                         intro=s.intro, template=s.template)
    return None
