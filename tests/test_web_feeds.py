"""``dispatch serve``'s feed routes: content types, validators, 304s."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from starlette.testclient import TestClient

from dispatch.feeds import build_feeds
from dispatch.store.engine import open_store
from dispatch.web.app import create_app
from feeds_site import FEEDS_URL, NOW, load, write_site


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    store = open_store(f"sqlite:///{tmp_path / 'web.db'}")
    try:
        with TestClient(create_app(settings, store)) as client:
            yield client, root / "public"
    finally:
        store.dispose()


@pytest.mark.parametrize(("path", "media"), [
    ("/feed.xml", "application/rss+xml; charset=utf-8"),
    ("/atom.xml", "application/atom+xml; charset=utf-8"),
    ("/feed.json", "application/feed+json; charset=utf-8"),
    ("/category/nutrition/atom.xml", "application/atom+xml; charset=utf-8"),
])
def test_content_types_and_validators(served: tuple[TestClient, Path], path: str,
                                      media: str) -> None:
    client, out = served
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert response.content == (out / path.lstrip("/")).read_bytes()
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith(" GMT")
    assert response.headers["link"] == (f'<https://hub.example.com/>; rel="hub", '
                                        f'<{FEEDS_URL}{path}>; rel="self"')


def test_feedparser_over_http_sees_a_clean_feed(served: tuple[TestClient, Path]) -> None:
    client, _ = served
    response = client.get("/atom.xml")
    d = feedparser.parse(response.content, response_headers=dict(response.headers))
    assert not d.bozo and d.version == "atom10"
    assert d.feed.links[0].href.startswith(FEEDS_URL)


def test_conditional_get_with_etag_answers_304(served: tuple[TestClient, Path]) -> None:
    client, _ = served
    first = client.get("/feed.xml")
    again = client.get("/feed.xml", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    weak = client.get("/feed.xml", headers={"If-None-Match": 'W/"other", W/' +
                                            first.headers["etag"]})
    assert weak.status_code == 304
    other = client.get("/feed.xml", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content


def test_conditional_get_with_last_modified(served: tuple[TestClient, Path]) -> None:
    client, _ = served
    first = client.get("/feed.json")
    since = first.headers["last-modified"]
    assert client.get("/feed.json", headers={"If-Modified-Since": since}).status_code == 304
    older = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get("/feed.json", headers={"If-Modified-Since": older}).status_code == 200
    assert client.get("/feed.json", headers={"If-Modified-Since": "garbage"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    both = client.get("/feed.json", headers={"If-Modified-Since": since,
                                             "If-None-Match": '"nope"'})
    assert both.status_code == 200


def test_changed_file_gets_a_new_etag(served: tuple[TestClient, Path]) -> None:
    client, out = served
    before = client.get("/atom.xml").headers["etag"]
    path = out / "atom.xml"
    path.write_bytes(path.read_bytes().replace(b"Clinic Journal", b"Clinic Journal!"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    response = client.get("/atom.xml", headers={"If-None-Match": before})
    assert response.status_code == 200
    assert response.headers["etag"] != before and b"Clinic Journal!" in response.content


def test_head_has_headers_and_no_body(served: tuple[TestClient, Path]) -> None:
    client, out = served
    response = client.head("/feed.xml")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str((out / "feed.xml").stat().st_size)


@pytest.mark.parametrize("path", ["/category/unknown/feed.xml", "/category/nutrition/x.xml",
                                  "/category/..%2f..%2fdispatch.toml/feed.xml",
                                  "/.dispatch-feeds.json"])
def test_unknown_paths_are_404(served: tuple[TestClient, Path], path: str) -> None:
    client, _ = served
    assert client.get(path).status_code == 404


def test_real_server_and_feedparser_conditional_get(tmp_path: Path) -> None:
    """A real client against a real server: feedparser sends back the ETag and
    Last-Modified it was given and gets 304 with no entries."""
    import socket
    import threading

    import uvicorn

    root = write_site(tmp_path / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    store = open_store(f"sqlite:///{tmp_path / 'web.db'}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1",
                                           port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        # Wait for the server to say it is listening (bounded, not a timed assertion).
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started
        url = f"http://127.0.0.1:{port}/feed.xml"
        first = feedparser.parse(url)
        assert first.status == 200 and not first.bozo and len(first.entries) == 3
        assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
        again = feedparser.parse(url, etag=first.etag, modified=first.modified)
        assert again.status == 304 and again.entries == []
        by_date = feedparser.parse(url, modified=first.modified)
        assert by_date.status == 304
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.dispose()
