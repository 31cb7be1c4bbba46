"""`dispatch serve` answers `/` with a small index page: the site's name, the
built feeds (site-wide and per category), and the archive and subscribe
pages when the app serves them."""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from tests.email_browser import CHROMIUM, SKIP_REASON, Chromium

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.store import open_store
from dispatch.web.app import create_app


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.lang: str | None = None
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "meta" and found.get("name") == "viewport":
            self.viewport = True


@pytest.fixture
def built(example_site: Path) -> Iterator[TestClient]:
    result = CliRunner().invoke(main, ["build", "--root", str(example_site)])
    assert result.exit_code == 0, result.output
    settings = load_settings(example_site)
    store = open_store(settings.database_url)
    try:
        yield TestClient(create_app(settings, store))
    finally:
        store.dispose()


def test_root_is_an_index_of_the_site_and_its_feeds(built: TestClient) -> None:
    response = built.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Links()
    page.feed(response.text)
    assert page.lang == "en" and page.viewport
    assert "<h1>Northfield Clinic Journal</h1>" in response.text
    for href in ("/feed.xml", "/atom.xml", "/feed.json", "/category/heart-health/feed.xml"):
        assert href in page.hrefs, page.hrefs
        assert built.get(href).status_code == 200  # every link works
    assert "Heart health" in response.text  # the category's own spelling
    # The archive and the signup form are served by the same app: linked.
    assert "/archive/" in page.hrefs and "/subscribe" in page.hrefs
    assert 'rel="alternate" type="application/rss+xml"' in response.text


def test_archive_and_subscribe_are_linked_only_when_served(example_site: Path) -> None:
    async def stub(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    settings = load_settings(example_site)
    store = open_store(settings.database_url)
    try:
        app = create_app(settings, store, modules=("dispatch.web.index", "dispatch.web.feeds"))
        page = Links()
        page.feed(TestClient(app).get("/").text)
        assert "/archive/" not in page.hrefs and "/subscribe" not in page.hrefs
        app.router.routes.append(Route("/archive/", stub))
        page = Links()
        page.feed(TestClient(app).get("/").text)
        assert "/archive/" in page.hrefs and "/subscribe" not in page.hrefs
    finally:
        store.dispose()


def test_before_any_build_it_says_so(site_root: Path) -> None:
    settings = load_settings(site_root)
    store = open_store(settings.database_url)
    try:
        response = TestClient(create_app(settings, store)).get("/")
    finally:
        store.dispose()
    assert response.status_code == 200
    assert "No feeds have been built yet." in response.text


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON)
def test_readable_at_375_px(built: TestClient, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(built.get("/").text, encoding="utf-8")
    browser = Chromium()
    try:
        browser.open(page, width=375)
        assert browser.evaluate("document.documentElement.scrollWidth") <= 375
        size = browser.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 16
    finally:
        browser.close()
