"""Each transport against a server on 127.0.0.1 that implements the real
endpoint's contract: status codes, JSON bodies and headers as the networks
document them. Assertions are on what arrived at the server."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import regex
from tests.sitekit import build_site

from dispatch.config import Settings
from dispatch.content.loader import load_site
from dispatch.social import deliver_social_posts, queue_social_posts
from dispatch.social import queue as q
from dispatch.social.config import load_social
from dispatch.social.post import ComposedPost
from dispatch.social.transports import MastodonTransport, tid
from dispatch.store.engine import Store, open_store

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOKEN = "mastodon-token-s3cret"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
HOOK_SECRET = "hook-secret-value"
ENV = {"DISPATCH_MASTODON_TOKEN": TOKEN, "DISPATCH_BLUESKY_PASSWORD": APP_PASSWORD,
       "DISPATCH_WEBHOOK_SECRET": HOOK_SECRET}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9"

Reply = tuple[int, dict[str, str], Any]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class FakeNetwork:
    """Routes plus a script of forced replies (e.g. a 429) consumed first."""

    routes: dict[tuple[str, str], Callable[[Seen], Reply]] = field(default_factory=dict)
    script: dict[str, list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base: str = ""

    def handle(self, seen: Seen) -> Reply:
        self.seen.append(seen)
        forced = self.script.get(seen.path)
        if forced:
            return forced.pop(0)
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return 404, {}, {"error": "Not found"}
        return route(seen)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@pytest.fixture
def server() -> Iterator[FakeNetwork]:
    fake = FakeNetwork()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            size = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, parts.path, parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(size))
            status, headers, body = fake.handle(seen)
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


# --- the networks' contracts -------------------------------------------------

def mastodon_api(fake: FakeNetwork, max_characters: int = 500) -> None:
    """POST /api/v1/statuses as documented: bearer token, form fields,
    Idempotency-Key remembered, 422 when the text is over the server's limit."""
    statuses: dict[str, dict[str, Any]] = {}

    def create(seen: Seen) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"error": "The access token is invalid"}
        form = seen.form()
        key = seen.headers.get("idempotency-key")
        if key and key in statuses:
            return 200, {}, statuses[key]
        text = form.get("status", "")
        counted = regex.sub(r"https?://\S+", "x" * 23, text)
        if len(regex.findall(r"\X", counted)) > max_characters:
            return 422, {}, {"error": f"Validation failed: Text character limit of "
                                      f"{max_characters} exceeded"}
        number = str(109000 + len(statuses))
        status = {"id": number, "url": f"{fake.base}/@clinic/{number}", "content": text,
                  "visibility": form.get("visibility"), "language": form.get("language")}
        statuses[key or number] = status
        return 200, {}, status

    fake.routes[("POST", "/api/v1/statuses")] = create


def bluesky_api(fake: FakeNetwork) -> dict[str, dict[str, Any]]:
    """createSession, uploadBlob, createRecord, getRecord as the PDS answers them."""
    did = "did:plc:clinic123"
    records: dict[str, dict[str, Any]] = {}

    def authorised(seen: Seen) -> bool:
        return seen.headers.get("authorization") == "Bearer access-jwt-1"

    def session(seen: Seen) -> Reply:
        body = seen.json()
        if body != {"identifier": "clinic.bsky.social", "password": APP_PASSWORD}:
            return 401, {}, {"error": "AuthenticationRequired",
                             "message": "Invalid identifier or password"}
        return 200, {}, {"did": did, "handle": "clinic.bsky.social",
                         "accessJwt": "access-jwt-1", "refreshJwt": "refresh-jwt-1"}

    def upload(seen: Seen) -> Reply:
        if not authorised(seen):
            return 401, {}, {"error": "AuthMissing", "message": "Authentication Required"}
        return 200, {}, {"blob": {"$type": "blob", "ref": {"$link": "bafkreithumb"},
                                  "mimeType": seen.headers["content-type"],
                                  "size": len(seen.body)}}

    def create(seen: Seen) -> Reply:
        if not authorised(seen):
            return 401, {}, {"error": "AuthMissing", "message": "Authentication Required"}
        body = seen.json()
        record = body["record"]
        if body["repo"] != did or body["collection"] != "app.bsky.feed.post":
            return 400, {}, {"error": "InvalidRequest", "message": "Invalid repo or collection"}
        if len(regex.findall(r"\X", record["text"])) > 300:
            return 400, {}, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post "
                             "record: Record/text must not be longer than 300 graphemes"}
        if body["rkey"] in records:
            return 400, {}, {"error": "InvalidRequest", "message": "Record already exists"}
        records[body["rkey"]] = record
        return 200, {}, {"uri": f"at://{did}/app.bsky.feed.post/{body['rkey']}",
                         "cid": "bafyreirecord"}

    def get(seen: Seen) -> Reply:
        rkey = seen.query["rkey"][0]
        if rkey not in records:
            return 400, {}, {"error": "RecordNotFound",
                             "message": f"Could not locate record: {rkey}"}
        return 200, {}, {"uri": f"at://{did}/app.bsky.feed.post/{rkey}", "cid": "bafyreirecord",
                         "value": records[rkey]}

    def resolve(seen: Seen) -> Reply:
        if not authorised(seen):
            return 401, {}, {"error": "AuthMissing", "message": "Authentication Required"}
        handle = seen.query["handle"][0]
        if handle not in HANDLES:
            return 400, {}, {"error": "InvalidRequest", "message": "Unable to resolve handle"}
        return 200, {}, {"did": HANDLES[handle]}

    fake.routes[("GET", "/xrpc/com.atproto.identity.resolveHandle")] = resolve
    fake.routes[("POST", "/xrpc/com.atproto.server.createSession")] = session
    fake.routes[("POST", "/xrpc/com.atproto.repo.uploadBlob")] = upload
    fake.routes[("POST", "/xrpc/com.atproto.repo.createRecord")] = create
    fake.routes[("GET", "/xrpc/com.atproto.repo.getRecord")] = get
    fake.routes[("GET", "/images/sleep.jpg")] = lambda seen: (
        200, {"Content-Type": "image/jpeg"}, JPEG)
    return records


HANDLES = {"ann.bsky.social": "did:plc:ann456"}


def webhook_api(fake: FakeNetwork) -> None:
    def receive(seen: Seen) -> Reply:
        timestamp = seen.headers["x-dispatch-timestamp"]
        expected = hmac.new(HOOK_SECRET.encode(), timestamp.encode() + b"." + seen.body,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(seen.headers["x-dispatch-signature"], f"sha256={expected}"):
            return 401, {}, {"error": "bad signature"}
        return 202, {"X-Request-Id": "hook-1"}, {"ok": True}

    fake.routes[("POST", "/hook")] = receive


# --- the site ------------------------------------------------------------------

FRONT = """\
    title: Sleep and blood pressure
    date: 2026-10-06T07:00:00
    summary: Short sleep is linked to higher blood pressure.
    tags: [sleep, blood pressure]
    image: /images/sleep.jpg
    image_alt: A clock
"""
BODY = ("Intro.\n\n## Key takeaway\n\nSchlüssel: sleep 7 hours 🔑 日本語. "
        "Keep a fixed wake-up time.\n")


def bluesky_table(server: FakeNetwork) -> str:
    return (f'[social.bluesky]\ntransport = "bluesky"\nurl = "{server.base}"\n'
            'handle = "clinic.bsky.social"\n')


def webhook_table(server: FakeNetwork) -> str:
    return f'[social.linkedin]\ntransport = "webhook"\nurl = "{server.base}/hook"\n'


def make_site(root: Path, database_url: str, base: str, tables: str, body: str = BODY
              ) -> tuple[Settings, Store]:
    # The site lives on the fake server too, so the card image can be fetched.
    settings, store = build_site(root, toml="\n[social]\nutm = \"\"\n" + tables, url=base,
                                 articles={"sleep.md": (FRONT, body)},
                                 database_url=database_url)
    queue_social_posts(store, settings, load_site(settings).articles, NOW)
    return settings, store


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def deliver(settings: Settings, store: Store, now: datetime = NOW,
            env: dict[str, str] | None = None) -> Any:
    with httpx.Client(timeout=5) as client:
        return deliver_social_posts(store, settings, now, client=client,
                                    environ=ENV if env is None else env)


def test_mastodon_posts_once_with_an_idempotency_key_and_honours_retry_after(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    mastodon_api(server)
    settings, store = make_site(site_root, database, server.base, f"""
[social.mastodon]
transport = "mastodon"
url = "{server.base}"
""")
    server.script["/api/v1/statuses"] = [(429, {"Retry-After": "90"},
                                          {"error": "Too many requests"})]
    first = deliver(settings, store)
    assert (first.retried, first.sent) == (1, 0)
    (row,) = q.posts_for(store)
    assert row["status"] == "queued" and row["available_at"] == NOW + timedelta(seconds=90)
    assert "429" in row["last_error"]

    assert deliver(settings, store, NOW + timedelta(seconds=89)).claimed == 0  # not yet due
    second = deliver(settings, store, NOW + timedelta(seconds=90))
    assert second.sent == 1
    attempts = server.calls("/api/v1/statuses")
    assert len(attempts) == 2
    keys = {a.headers["idempotency-key"] for a in attempts}
    assert len(keys) == 1 and keys.pop().startswith("dispatch:sleep:mastodon:")
    form = attempts[1].form()
    assert form["status"].startswith("Schlüssel: sleep 7 hours 🔑 日本語. Keep a fixed")
    assert form["status"].endswith(f"{settings.site.url}/sleep/\n#sleep #BloodPressure")
    assert (form["visibility"], form["language"]) == ("public", "en")
    (row,) = q.posts_for(store)
    assert row["status"] == "sent" and row["remote_url"] == f"{server.base}/@clinic/109000"


def test_mastodon_4xx_is_permanent_with_the_networks_message(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    mastodon_api(server, max_characters=40)  # a server with a smaller limit than configured
    settings, store = make_site(site_root, database, server.base, f"""
[social.mastodon]
transport = "mastodon"
url = "{server.base}"
""")
    report = deliver(settings, store)
    assert (report.failed, report.retried) == (1, 0)
    (row,) = q.posts_for(store)
    assert row["status"] == "failed"
    assert "HTTP 422: Validation failed: Text character limit of 40 exceeded" in row["last_error"]
    assert deliver(settings, store, NOW + timedelta(days=1)).claimed == 0


def test_tokens_never_reach_errors_or_logs(site_root: Path, database: str, server: FakeNetwork,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.script["/api/v1/statuses"] = [
        (503, {}, {"error": f"upstream rejected Bearer {TOKEN}"}),
        (401, {}, {"error": f"The access token {TOKEN} is invalid"}),
    ]
    settings, store = make_site(site_root, database, server.base, f"""
[social.mastodon]
transport = "mastodon"
url = "{server.base}"
""")
    deliver(settings, store)
    deliver(settings, store, NOW + timedelta(hours=1))
    (row,) = q.posts_for(store)
    assert row["status"] == "failed" and "***" in row["last_error"]
    assert TOKEN not in row["last_error"]
    assert TOKEN not in caplog.text and "***" in caplog.text


def test_missing_secret_leaves_posts_queued(site_root: Path, database: str,
                                            server: FakeNetwork) -> None:
    settings, store = make_site(site_root, database, server.base, f"""
[social.mastodon]
transport = "mastodon"
url = "{server.base}"
""")
    report = deliver(settings, store, env={})
    assert report.claimed == 0 and server.seen == []
    assert "DISPATCH_MASTODON_TOKEN is not set" in str(report.problems[0])
    (row,) = q.posts_for(store)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    # Nothing waiting: nothing to say on every pass.
    (claimed,) = q.claim(store, "w", NOW, timedelta(minutes=5), 1, ["mastodon"])
    q.mark_failed(store, claimed.id, "w", NOW, "given up")
    assert deliver(settings, store, env={}).problems == ()


def test_bluesky_session_record_facets_and_card(site_root: Path, database: str,
                                                server: FakeNetwork) -> None:
    records = bluesky_api(server)
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    report = deliver(settings, store)
    assert report.sent == 1, report
    assert len(server.calls("/xrpc/com.atproto.server.createSession")) == 1
    (call,) = server.calls("/xrpc/com.atproto.repo.createRecord")
    body = call.json()
    record = body["record"]
    assert record["$type"] == "app.bsky.feed.post" and record["langs"] == ["en"]
    assert record["createdAt"] == "2026-11-02T09:00:00.000Z"
    raw = record["text"].encode("utf-8")
    link = record["facets"][0]
    article_url = f"{settings.site.url}/sleep/"
    assert link["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": article_url}]
    start, end = link["index"]["byteStart"], link["index"]["byteEnd"]
    assert raw[start:end].decode() == article_url
    assert start > record["text"].index(article_url)  # UTF-8 bytes, not code points
    tags = [raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode()
            for f in record["facets"][1:]]
    assert tags == ["#sleep", "#BloodPressure"]
    external = record["embed"]["external"]
    assert record["embed"]["$type"] == "app.bsky.embed.external"
    assert (external["uri"], external["title"]) == (article_url, "Sleep and blood pressure")
    assert external["description"] == "Short sleep is linked to higher blood pressure."
    assert external["thumb"]["ref"] == {"$link": "bafkreithumb"}
    (upload,) = server.calls("/xrpc/com.atproto.repo.uploadBlob")
    assert upload.body == JPEG and upload.headers["content-type"] == "image/jpeg"
    (row,) = q.posts_for(store)
    assert body["rkey"] == tid(row["created_at"], row["id"]) and body["rkey"] in records
    assert row["remote_id"] == f"at://did:plc:clinic123/app.bsky.feed.post/{body['rkey']}"


def test_bluesky_facets_every_link_mention_and_tag_resolving_handles(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    bluesky_api(server)
    body = ("Intro.\n\n## Key takeaway\n\nAsk @ann.bsky.social or @nobody.bsky.social "
            "🔑 about example.org/sleep #SleepWell, and read https://nhs.uk/sleep.\n")
    settings, store = make_site(site_root, database, server.base, bluesky_table(server), body)
    assert deliver(settings, store).sent == 1
    (call,) = server.calls("/xrpc/com.atproto.repo.createRecord")
    record = call.json()["record"]
    raw = record["text"].encode("utf-8")
    shown = [(raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(), f["features"][0])
             for f in record["facets"]]
    article_url = f"{settings.site.url}/sleep/"
    assert shown == [
        ("@ann.bsky.social", {"$type": "app.bsky.richtext.facet#mention",
                              "did": "did:plc:ann456"}),
        # @nobody.bsky.social does not resolve: its text stays, unlinked.
        ("example.org/sleep", {"$type": "app.bsky.richtext.facet#link",
                               "uri": "https://example.org/sleep"}),
        ("#SleepWell", {"$type": "app.bsky.richtext.facet#tag", "tag": "SleepWell"}),
        ("https://nhs.uk/sleep", {"$type": "app.bsky.richtext.facet#link",
                                  "uri": "https://nhs.uk/sleep"}),
        (article_url, {"$type": "app.bsky.richtext.facet#link", "uri": article_url}),
        ("#sleep", {"$type": "app.bsky.richtext.facet#tag", "tag": "sleep"}),
        ("#BloodPressure", {"$type": "app.bsky.richtext.facet#tag", "tag": "BloodPressure"}),
    ]
    assert "@nobody.bsky.social" in record["text"]
    assert [c.query["handle"] for c in server.calls(
        "/xrpc/com.atproto.identity.resolveHandle")] == [["ann.bsky.social"],
                                                        ["nobody.bsky.social"]]


def test_bluesky_handle_resolution_outage_is_retried(site_root: Path, database: str,
                                                     server: FakeNetwork) -> None:
    bluesky_api(server)
    server.script["/xrpc/com.atproto.identity.resolveHandle"] = [
        (503, {}, {"error": "Unavailable"})]
    body = "Intro.\n\n## Key takeaway\n\nAsk @ann.bsky.social about sleep.\n"
    settings, store = make_site(site_root, database, server.base, bluesky_table(server), body)
    report = deliver(settings, store)
    assert report.sent == 0
    assert server.calls("/xrpc/com.atproto.repo.createRecord") == []
    (row,) = q.posts_for(store)
    assert row["status"] == "queued" and "resolveHandle" in (row["last_error"] or "")


def test_bluesky_lost_answer_is_not_posted_twice(site_root: Path, database: str,
                                                 server: FakeNetwork) -> None:
    records = bluesky_api(server)
    create = server.routes[("POST", "/xrpc/com.atproto.repo.createRecord")]

    def lose_answer(seen: Seen) -> Reply:  # the record lands; the reply is a 502
        create(seen)
        server.routes[("POST", "/xrpc/com.atproto.repo.createRecord")] = create
        return 502, {}, {"error": "UpstreamFailure", "message": "Bad gateway"}

    server.routes[("POST", "/xrpc/com.atproto.repo.createRecord")] = lose_answer
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    assert deliver(settings, store).retried == 1
    assert deliver(settings, store, NOW + timedelta(minutes=5)).sent == 1
    assert len(records) == 1
    assert len(server.calls("/xrpc/com.atproto.repo.createRecord")) == 1
    assert len(server.calls("/xrpc/com.atproto.repo.getRecord")) == 1


def test_bluesky_wrong_password_fails_permanently(site_root: Path, database: str,
                                                  server: FakeNetwork) -> None:
    bluesky_api(server)
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    report = deliver(settings, store, env={"DISPATCH_BLUESKY_PASSWORD": "wrong-password"})
    assert report.failed == 1
    (row,) = q.posts_for(store)
    assert "AuthenticationRequired: Invalid identifier or password" in row["last_error"]
    assert "wrong-password" not in row["last_error"]


def test_webhook_is_signed_and_retried_after_5xx(site_root: Path, database: str,
                                                 server: FakeNetwork) -> None:
    webhook_api(server)
    server.script["/hook"] = [(500, {}, {"error": "try later"})]
    settings, store = make_site(site_root, database, server.base, webhook_table(server))
    first = deliver(settings, store)
    assert first.retried == 1
    (row,) = q.posts_for(store)
    assert row["available_at"] == NOW + timedelta(seconds=60)  # no Retry-After: backoff
    second = deliver(settings, store, NOW + timedelta(seconds=60))
    assert second.sent == 1
    call = server.calls("/hook")[-1]
    payload = call.json()
    assert payload["event"] == "social.post" and payload["kind"] == "linkedin"
    assert payload["idempotency_key"] == call.headers["x-dispatch-delivery"]
    assert call.headers["x-dispatch-timestamp"] == str(int((NOW + timedelta(seconds=60))
                                                           .timestamp()))
    (row,) = q.posts_for(store)
    assert (row["status"], row["remote_id"]) == ("sent", "hook-1")


def test_webhook_bad_signature_is_a_permanent_failure(site_root: Path, database: str,
                                                      server: FakeNetwork) -> None:
    webhook_api(server)
    settings, store = make_site(site_root, database, server.base, webhook_table(server))
    report = deliver(settings, store, env={"DISPATCH_WEBHOOK_SECRET": "not-the-secret"})
    assert report.failed == 1
    (row,) = q.posts_for(store)
    assert "HTTP 401: bad signature" in row["last_error"]


def test_connection_refused_is_retried(site_root: Path, database: str) -> None:
    settings, store = make_site(site_root, database, "http://127.0.0.1:9", """
[social.mastodon]
transport = "mastodon"
url = "http://127.0.0.1:9"
""")
    report = deliver(settings, store)
    assert report.retried == 1
    (row,) = q.posts_for(store)
    assert row["status"] == "queued" and "ConnectError" in row["last_error"]


def test_mastodon_crash_after_posting_is_deduplicated_by_the_key(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    mastodon_api(server)
    settings, store = make_site(site_root, database, server.base, f"""
[social.mastodon]
transport = "mastodon"
url = "{server.base}"
""")
    # A worker claims, posts, and dies before recording the result.
    (claimed,) = q.claim(store, "dead-worker", NOW, timedelta(minutes=5), 10, ["mastodon"])
    with httpx.Client(timeout=5) as client:
        MastodonTransport(load_social(settings).networks[0], client, ENV).post(claimed, NOW)
    assert deliver(settings, store, NOW + timedelta(minutes=4)).claimed == 0  # lease holds
    report = deliver(settings, store, NOW + timedelta(minutes=6))
    assert report.sent == 1
    posts = server.calls("/api/v1/statuses")
    assert len(posts) == 2 and len({p.headers["idempotency-key"] for p in posts}) == 1
    (row,) = q.posts_for(store)
    assert row["remote_id"] == "109000" and row["attempts"] == 2  # the one status, not a second


def test_bluesky_card_without_a_usable_image_still_posts(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    bluesky_api(server)
    server.routes[("GET", "/images/sleep.jpg")] = lambda seen: (
        200, {"Content-Type": "text/html"}, b"<html>not an image</html>")
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    assert deliver(settings, store).sent == 1
    (call,) = server.calls("/xrpc/com.atproto.repo.createRecord")
    external = call.json()["record"]["embed"]["external"]
    assert "thumb" not in external and external["title"] == "Sleep and blood pressure"
    assert server.calls("/xrpc/com.atproto.repo.uploadBlob") == []


def _tid_parts(key: str) -> tuple[int, int]:
    value = 0
    for char in key:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    return value >> 10, value & 0x3FF


def test_record_keys_are_unique_for_more_than_1024_rows_of_one_pass(database: str) -> None:
    assert tid(NOW, 2) != tid(NOW, 1026)  # the old clock-id-only keys collided here
    store = open_store(database)
    post = ComposedPost("bluesky", "bluesky", "x", "Text https://journal.test/x/", 29, 300,
                        "https://journal.test/x/", "takeaway", False, "en")
    assert q.enqueue(store, [replace(post, slug=f"a{i}") for i in range(2100)], NOW) == 2100
    rows = q.posts_for(store)
    store.dispose()
    assert {r["created_at"] for r in rows} == {NOW}  # one pass: one created_at
    keys = [tid(r["created_at"], r["id"]) for r in rows]
    assert len(set(keys)) == len(rows) == 2100
    now_us = (NOW - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for key in keys:
        micros, _clock = _tid_parts(key)
        assert len(key) == 13 and key[0] in "234567abcdefghij"
        assert 0 <= now_us - micros < 2 ** 20  # still "when it was queued", within ~1 s


def test_bluesky_retry_never_counts_another_post_under_its_key_as_sent(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    records = bluesky_api(server)
    server.script["/xrpc/com.atproto.repo.createRecord"] = [
        (502, {}, {"error": "UpstreamFailure", "message": "Bad gateway"})]
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    assert deliver(settings, store).retried == 1
    (row,) = q.posts_for(store)
    rkey = tid(row["created_at"], row["id"])
    foreign = {"$type": "app.bsky.feed.post", "text": "Someone else's post",
               "createdAt": "2026-11-02T09:00:00.000Z"}
    records[rkey] = foreign  # the key is taken, by a post that is not this one
    report = deliver(settings, store, NOW + timedelta(minutes=5))
    assert (report.sent, report.failed) == (0, 1)
    (row,) = q.posts_for(store)
    assert row["status"] == "failed"
    assert f"record key {rkey} already holds a different post" in row["last_error"]
    assert records == {rkey: foreign}
    assert len(server.calls("/xrpc/com.atproto.repo.getRecord")) == 1
    assert len(server.calls("/xrpc/com.atproto.repo.createRecord")) == 1  # the 502 only


def test_bluesky_rate_limit_waits_for_the_reset_and_posts_once(
        site_root: Path, database: str, server: FakeNetwork) -> None:
    records = bluesky_api(server)
    reset = int((NOW + timedelta(minutes=5)).timestamp())
    # What the PDS sends when the write budget is spent (docs: rate limits).
    server.script["/xrpc/com.atproto.repo.createRecord"] = [(
        429, {"RateLimit-Limit": "5000", "RateLimit-Remaining": "0",
              "RateLimit-Reset": str(reset), "RateLimit-Policy": "5000;w=3600"},
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"})]
    settings, store = make_site(site_root, database, server.base, bluesky_table(server))
    first = deliver(settings, store)
    assert (first.retried, first.sent) == (1, 0)
    (row,) = q.posts_for(store)
    assert row["status"] == "queued" and row["available_at"] == NOW + timedelta(minutes=5)
    assert "HTTP 429: RateLimitExceeded: Rate Limit Exceeded" in row["last_error"]
    assert deliver(settings, store, NOW + timedelta(seconds=299)).claimed == 0
    second = deliver(settings, store, NOW + timedelta(minutes=5))
    assert second.sent == 1
    creates = server.calls("/xrpc/com.atproto.repo.createRecord")
    assert len(creates) == 2 and len({c.json()["rkey"] for c in creates}) == 1
    assert len(records) == 1 and len(server.calls("/xrpc/com.atproto.repo.getRecord")) == 1
    (row,) = q.posts_for(store)
    assert row["status"] == "sent" and row["attempts"] == 2
