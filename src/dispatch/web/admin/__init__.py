"""``/admin/``: the staff control room (login required on every route).

Pages: the calendar of what will go out (from the same planner as
``dispatch plan``), editions with their counts, send rate and controls,
subscribers and their history, social posts, the schedules file's health,
and test sends. Every route but the login page answers an anonymous request
with a redirect to the login page (or 403 for a POST); ``ADMIN_ROUTES``
lists them all so a test can walk every one.

Server-rendered HTML with one small stylesheet; nothing needs JavaScript.
A sending edition's page updates its counts with one small script (the
only one), which reads ``/admin/editions/<id>/progress``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.staff import LoginRefused, StaffSession, end_session, log_in, record_action
from dispatch.store.engine import Store
from dispatch.web.admin import auth, pages

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "admin"

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; "
                               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
}

_NAV = {"home": "/admin/", "calendar": "/admin/calendar", "editions": "/admin/editions",
        "edition": "/admin/editions", "confirm": "/admin/editions",
        "subscribers": "/admin/subscribers", "person": "/admin/subscribers",
        "social": "/admin/social", "schedules": "/admin/schedules",
        "test_send": "/admin/test-send"}

Page = Callable[["AdminApp", Request, StaffSession], Awaitable[Response]]


def wall_clock() -> datetime:
    """The web app is an edge of the program, like the CLI: the one place
    here that reads the clock. Tests pass their own."""
    return datetime.now(UTC)


class AdminApp:
    """What every admin page needs: settings, store, clock and templates."""

    def __init__(self, settings: Settings, store: Store,
                 clock: Callable[[], datetime] = wall_clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                               autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)

    def page(self, template: str, status: int = 200, *, session: StaffSession | None = None,
             headers: dict[str, str] | None = None, **values: Any) -> HTMLResponse:
        values.setdefault("nav", _NAV.get(template.removesuffix(".html")))
        html = self.env.get_template(template).render(
            site=self.settings.site, session=session, **values)
        return HTMLResponse(html, status_code=status, headers={**_HEADERS, **(headers or {})})

    def audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        with self.store.write() as conn:
            record_action(conn, self.clock(), actor, action, target, detail)


def guarded(app: AdminApp, page: Page) -> Callable[[Request], Awaitable[Response]]:
    """Refuse without a live session; check the CSRF token of every POST."""

    async def endpoint(request: Request) -> Response:
        session = await run_in_threadpool(auth.session_of, app.store, request, app.clock())
        if session is None:
            if request.method != "GET":
                return app.page("refused.html", 403,
                                message="You are not logged in (or your session ended).")
            return auth.to_login(request)
        if request.method == "POST":
            form = await auth.read_form(request)
            if form is None:
                return app.page("refused.html", 413, session=session,
                                message="That form was too big or not a form.")
            if not auth.csrf_ok(session.csrf, form.get("csrf")):
                return app.page("refused.html", 403, session=session,
                                message="The form had expired. Go back, reload, and try again.")
            request.state.form = form
        return await page(app, request, session)

    return endpoint


async def login_page(app: AdminApp, request: Request) -> Response:
    next_path = auth.safe_next(request.query_params.get("next"))
    if request.method == "GET":
        token = auth.new_login_token()
        page = app.page("login.html", next_path=next_path, csrf=token, error=None)
        page.set_cookie(auth.LOGIN_COOKIE, token, max_age=3600,
                            **auth.cookie_options())  # type: ignore[arg-type]
        return page
    form = await auth.read_form(request)
    expected = request.cookies.get(auth.LOGIN_COOKIE, "")
    if form is None:
        return app.page("refused.html", 413,
                        message="That login form was too big or not a form. Go back and "
                                "try again.")
    if not expected or not auth.csrf_ok(expected, form.get("csrf")):
        return app.page("refused.html", 403,
                        message="The login form had expired. Reload it and try again.")
    client = request.client.host if request.client else "unknown"
    try:
        token, _session = await run_in_threadpool(
            log_in, app.store, form.get("email", ""), form.get("password", ""), client,
            app.clock())
    except LoginRefused as exc:
        status = 429 if exc.retry_after else 401
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return app.page("login.html", status, headers=headers, next_path=next_path,
                        csrf=expected, error=str(exc))
    response = RedirectResponse(auth.safe_next(form.get("next")), status_code=303)
    response.set_cookie(auth.COOKIE, token, max_age=12 * 3600,
                        **auth.cookie_options())  # type: ignore[arg-type]
    response.delete_cookie(auth.LOGIN_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")
    return response


async def logout(app: AdminApp, request: Request, session: StaffSession) -> Response:
    token = request.cookies.get(auth.COOKIE, "")
    await run_in_threadpool(end_session, app.store, token, app.clock())
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")
    return response


async def stylesheet(request: Request) -> Response:
    css = (TEMPLATES / "admin.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css",
                    headers={"Cache-Control": "private, max-age=300"})


async def script(request: Request) -> Response:
    js = (TEMPLATES / "progress.js").read_text(encoding="utf-8")
    return Response(js, media_type="text/javascript",
                    headers={"Cache-Control": "private, max-age=300"})


ADMIN_ROUTES: tuple[tuple[str, tuple[str, ...], Page], ...] = (
    ("/admin/", ("GET",), pages.home),
    ("/admin/calendar", ("GET",), pages.calendar),
    ("/admin/editions", ("GET",), pages.editions),
    ("/admin/editions/{edition_id:path}/email", ("GET",), pages.edition_email),
    ("/admin/editions/{edition_id:path}/progress", ("GET",), pages.progress),
    ("/admin/editions/{edition_id:path}/control/{action}", ("GET", "POST"), pages.control),
    ("/admin/editions/{edition_id:path}", ("GET",), pages.edition),
    ("/admin/subscribers", ("GET",), pages.subscribers),
    ("/admin/subscribers/{subscriber_id:int}", ("GET",), pages.person),
    ("/admin/social", ("GET",), pages.social),
    ("/admin/schedules", ("GET",), pages.schedules),
    ("/admin/test-send", ("GET", "POST"), pages.test_send),
    ("/admin/logout", ("POST",), logout),
)
"""Every route behind the login, with its methods: the walk test reads this."""


def _bound(admin: AdminApp, handler: Callable[[AdminApp, Request], Awaitable[Response]]
           ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(admin, request)
    return endpoint


def routes(settings: Settings, store: Store) -> list[BaseRoute]:
    return admin_routes(AdminApp(settings, store))


def admin_routes(admin: AdminApp) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route("/admin/login", _bound(admin, login_page), methods=["GET", "POST"]),
        Route("/admin/admin.css", stylesheet, methods=["GET"]),
        Route("/admin/progress.js", script, methods=["GET"]),
    ]
    for path, methods, page in ADMIN_ROUTES:
        found.append(Route(path, guarded(admin, page), methods=list(methods)))
    return found
