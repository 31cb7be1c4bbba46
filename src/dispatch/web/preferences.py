"""``/preferences/<token>``: the reader's own page, linked from every email
footer next to Unsubscribe.

The token is signed for one subscriber (no expiry, like the unsubscribe
link: it arrives in every email). The page lets the reader join or leave the
public lists, change their name, or unsubscribe from everything. Every form
carries a form token and CSRF cookie (see ``dispatch.web.pages``); GET
changes nothing. An unsubscribed reader is pointed to the signup form: the
only way back is a new confirmed signup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.config import Settings
from dispatch.signup.preferences import Reader, reader, update_preferences
from dispatch.signup.tokens import read_preferences_token
from dispatch.store.engine import Store
from dispatch.unsubscribe import secret_key, unsubscribe
from dispatch.web.pages import (
    TooLarge,
    csrf_cookie,
    first,
    form_age,
    hidden_token,
    layout,
    network,
    parse_form,
    read_body,
    too_large,
    with_cookie,
)
from dispatch.web.signup import MAX_NAME, wording
from dispatch.web.unsubscribe import Clock, wall_clock


class PreferencePages:
    def __init__(self, settings: Settings, store: Store, key: bytes, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.clock = clock

    def _sid(self, request: Request) -> int | None:
        return read_preferences_token(self.key, str(request.path_params.get("token", "")))

    def _invalid(self) -> HTMLResponse:
        return layout(self.settings, "This link is not valid",
                      "<p>The link may have been cut short in your email program. Please use "
                      "the link at the bottom of the most recent email you received.</p>",
                      status=400)

    def _gone(self, title: str = "You are not subscribed") -> HTMLResponse:
        return layout(self.settings, title,
                      "<p>This address receives no emails from us. To subscribe again, use "
                      '<a href="/subscribe">the signup form</a>.</p>')

    def _page(self, request: Request, person: Reader, note: str = "",
              errors: Mapping[str, str] | None = None, status: int = 200) -> Response:
        errors = errors or {}
        browser, new = csrf_cookie(request)
        now = self.clock().timestamp()
        public = self.settings.subscribers.public_lists()
        boxes = []
        for i, (name, opts) in enumerate(public.items()):
            checked = " checked" if name in person.lists else ""
            hint = (f'<br><span class="hint">{html.escape(opts.description)}</span>'
                    if opts.description else "")
            boxes.append(f'<div class="choice"><input type="checkbox" id="list-{i}" '
                         f'name="lists" value="{html.escape(name)}"{checked}>'
                         f'<label for="list-{i}">{html.escape(name)}{hint}</label></div>')
        others = sorted(person.lists.difference(public))
        other_html = ("<p class=\"hint\">You also receive: "
                      + ", ".join(html.escape(n) for n in others)
                      + ". To stop those, unsubscribe from everything below.</p>"
                      if others else "")
        name_error = (f'<p class="error" id="name-error">{html.escape(errors["name"])}</p>'
                      if "name" in errors else "")
        invalid = ' aria-describedby="name-error" aria-invalid="true"' if name_error else ""
        body = (
            (f'<p class="note" role="status">{html.escape(note)}</p>' if note else "")
            + f"<p>Settings for <strong>{html.escape(person.email)}</strong>.</p>"
            + '<form method="post">'
            + hidden_token(self.key, "preferences", browser, now)
            + '<input type="hidden" name="action" value="save">'
            + '<label for="name">Name <span class="hint">(optional)</span></label>'
            + f'<input type="text" id="name" name="name" value="{html.escape(person.name)}" '
              f'maxlength="{MAX_NAME}" autocomplete="name"{invalid}>' + name_error
            + ('<fieldset><legend>Lists</legend>' + "".join(boxes) + "</fieldset>"
               if boxes else "")
            + other_html
            + '<button type="submit">Save my choices</button></form>'
            + "<h2>Leave</h2><p>Stop every email from us. Messages already on their way to "
              "you are stopped too.</p>"
            + '<form method="post">'
            + hidden_token(self.key, "preferences", browser, now)
            + '<input type="hidden" name="action" value="unsubscribe">'
            + '<button type="submit" class="secondary">Unsubscribe from everything</button>'
              "</form>")
        return with_cookie(layout(self.settings, "Your email preferences", body,
                                  status=status), request, browser, new)

    async def without_token(self, request: Request) -> Response:
        """Where the shared web view's preferences link points: it cannot carry
        anyone's token."""
        return layout(self.settings, "Your email preferences",
                      "<p>Use the <em>Preferences</em> link at the bottom of an email you "
                      "received: it is personal to your address. New here? "
                      '<a href="/subscribe">Subscribe</a>.</p>')

    async def _active_reader(self, request: Request) -> Reader | Response:
        """The link's reader if still subscribed, else the page to show instead."""
        sid = self._sid(request)
        if sid is None:
            return self._invalid()
        person = await run_in_threadpool(reader, self.store, sid)
        if person is None or person.status != "active":
            return self._gone()
        return person

    async def show(self, request: Request) -> Response:
        person = await self._active_reader(request)
        if isinstance(person, Response):
            return person
        return self._page(request, person)

    async def change(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except TooLarge:
            return too_large(self.settings)
        person = await self._active_reader(request)
        if isinstance(person, Response):
            return person
        sid = person.id
        fields = parse_form(body)
        now = self.clock()
        if form_age(self.key, request, {"form_token": first(fields, "form_token")},
                    "preferences", now.timestamp()) is None:
            return self._page(request, person, "Nothing was changed: please try again.")
        if first(fields, "action") == "unsubscribe":
            await run_in_threadpool(lambda: unsubscribe(self.store, sid, now,
                                                        reason="preference page"))
            return self._gone("You are unsubscribed")
        name = first(fields, "name").strip()
        if len(name) > MAX_NAME or any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c in
                                       "\u2028\u2029" for c in name):
            return self._page(request, person, errors={"name": "Please write your name on one "
                                                       f"line, under {MAX_NAME} characters."},
                              status=400)
        public = self.settings.subscribers.public_lists()
        chosen = set(fields.get("lists", []))
        updated = await run_in_threadpool(
            lambda: update_preferences(self.store, sid, name=name, public=list(public),
                                       chosen=chosen, now=now, network=network(request),
                                       wording=wording(public)))
        if updated is None:
            return self._gone()
        return self._page(request, updated, "Saved. Your choices apply from the next email.")


def routes(settings: Settings, store: Store, clock: Clock = wall_clock) -> list[BaseRoute]:
    pages = PreferencePages(settings, store, secret_key(settings), clock)
    return [
        Route("/preferences/", pages.without_token, methods=["GET"]),
        Route("/preferences/{token}", pages.show, methods=["GET"]),
        Route("/preferences/{token}", pages.change, methods=["POST"]),
    ]
