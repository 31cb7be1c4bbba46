"""``/subscribe`` (the signup form, and its JSON twin) and ``/confirm/<token>``.

``GET /subscribe`` shows the form: address, optional name, and each list
marked ``public = true`` in ``[subscribers.lists]`` with its description.
``POST /subscribe`` takes that form (``application/x-www-form-urlencoded``)
or JSON (``{"email": …, "name": …, "lists": […]}``) from a site's own code.

A form POST is accepted only with this site's form token and CSRF cookie,
sent back no sooner than ``[subscribers] min_submit_seconds`` after the form
was shown; a form posted from another website (the README's embed snippet)
has neither, so it is answered with this form, filled in, to press again
here. A filled-in honeypot field gets the usual answer and nothing happens.
JSON needs no token: browsers cannot send it cross-site without a CORS
preflight, which this app never answers.

Every accepted request gets the same answer ("check your inbox") whether or
not the address is known, and the work that depends on the address happens
after the response is sent (see ``dispatch.signup.requests``).

``GET /confirm/<token>`` only shows a Confirm button, because mail scanners
open links; the ``POST`` (with a form token) confirms.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from datetime import datetime

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.signup.requests import (
    SignupRequest,
    confirm,
    look_up,
    process_request,
    record_request,
)
from dispatch.signup.tokens import read_confirm_token
from dispatch.store.address_identity import key_of
from dispatch.store.engine import Store
from dispatch.subscribers.options import ListOptions
from dispatch.unsubscribe import public_base, secret_key
from dispatch.values.address import InvalidAddress, name_problem, parse_address
from dispatch.web.pages import (
    TooLarge,
    csrf_cookie,
    first,
    form_age,
    hidden_token,
    is_json,
    layout,
    network,
    parse_form,
    parse_json,
    read_body,
    too_large,
    too_many,
    with_cookie,
)
from dispatch.web.unsubscribe import Clock, wall_clock

MAX_NAME = 100
CONSENT_TEXT = ("We will email you a link to confirm. We use your address only to send the "
                "lists you choose, and every email has links to change your choices or leave.")
HONEYPOT = "website"


def wording(lists: Mapping[str, ListOptions]) -> tuple[str, str]:
    """The words a reader agrees to and their version: a hash of exactly
    that text, so a changed description or sentence is a new version."""
    text = CONSENT_TEXT + "\n" + "\n".join(f"{name}: {opts.description}"
                                           for name, opts in lists.items())
    return text, "w" + hashlib.sha256(text.encode()).hexdigest()[:12]


def validate(fields: Mapping[str, object], public: Mapping[str, ListOptions]
             ) -> tuple[dict[str, str], str, str, tuple[str, ...]]:
    """(errors by field, address, name, lists) from submitted values."""
    errors: dict[str, str] = {}
    raw_email = fields.get("email")
    raw_name = fields.get("name") or ""
    raw_lists = fields.get("lists")
    email = ""
    if not isinstance(raw_email, str) or not raw_email.strip():
        errors["email"] = "Please enter your email address."
    else:
        try:
            email = parse_address(raw_email).text
        except InvalidAddress:
            errors["email"] = "That does not look like an email address (like ann@example.com)."
    name = raw_name.strip() if isinstance(raw_name, str) else ""
    if not isinstance(raw_name, str):
        errors["name"] = "The name must be text."
    elif name_problem(name) or any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in name):
        errors["name"] = "Please write your name on one line."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Please keep the name under {MAX_NAME} characters."
    if isinstance(raw_lists, str):
        raw_lists = [raw_lists]
    chosen: list[str] = []
    if raw_lists is None and len(public) == 1:
        chosen = list(public)
    elif not isinstance(raw_lists, list) or not all(isinstance(x, str) for x in raw_lists):
        errors["lists"] = "Please choose at least one list."
    else:
        chosen = [name for name in public if name in raw_lists]
        if not chosen or len(set(raw_lists)) != len(chosen):
            errors["lists"] = "Please choose at least one of the lists shown."
    return errors, email, name, tuple(chosen)


class SignupPages:
    def __init__(self, settings: Settings, store: Store, key: bytes, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.clock = clock
        self.base = public_base(settings)

    @property
    def public(self) -> dict[str, ListOptions]:
        return self.settings.subscribers.public_lists()

    def closed(self) -> HTMLResponse:
        return layout(self.settings, "Signup is closed",
                      "<p>There are no lists to sign up for at the moment.</p>", status=404)

    def _form(self, request: Request, values: Mapping[str, object], errors: Mapping[str, str],
              note: str = "", status: int = 200) -> Response:
        browser, new = csrf_cookie(request)
        email = html.escape(str(values.get("email") or ""))
        name = html.escape(str(values.get("name") or ""))
        chosen = values.get("lists")
        chosen = [chosen] if isinstance(chosen, str) else chosen
        if not isinstance(chosen, list):
            chosen = list(self.public) if len(self.public) == 1 else []

        def error(field: str) -> str:
            if field not in errors:
                return ""
            return f'<p class="error" id="{field}-error">{html.escape(errors[field])}</p>'

        def described(field: str) -> str:
            return f' aria-describedby="{field}-error" aria-invalid="true"' \
                if field in errors else ""

        boxes = []
        for i, (list_name, opts) in enumerate(self.public.items()):
            checked = " checked" if list_name in chosen else ""
            hint = (f'<br><span class="hint">{html.escape(opts.description)}</span>'
                    if opts.description else "")
            boxes.append(f'<div class="choice"><input type="checkbox" id="list-{i}" '
                         f'name="lists" value="{html.escape(list_name)}"{checked}>'
                         f'<label for="list-{i}">{html.escape(list_name)}{hint}</label></div>')
        body = (
            (f'<p class="note" role="status">{html.escape(note)}</p>' if note else "")
            + '<form method="post" action="/subscribe" novalidate>'
            + hidden_token(self.key, "subscribe", browser, self.clock().timestamp())
            + '<label for="email">Email address</label>'
            + f'<input type="email" id="email" name="email" value="{email}" required '
              f'autocomplete="email"{described("email")}>' + error("email")
            + '<label for="name">Name <span class="hint">(optional)</span></label>'
            + f'<input type="text" id="name" name="name" value="{name}" maxlength="{MAX_NAME}" '
              f'autocomplete="name"{described("name")}>' + error("name")
            + '<fieldset><legend>Lists</legend>' + "".join(boxes) + error("lists")
            + "</fieldset>"
            # Robots fill every field; people never see this one.
            + f'<div class="hp" aria-hidden="true"><label for="{HONEYPOT}">Leave this empty'
              f'</label><input type="text" id="{HONEYPOT}" name="{HONEYPOT}" tabindex="-1" '
              'autocomplete="off"></div>'
            + f"<p>{html.escape(CONSENT_TEXT)}</p>"
            + '<button type="submit">Subscribe</button></form>')
        return with_cookie(layout(self.settings, f"Subscribe to {self.settings.site.title}",
                                  body, status=status), request, browser, new)

    async def show(self, request: Request) -> Response:
        if not self.public:
            return self.closed()
        return self._form(request, {}, {})

    def _accepted(self) -> HTMLResponse:
        return layout(self.settings, "Check your inbox",
                      "<p>If this address can be subscribed, we have sent it an email with a "
                      "link. Open it and press Confirm to start receiving the lists you "
                      "chose. Nothing is sent until you confirm.</p>"
                      "<p>No email? Look in your spam folder, or try again in an hour.</p>")

    async def submit(self, request: Request) -> Response:
        if not self.public:
            return self.closed()
        try:
            body = await read_body(request)
        except TooLarge:
            if is_json(request):
                return JSONResponse({"error": "request too large"}, status_code=413)
            return too_large(self.settings)
        if is_json(request):
            return await self._submit_json(request, body)
        fields = parse_form(body)
        values: dict[str, object] = {"email": first(fields, "email"),
                                     "name": first(fields, "name"),
                                     "lists": fields.get("lists", [])}
        now = self.clock()
        age = form_age(self.key, request, {k: first(fields, k) for k in ("form_token",)},
                       "subscribe", now.timestamp())
        if age is None:
            return self._form(request, values, {},
                              "Please check your details and press Subscribe.")
        if first(fields, HONEYPOT):
            return self._accepted()  # a robot: same answer, nothing recorded
        if age < self.settings.subscribers.min_submit_seconds:
            return self._form(request, values, {},
                              "That was quicker than we expected. Please press Subscribe again.")
        errors, email, name, lists = validate(values, self.public)
        if errors:
            return self._form(request, values, errors, status=400)
        text, version = wording(self.public)
        signup = SignupRequest(email, key_of(email), name, lists, "form", version, text,
                               network(request))
        return await self._record(signup, now, self._accepted, lambda s: too_many(
            self.settings, s))

    async def _submit_json(self, request: Request, body: bytes) -> Response:
        data = parse_json(body)
        if data is None:
            return JSONResponse({"errors": {"body": "a JSON object"}}, status_code=400)
        errors, email, name, lists = validate(data, self.public)
        if errors:
            return JSONResponse({"errors": errors}, status_code=400)
        text, version = wording(self.public)
        signup = SignupRequest(email, key_of(email), name, lists, "api", version, text,
                               network(request))
        return await self._record(
            signup, self.clock(),
            lambda: JSONResponse({"status": "check your inbox"}, status_code=202),
            lambda s: JSONResponse({"error": "too many requests"}, status_code=429,
                                   headers={"Retry-After": str(s)}))

    async def _record(self, signup: SignupRequest, now: datetime, ok: object,
                      limited: object) -> Response:
        recorded = await run_in_threadpool(record_request, self.store, self.settings, signup,
                                           now)
        if recorded.request_id is None:
            return limited(recorded.retry_after)  # type: ignore[operator, no-any-return]
        response: Response = ok()  # type: ignore[operator]
        # Sent after the response: its timing cannot tell a known address
        # from a new one.
        response.background = BackgroundTask(process_request, self.store, self.settings,
                                             self.key, self.base, recorded.request_id,
                                             self.clock())
        return response

    # --- /confirm/<token> ----------------------------------------------------

    def _invalid(self) -> HTMLResponse:
        return layout(self.settings, "This link is not valid",
                      "<p>The link may have been cut short in your email program. Please "
                      "copy the whole link from the email, or "
                      '<a href="/subscribe">sign up again</a>.</p>', status=400)

    def _expired(self) -> HTMLResponse:
        return layout(self.settings, "This link has expired",
                      "<p>Confirmation links work for a limited time. Please "
                      '<a href="/subscribe">sign up again</a> and use the new link.</p>',
                      status=410)

    def _confirmed(self, lists: tuple[str, ...], already: bool) -> HTMLResponse:
        names = ", ".join(html.escape(n) for n in lists)
        title = "You are already subscribed" if already else "You are subscribed"
        return layout(self.settings, title,
                      f"<p>Thank you. You will receive: {names}.</p><p>Every email has links "
                      "to change your choices or to leave.</p>")

    async def confirm_page(self, request: Request, note: str = "") -> Response:
        parsed = read_confirm_token(self.key, str(request.path_params.get("token", "")))
        if parsed is None:
            return self._invalid()
        state = await run_in_threadpool(look_up, self.store, parsed[0], parsed[1], self.clock())
        if state.state == "expired":
            return self._expired()
        if state.state == "already":
            return self._confirmed(state.lists, True)
        browser, new = csrf_cookie(request)
        names = ", ".join(html.escape(n) for n in state.lists)
        body = ((f'<p class="note" role="status">{html.escape(note)}</p>' if note else "")
                + f"<p>Press the button to confirm your subscription to: {names}.</p>"
                + '<form method="post">'
                + hidden_token(self.key, "confirm", browser, self.clock().timestamp())
                + '<button type="submit">Confirm</button></form>')
        return with_cookie(layout(self.settings, "Confirm your subscription", body),
                           request, browser, new)

    async def confirm_post(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except TooLarge:
            return too_large(self.settings)
        parsed = read_confirm_token(self.key, str(request.path_params.get("token", "")))
        if parsed is None:
            return self._invalid()
        fields = parse_form(body)
        now = self.clock()
        if form_age(self.key, request, {"form_token": first(fields, "form_token")}, "confirm",
                    now.timestamp()) is None:
            return await self.confirm_page(request, "Please press Confirm once more.")
        state = await run_in_threadpool(confirm, self.store, self.key, parsed[0], parsed[1],
                                        now)
        if state.state == "expired":
            return self._expired()
        return self._confirmed(state.lists, state.state == "already")


def routes(settings: Settings, store: Store, clock: Clock = wall_clock) -> list[BaseRoute]:
    pages = SignupPages(settings, store, secret_key(settings), clock)
    return [
        Route("/subscribe", pages.show, methods=["GET"]),
        Route("/subscribe", pages.submit, methods=["POST"]),
        Route("/confirm/{token}", pages.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", pages.confirm_post, methods=["POST"]),
    ]
