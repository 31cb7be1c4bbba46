"""``/webhooks/{ses,postmark,mailgun,sendgrid}``: provider bounce, complaint
and unsubscribe events, authenticated as each provider documents
(``bounces/providers.py``), applied by the same policy as the bounce
mailbox and recorded with the same evidence.

Answers: 200 with a JSON summary; 400 for a malformed or stale request;
401 for a bad signature or credentials; 404 for a provider whose secret is
not configured; 409 for a request already accepted (a replay); 502 when an
SNS certificate or subscription URL cannot be fetched. Nothing changes
unless the answer is 200.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dispatch.bounces.history import Target, latest_row, resolve_email, resolve_rows
from dispatch.bounces.process import apply_finding
from dispatch.bounces.providers import (
    Accepted,
    ProviderEvent,
    WebhookRejected,
    check_basic_auth,
    check_fresh,
    mailgun_accept,
    postmark_events,
    postmark_record_id,
    sendgrid_accept,
    ses_events,
)
from dispatch.bounces.settings import BounceSettings, bounce_settings, split_base
from dispatch.bounces.sns import CertificateCache, SnsRejected, host_allowed, verify
from dispatch.bounces.verp import find_tokens
from dispatch.config import Settings
from dispatch.store.engine import Store
from dispatch.store.schema import webhook_receipts
from dispatch.unsubscribe import secret_key

MAX_BODY = 1024 * 1024
"""Provider batches are far smaller; anything larger is refused unread."""
Clock = Callable[[], datetime]
WINDOWED = ("ses", "mailgun", "sendgrid")
"""Providers whose requests carry a signed timestamp checked against the window."""


def wall_clock() -> datetime:
    """The web app reads the clock here; tests pass their own."""
    return datetime.now(UTC)


def fetch_https(url: str) -> bytes:
    """GET an SNS certificate or subscription URL (https, verified, short timeout)."""
    try:
        answer = httpx.get(url, timeout=10, follow_redirects=False)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise WebhookRejected(502, f"cannot fetch {url}: {exc}") from None
    return answer.content


class Webhooks:
    def __init__(self, settings: Settings, store: Store, clock: Clock,
                 environ: dict[str, str] | None = None, fetch: Callable[[str], bytes] = fetch_https
                 ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.environ = dict(os.environ if environ is None else environ)
        self.fetch = fetch
        self.certs = CertificateCache(fetch)

    @property
    def config(self) -> BounceSettings:
        return bounce_settings(self.settings.bounces, self.environ)

    # --- applying accepted events --------------------------------------------

    def _target(self, conn: Any, event: ProviderEvent, key: bytes) -> Target | None:
        base = self.settings.bounces.address
        if base and event.envelope_sender:
            tokens = find_tokens(key, "bounce", split_base(base)[0], [event.envelope_sender])
            rows = resolve_rows(conn, [t.row_id for t in tokens])
            if rows:
                return rows[0]
        person = resolve_email(conn, event.email)
        if person is None:
            return None
        # The provider names the address, not our message: attach the last
        # message sent to it, so repeated reports of one message count once.
        return latest_row(conn, person.subscriber_id) or person

    def apply(self, provider: str, accepted: Accepted) -> dict[str, Any]:
        config = self.config
        now = self.clock()
        key = secret_key(self.settings, self.environ)
        done: list[dict[str, Any]] = []
        with self.store.write() as conn:
            if provider in WINDOWED:
                # Older requests are refused as stale anyway: their nonces
                # need not be kept (Postmark's have no timestamp: kept).
                conn.execute(delete(webhook_receipts).where(
                    webhook_receipts.c.provider == provider,
                    webhook_receipts.c.received_at
                    < now - timedelta(seconds=2 * config.options.replay_window)))
            fresh = conn.execute(self.store.insert_ignore(webhook_receipts).values(
                provider=provider, nonce=accepted.nonce[:200], received_at=now)).rowcount
            if not fresh:
                raise WebhookRejected(409, "this request was already received (a replay)")
            for event in accepted.events:
                target = self._target(conn, event, key)
                verdict, repeated = apply_finding(conn, self.store, config, provider,
                                                  event.report_id, event.finding, target, now)
                done.append({"email": event.email, "kind": event.finding.kind.value,
                             "action": verdict.action, "repeated": repeated})
        return {"accepted": len(done), "events": done}

    # --- the four providers ----------------------------------------------------

    async def ses(self, request: Request) -> Response:
        body = await _body(request)
        message = _json_object(body)
        config = self.config
        now = self.clock()
        try:
            await run_in_threadpool(verify, message, config.options.ses_cert_hosts, self.certs,
                                    now)
        except SnsRejected as exc:
            raise WebhookRejected(401, f"SNS: {exc}") from None
        topics = config.options.ses_topics
        if topics and message.get("TopicArn") not in topics:
            raise WebhookRejected(403, "SNS topic not in [bounces] ses_topics")
        check_fresh(_iso(message.get("Timestamp")), now, config.options.replay_window)
        kind = message.get("Type")
        nonce = f"sns:{message.get('MessageId', '')}"
        if kind == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL", ""))
            if not host_allowed(url, config.options.ses_cert_hosts):
                raise WebhookRejected(400, "SubscribeURL is not on an allowed host")
            await run_in_threadpool(self.fetch, url)
            return JSONResponse(await run_in_threadpool(
                self.apply, "ses", Accepted(nonce, (), url)) | {"confirmed": True})
        if kind == "UnsubscribeConfirmation":
            return JSONResponse({"accepted": 0, "note": "unsubscribe confirmation ignored"})
        if kind != "Notification":
            raise WebhookRejected(400, f"unknown SNS message type {kind!r}")
        try:
            notification = json.loads(str(message.get("Message", "")))
        except ValueError:
            raise WebhookRejected(400, "the SNS Message is not SES JSON") from None
        events = tuple(ses_events(notification if isinstance(notification, dict) else {}))
        return JSONResponse(await run_in_threadpool(self.apply, "ses", Accepted(nonce, events)))

    async def postmark(self, request: Request) -> Response:
        config = self.config
        check_basic_auth(request.headers.get("authorization"), config.options.postmark_user,
                         config.postmark_password)
        payload = _json_object(await _body(request))
        events = tuple(postmark_events(payload))
        record = postmark_record_id(payload)
        if not record:
            raise WebhookRejected(400, "a Postmark record has an ID (or a MessageID and time)")
        nonce = f"postmark:{payload.get('RecordType', '')}:{record}"
        return JSONResponse(await run_in_threadpool(self.apply, "postmark",
                                                    Accepted(nonce, events)))

    async def mailgun(self, request: Request) -> Response:
        payload = _json_object(await _body(request))
        config = self.config
        accepted = mailgun_accept(payload, config.mailgun_key, self.clock(),
                                  config.options.replay_window)
        return JSONResponse(await run_in_threadpool(self.apply, "mailgun", accepted))

    async def sendgrid(self, request: Request) -> Response:
        body = await _body(request)
        config = self.config
        accepted = sendgrid_accept(request.headers, body, config.sendgrid_key, self.clock(),
                                   config.options.replay_window)
        return JSONResponse(await run_in_threadpool(self.apply, "sendgrid", accepted))


def _iso(value: object) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejected(400, "the Timestamp is not ISO 8601") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise WebhookRejected(400, "the body is not a JSON object")
    return value


async def _body(request: Request) -> bytes:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        raise WebhookRejected(413, "the body is too large")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY:
            raise WebhookRejected(413, "the body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def run(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except WebhookRejected as exc:
            headers = ({"WWW-Authenticate": 'Basic realm="dispatch webhooks"'}
                       if exc.status == 401 and request.url.path.endswith("/postmark") else {})
            return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=headers)
        return response
    return run


def routes(settings: Settings, store: Store, clock: Clock = wall_clock,
           environ: dict[str, str] | None = None,
           fetch: Callable[[str], bytes] = fetch_https) -> list[BaseRoute]:
    hooks = Webhooks(settings, store, clock, environ, fetch)
    return [
        Route("/webhooks/ses", _endpoint(hooks.ses), methods=["POST"]),
        Route("/webhooks/postmark", _endpoint(hooks.postmark), methods=["POST"]),
        Route("/webhooks/mailgun", _endpoint(hooks.mailgun), methods=["POST"]),
        Route("/webhooks/sendgrid", _endpoint(hooks.sendgrid), methods=["POST"]),
    ]
