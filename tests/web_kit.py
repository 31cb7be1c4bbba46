"""A site with subscribers, a queued edition and built feeds, served in-process
or by the real ``dispatch serve`` (uvicorn) on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.delivery_kit import free_port

from dispatch.config import Settings, load_settings
from dispatch.content import load_site
from dispatch.feeds import build_feeds
from dispatch.outbox import queue_edition
from dispatch.render import render_article_edition, render_digest_edition
from dispatch.store import open_store
from dispatch.store.engine import Store
from dispatch.subscribers import get_subscriber
from dispatch.subscribers.csvfile import ImportRow, import_rows

REPO = Path(__file__).resolve().parent.parent
SECRET = "web-test-secret"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEOPLE = (("alice.example@example.com", "Alice Quillfeather"),
          ("bob.example@example.com", "Bob Marchbanks"),
          ("carol.example@example.com", "Carol Pennywhistle"))


@dataclass
class WebSite:
    root: Path
    settings: Settings
    store: Store
    edition_id: str
    ids: dict[str, int]

    @property
    def key(self) -> bytes:
        return SECRET.encode()

    def status(self, email: str) -> str:
        found = get_subscriber(self.store, email)
        assert found is not None
        return found.status


def make_site(root: Path, database_url: str | None = None, *, digest: bool = False
              ) -> WebSite:
    """The example site (copied to ``root`` by the example_site fixture) with
    three subscribers, one rendered edition (an article, or a digest, which
    greets each reader by name) queued to them, and the feeds built.
    DISPATCH_SECRET_KEY must already be set to SECRET."""
    assert os.environ.get("DISPATCH_SECRET_KEY") == SECRET
    settings = load_settings(root)
    store = open_store(database_url or settings.database_url)
    import_rows(store, [ImportRow(i + 2, email, name, "active", ())
                        for i, (email, name) in enumerate(PEOPLE)], "weekly", NOW)
    articles = [a for a in load_site(settings).articles if a.is_published(NOW)]
    build_feeds(settings, articles, NOW)
    edition = (render_digest_edition(settings, articles[:3], "digest.weekly") if digest
               else render_article_edition(settings, articles[0], f"{articles[0].slug}.weekly"))
    queue_edition(store, edition, ["weekly"], NOW)
    ids = {}
    for email, _ in PEOPLE:
        found = get_subscriber(store, email)
        assert found is not None
        ids[email] = found.id
    return WebSite(root, settings, store, edition.edition_id, ids)


@contextmanager
def dispatch_serve(root: Path, env: dict[str, str]) -> Iterator[str]:
    """Run the real ``dispatch serve`` (uvicorn) and yield its base URL."""
    port = free_port()
    with serving(root, port, {**os.environ, **env}):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serving(root: Path, port: int, environ: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``dispatch serve`` on ``port`` with exactly ``environ``.

    Waits for the port to accept connections by bounded polling; stops the
    server with SIGTERM (uvicorn's graceful shutdown) afterwards.
    """
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "dispatch"), "serve", "--root", str(root),
         "--port", str(port)],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise AssertionError(f"dispatch serve exited: {proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("dispatch serve did not start listening") from None
                time.sleep(0.05)  # polling for the port, not waiting for time to pass
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def client(base: str) -> httpx.Client:
    """A fresh client: no cookie jar contents, no session, nothing but the URL."""
    # Generous: the first request may import a handler's modules, and on a
    # busy shared machine that alone has taken over ten seconds.
    return httpx.Client(base_url=base, timeout=60, follow_redirects=False)


MULTIPART_BOUNDARY = "----dispatchTestBoundary7Q"
MULTIPART_BODY = (f"--{MULTIPART_BOUNDARY}\r\n"
                  'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
                  f"One-Click\r\n--{MULTIPART_BOUNDARY}--\r\n").encode()
MULTIPART_TYPE = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
FORM_BODY = b"List-Unsubscribe=One-Click"
FORM_TYPE = "application/x-www-form-urlencoded"

