"""Helpers for the signup, preference and archive tests: an app with a clock
the test moves, the confirmation emails in the capture maildir, the form
token and link out of a page or an email."""

from __future__ import annotations

import email
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from dispatch.config import Settings, load_settings
from dispatch.delivery import captured
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.web import archive, preferences, signup, unsubscribe


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def app_for(settings: Settings, store: Store, clock: Clock) -> Starlette:
    routes = [*signup.routes(settings, store, clock), *preferences.routes(settings, store, clock),
              *unsubscribe.routes(settings, store, clock), *archive.routes(settings, store)]
    return Starlette(routes=routes)


@contextmanager
def running_app(root: Path, database_url: str, start: datetime
                ) -> Iterator[tuple[Settings, Store, Clock, TestClient]]:
    """The site's reader-facing app over its store, with a clock at ``start``
    (the caller sets DISPATCH_SECRET_KEY)."""
    settings = load_settings(root)
    store = open_store(database_url)
    clock = Clock(start)
    with TestClient(app_for(settings, store, clock), base_url="https://testserver") as client:
        yield settings, store, clock, client
    store.dispose()


def maildir(root: Path) -> Path:
    return root / ".dispatch" / "maildir"


def messages(root: Path) -> list[EmailMessage]:
    found = []
    for path in captured(maildir(root)):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def confirmations(root: Path, to: str) -> list[EmailMessage]:
    return [m for m in messages(root) if str(m["Delivered-To"]).lower() == to.lower()
            and "confirm" in str(m["Subject"]).lower()]


def link_in(message: EmailMessage, path: str) -> str:
    """The first link to ``path`` in the message's text part."""
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    found = re.search(rf"https?://\S+{re.escape(path)}\S+", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group()


def raw_html(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def form_token(page: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def submit(client: TestClient, clock: Clock, data: dict[str, object], *,
           wait: float = 5) -> tuple[int, str]:
    """Show the form, let ``wait`` seconds pass, post it back."""
    page = client.get("/subscribe")
    assert page.status_code == 200
    clock.advance(seconds=wait)
    reply = client.post("/subscribe", data={**data, "form_token": form_token(page.text)})
    return reply.status_code, reply.text

