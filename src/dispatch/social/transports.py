"""How a composed post leaves: local capture, Mastodon, Bluesky, a webhook.

Each transport is built once per delivery run from its network table and
the environment, and shares one ``httpx.Client`` (which tests point at a
server on 127.0.0.1). All have the job engine's one transport shape: capture
is :mod:`dispatch.jobs.capture` with a JSON file per post; the API ones are
:class:`~dispatch.social.http.PostTransport` subclasses that write ``post()``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dispatch.http_api import PermanentFailure, RetryLater, check, error_text, request
from dispatch.jobs import capture
from dispatch.social.config import NetworkConfig
from dispatch.social.http import Delivered, MissingSecret, PostTransport, Transport
from dispatch.social.networks import transports
from dispatch.social.post import ComposedPost
from dispatch.social.queue import ClaimedPost, OutgoingPost

log = logging.getLogger(__name__)

MAX_THUMB_BYTES = 1_000_000  # app.bsky.embed.external thumb limit
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def _secret(config: NetworkConfig, environ: Mapping[str, str]) -> str:
    value = environ.get(config.secret_env, "")
    if not value:
        raise MissingSecret(f"social.{config.name}: environment variable {config.secret_env} "
                            "is not set; posts stay queued")
    return value


def as_json_file(message: OutgoingPost) -> capture.Captured:
    """``<network>/<slug>.json``: the post, its idempotency key and when it was captured."""
    claimed = message.claimed
    document = {**claimed.post.to_json(), "idempotency_key": claimed.idempotency_key,
                "captured_at": message.now.astimezone(UTC).isoformat()}
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return capture.Captured(f"{claimed.network}/{claimed.slug}.json", text.encode("utf-8"))


def capture_transport(directory: Path) -> capture.CaptureTransport[OutgoingPost]:
    """Each post as JSON under ``.dispatch/social/<network>/``, by the job
    engine's one capture mechanism (written whole, then renamed into place)."""
    return capture.CaptureTransport(directory, as_json_file)


class MastodonTransport(PostTransport):
    """``POST /api/v1/statuses`` with a deterministic ``Idempotency-Key``."""

    def __init__(self, config: NetworkConfig, client: httpx.Client,
                 environ: Mapping[str, str]) -> None:
        self.config, self.client = config, client
        self.token = _secret(config, environ)

    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered:
        post = claimed.post
        response = request(
            self.client, "POST", f"{self.config.base_url}/api/v1/statuses", now,
            f"mastodon {self.config.name}", (self.token,),
            headers={"Authorization": f"Bearer {self.token}",
                     "Idempotency-Key": claimed.idempotency_key},
            data={"status": post.text, "visibility": self.config.visibility,
                  "language": post.language},
            timeout=self.config.timeout,
        )
        body = response.json()
        return Delivered(str(body.get("id")), body.get("url"))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ROW_BITS = 30  # 20 bits in the microseconds + the 10-bit clock id


def tid(moment: datetime, row_id: int) -> str:
    """An atproto TID (record key) for queue row ``row_id`` created at ``moment``.

    A TID is 53 bits of microseconds and a 10-bit clock id. The low 30 bits
    of the whole are the row id itself (20 in the microseconds, 10 as the
    clock id) and the rest is ``moment``, so the key stays within ~1 s of
    when the row was queued and two rows never share one unless they were
    created in the same 2**20 µs slot (~1 s) *and* 2**30 rows apart. Rows of one pass share
    ``created_at``; with the clock id alone (``id & 0x3FF``) rows 1 and 1025
    collided, and a retry could find another article's post under "its" key.
    """
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    value = ((micros << 10) >> _ROW_BITS << _ROW_BITS) | (row_id & ((1 << _ROW_BITS) - 1))
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class BlueskyTransport(PostTransport):
    """createSession once per run, then createRecord per post.

    Bluesky has no idempotency header, so the record key is derived from the
    queue row: before a retry we ask whether that record already exists
    (the previous attempt may have landed with its answer lost) instead of
    posting twice, and count it sent only if it is this post (same text and
    card link).
    """

    def __init__(self, config: NetworkConfig, client: httpx.Client,
                 environ: Mapping[str, str]) -> None:
        self.config, self.client = config, client
        self.password = _secret(config, environ)
        self.session: dict[str, Any] | None = None
        self.dids: dict[str, str | None] = {}
        """Handles resolved in this run (None: the handle does not resolve)."""

    @property
    def _secrets(self) -> tuple[str, ...]:
        tokens = (self.session or {})
        return (self.password, str(tokens.get("accessJwt", "")),
                str(tokens.get("refreshJwt", "")))

    def _xrpc(self, method: str, name: str, now: datetime, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.session is not None:
            headers["Authorization"] = f"Bearer {self.session['accessJwt']}"
        return request(self.client, method, f"{self.config.base_url}/xrpc/{name}", now,
                       f"bluesky {self.config.name} {name}", self._secrets,
                       headers=headers, timeout=self.config.timeout, **kwargs)

    def _login(self, now: datetime) -> dict[str, Any]:
        if self.session is None:
            response = self._xrpc("POST", "com.atproto.server.createSession", now, json={
                "identifier": self.config.identifier, "password": self.password})
            self.session = response.json()
        return self.session

    def _thumb(self, url: str, now: datetime) -> dict[str, Any] | None:
        """Fetch and upload the card image; a card without one beats no post."""
        try:
            image = self.client.get(url, timeout=self.config.timeout, follow_redirects=True)
            kind = image.headers.get("content-type", "").split(";")[0].strip()
            if (not image.is_success or not kind.startswith("image/")
                    or len(image.content) > MAX_THUMB_BYTES):
                log.warning("card image %s skipped (HTTP %s, %s, %d bytes)", url,
                            image.status_code, kind or "no type", len(image.content))
                return None
            blob = self._xrpc("POST", "com.atproto.repo.uploadBlob", now, content=image.content,
                              headers={"Content-Type": kind})
            return dict(blob.json()["blob"])
        except (httpx.HTTPError, PermanentFailure, KeyError, ValueError) as exc:
            log.warning("card image %s skipped: %s", url, exc)
            return None

    def _earlier_attempt(self, did: str, rkey: str, claimed: ClaimedPost,
                         now: datetime) -> str | None:
        """The at:// URI if an earlier attempt of this post landed under ``rkey``."""
        what = f"bluesky {self.config.name} com.atproto.repo.getRecord"
        try:
            found = self.client.get(
                f"{self.config.base_url}/xrpc/com.atproto.repo.getRecord",
                params={"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey},
                timeout=self.config.timeout)
        except httpx.TransportError as exc:
            raise RetryLater(f"{what}: {type(exc).__name__}") from None
        if found.status_code in (400, 404) and "RecordNotFound" in error_text(found):
            return None
        check(found, now, what, self._secrets)  # 429/5xx: retry later; other 4xx: fail
        body = found.json()
        value = body.get("value") or {}
        post = claimed.post
        external = ((value.get("embed") or {}).get("external") or {}).get("uri")
        ours = value.get("text") == post.text and (
            post.card is None or external == post.card.uri)
        if not ours:
            # Never count someone else's post as this one, and never create
            # a second record over it: say so and let a person decide.
            raise PermanentFailure(f"{what}: record key {rkey} already holds a different "
                                   "post; this one was not posted")
        return str(body.get("uri") or f"at://{did}/app.bsky.feed.post/{rkey}")

    def _resolve(self, handle: str, now: datetime) -> str | None:
        """The DID of ``handle``, or None when no account has it.

        A handle that does not resolve leaves its text unlinked, as the
        Bluesky app does; a server that cannot answer now means "retry".
        """
        if handle not in self.dids:
            what = f"bluesky {self.config.name} com.atproto.identity.resolveHandle"
            try:
                answer = self.client.get(
                    f"{self.config.base_url}/xrpc/com.atproto.identity.resolveHandle",
                    params={"handle": handle}, timeout=self.config.timeout,
                    headers={"Authorization": f"Bearer {self._login(now)['accessJwt']}"})
            except httpx.TransportError as exc:
                raise RetryLater(f"{what}: {type(exc).__name__}") from None
            if answer.status_code in (400, 404):
                self.dids[handle] = None
            else:
                check(answer, now, what, self._secrets)
                did = answer.json().get("did")
                self.dids[handle] = did if isinstance(did, str) and did.startswith("did:") \
                    else None
        return self.dids[handle]

    def _facets(self, post: ComposedPost, now: datetime) -> list[dict[str, Any]]:
        facets = []
        for facet in post.facets:
            if facet.kind != "mention":
                facets.append(facet.as_bluesky())
            elif (did := self._resolve(facet.value, now)) is not None:
                facets.append(facet.as_bluesky(did))
            else:
                log.info("@%s does not resolve to a Bluesky account; left unlinked",
                         facet.value)
        return facets

    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered:
        session = self._login(now)
        did = session["did"]
        rkey = tid(claimed.created_at, claimed.id)
        web = f"https://bsky.app/profile/{did}/post/{rkey}"
        if claimed.attempts > 1:
            landed = self._earlier_attempt(did, rkey, claimed, now)
            if landed is not None:
                return Delivered(landed, web)
        post = claimed.post
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post", "text": post.text,
            "createdAt": now.astimezone(UTC).isoformat(timespec="milliseconds")
                            .replace("+00:00", "Z"),
            "langs": [post.language],
            "facets": self._facets(post, now),
        }
        if post.card is not None:
            external: dict[str, Any] = {"uri": post.card.uri, "title": post.card.title,
                                        "description": post.card.description}
            thumb = self._thumb(post.card.thumb, now) if post.card.thumb else None
            if thumb is not None:
                external["thumb"] = thumb
            record["embed"] = {"$type": "app.bsky.embed.external", "external": external}
        response = self._xrpc("POST", "com.atproto.repo.createRecord", now, json={
            "repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": record})
        return Delivered(response.json().get("uri"), web)


class WebhookTransport(PostTransport):
    """JSON POST signed with HMAC-SHA256 over ``"<timestamp>.<body>"``.

    The receiver recomputes the signature with the shared secret and rejects
    old timestamps; ``X-Dispatch-Delivery`` lets it drop duplicates.
    """

    def __init__(self, config: NetworkConfig, client: httpx.Client,
                 environ: Mapping[str, str]) -> None:
        self.config, self.client = config, client
        self.secret = _secret(config, environ)

    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered:
        body = json.dumps({"event": "social.post", "idempotency_key": claimed.idempotency_key,
                           **claimed.post.to_json()}, ensure_ascii=False).encode("utf-8")
        timestamp = str(int(now.timestamp()))
        signature = hmac.new(self.secret.encode("utf-8"), timestamp.encode() + b"." + body,
                             hashlib.sha256).hexdigest()
        response = request(
            self.client, "POST", self.config.base_url, now, f"webhook {self.config.name}",
            (self.secret,), content=body, timeout=self.config.timeout,
            headers={"Content-Type": "application/json",
                     "X-Dispatch-Event": "social.post",
                     "X-Dispatch-Delivery": claimed.idempotency_key,
                     "X-Dispatch-Timestamp": timestamp,
                     "X-Dispatch-Signature": f"sha256={signature}"})
        remote = response.headers.get("x-request-id")
        return Delivered(remote, None)


def build_transport(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
                    environ: Mapping[str, str]) -> Transport:
    """The table's transport, as its registry declaration builds it."""
    return transports()[config.transport].build(config, client, capture_dir, environ)
