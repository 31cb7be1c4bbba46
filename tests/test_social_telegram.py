"""Telegram, the network added as one module plus one registry line: its
counting rule, its settings, and its transport against a Bot API stand-in on
127.0.0.1 that answers as the Bot API documents (``ok``/``result``,
``error_code``/``description``, ``parameters.retry_after``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.sitekit import build_site

from dispatch.config import Settings, load_settings
from dispatch.content.loader import load_site
from dispatch.errors import ConfigError
from dispatch.social import deliver_social_posts, queue_social_posts
from dispatch.social.compose import compose
from dispatch.social.config import load_social
from dispatch.social.networks import NETWORKS, network
from dispatch.social.telegram import LIMIT, telegram_length
from dispatch.store.engine import Store
from sitekit import write_article

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOKEN = "123456:telegram-bot-s3cret"
ENV = {"DISPATCH_TELEGRAM_TOKEN": TOKEN}
FRONT = """\
    title: Sleep and blood pressure
    date: 2026-10-06T07:00:00
    summary: Short sleep is linked to higher blood pressure.
    tags: [sleep]
"""
BODY = "Intro.\n\n## Key takeaway\n\nSleep 7 hours 🔑. Keep a fixed wake-up time.\n"


class BotApi:
    """``POST /bot<token>/sendMessage``; a queue of forced answers comes first."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.forced: list[tuple[int, dict[str, Any]]] = []
        self.base = ""

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.received.append((path, body))
        if self.forced:
            return self.forced.pop(0)
        if path != f"/bot{TOKEN}/sendMessage":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= telegram_length(text) <= LIMIT:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: message is too long"}
        return 200, {"ok": True, "result": {
            "message_id": 41 + len(self.received), "text": text,
            "chat": {"id": -1001234567890, "type": "channel", "username": "clinic_news"}}}


@pytest.fixture
def bot() -> Iterator[BotApi]:
    api = BotApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            status, body = api.answer(self.path, json.loads(self.rfile.read(size) or b"{}"))
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield api
    httpd.shutdown()
    httpd.server_close()


def site(root: Path, tmp_path: Path, table: str) -> tuple[Settings, Store]:
    settings, store = build_site(root, toml='\n[social]\nutm = ""\n' + table,
                                 articles={"sleep.md": (FRONT, BODY)},
                                 database_url=f"sqlite:///{tmp_path / 'state.db'}")
    queue_social_posts(store, settings, load_site(settings).articles, NOW)
    return settings, store


def test_telegram_is_registered_by_one_line() -> None:
    assert NETWORKS["telegram"] == "dispatch.social.telegram:TELEGRAM"
    declared = network("telegram")
    assert declared.limit == 4096 and declared.transport is not None


def test_counting_is_utf16_code_units_of_the_trimmed_text() -> None:
    assert telegram_length("abc") == 3
    assert telegram_length("  abc \n") == 3          # Telegram trims outer whitespace
    assert telegram_length("é") == 1                 # one BMP code point
    assert telegram_length("🔑") == 2                # outside the BMP: a surrogate pair
    assert telegram_length("👩‍⚕️") == 5              # 👩 (2) + ZWJ + ⚕ + VS16
    assert network("telegram").fits("x" * 4096, 4096)
    assert not network("telegram").fits("🔑" * 2049, 4096)


def test_a_post_is_sent_with_its_link_preview(site_root: Path, tmp_path: Path,
                                              bot: BotApi) -> None:
    settings, store = site(site_root, tmp_path, f'[social.telegram]\ntransport = "telegram"\n'
                           f'url = "{bot.base}"\nchat_id = "@clinic_news"\nsilent = true\n')
    with httpx.Client(timeout=5) as client:
        report = deliver_social_posts(store, settings, NOW, client=client, environ=ENV)
    (outcome,) = report.outcomes
    assert outcome.status == "sent", outcome
    assert outcome.detail == "https://t.me/clinic_news/42"
    ((path, body),) = bot.received
    assert path == f"/bot{TOKEN}/sendMessage"
    assert body["chat_id"] == "@clinic_news" and body["disable_notification"] is True
    assert body["text"].startswith("Sleep 7 hours 🔑.")
    assert body["link_preview_options"] == {"url": "https://journal.test/sleep/"}
    # Sent once: a second run finds nothing due.
    with httpx.Client(timeout=5) as client:
        again = deliver_social_posts(store, settings, NOW, client=client, environ=ENV)
    assert again.outcomes == () or list(again.outcomes) == []
    assert len(bot.received) == 1
    store.dispose()


def test_429_waits_as_told_and_errors_never_show_the_token(site_root: Path, tmp_path: Path,
                                                          bot: BotApi) -> None:
    settings, store = site(site_root, tmp_path, f'[social.telegram]\ntransport = "telegram"\n'
                           f'url = "{bot.base}"\nchat_id = "-1001234567890"\n')
    bot.forced.append((429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 17",
                             "parameters": {"retry_after": 17}}))
    bot.forced.append((403, {"ok": False, "error_code": 403,
                             "description": "Forbidden: bot is not a member of the channel"}))
    with httpx.Client(timeout=5) as client:
        first = deliver_social_posts(store, settings, NOW, client=client, environ=ENV)
        (retry,) = first.outcomes
        assert retry.status == "retry" and "retry after 17" in retry.detail
        later = NOW.replace(second=18)
        second = deliver_social_posts(store, settings, later, client=client, environ=ENV)
    (failed,) = second.outcomes
    assert failed.status == "failed" and "bot is not a member" in failed.detail
    for outcome in (retry, failed):
        assert TOKEN not in outcome.detail
    store.dispose()


def test_missing_token_keeps_the_post_queued(site_root: Path, tmp_path: Path,
                                             bot: BotApi) -> None:
    settings, store = site(site_root, tmp_path, f'[social.telegram]\ntransport = "telegram"\n'
                           f'url = "{bot.base}"\nchat_id = "@clinic_news"\n')
    with httpx.Client(timeout=5) as client:
        deliver_social_posts(store, settings, NOW, client=client, environ={})
    assert bot.received == []
    store.dispose()


@pytest.mark.parametrize(("table", "field", "expected"), [
    ('transport = "telegram"\n', "social.telegram.chat_id", "missing"),
    ('transport = "telegram"\nchat_id = "clinic"\n', "social.telegram.chat_id", "not allowed"),
    ('transport = "telegram"\nchat_id = "@clinic_news"\ntoken_env = "123:abc"\n',
     "social.telegram.token_env", "not allowed"),
    ('transport = "telegrm"\n', "social.telegram.transport", "did you mean 'telegram'?"),
    ('network = "x"\ntransport = "telegram"\nchat_id = "@clinic_news"\n',
     "social.telegram.transport", "cannot post a x post"),
])
def test_bad_telegram_settings_are_refused_with_their_line(
        site_root: Path, table: str, field: str, expected: str) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + "\n[social.telegram]\n" + table, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root, environ={})
    found = [p for p in caught.value.problems if p.field == field]
    assert found and found[0].line is not None, caught.value.problems
    assert expected in str(found[0])


def test_a_long_takeaway_is_cut_to_telegrams_limit(site_root: Path) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[social.telegram]\nlimit = 120\n', encoding="utf-8")
    write_article(site_root, "long.md", FRONT.replace("Sleep and", "Long"),
                  "## Key takeaway\n\n" + "Sleep well 🔑. " * 40 + "\n")
    settings = load_settings(site_root, environ={})
    config = load_social(settings).get("telegram")
    assert config is not None and config.limit == 120
    post = compose(load_site(settings).articles[0], config)
    assert post.length == telegram_length(post.text) <= 120 and post.truncated
