"""JSON Feed 1.1 checks written from the spec (https://www.jsonfeed.org/version/1.1/).

feedparser cannot read JSON Feed, so the rules are checked here twice: a JSON
Schema transcribed from the spec's field list (types, required fields,
nesting) and the rules a schema cannot express (RFC 3339 dates, unique ids,
absolute URLs, at least one content field).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dispatch.feeds import build_feeds
from feeds_site import FEEDS_URL, NOW, SITE_URL, load, write_site

URL = {"type": "string", "minLength": 1}
AUTHOR = {
    "type": "object",
    # "An author object has several members. These are all optional — but if
    # you provide an author object, then at least one is required."
    "properties": {"name": {"type": "string"}, "url": URL, "avatar": URL},
    "anyOf": [{"required": ["name"]}, {"required": ["url"]}, {"required": ["avatar"]}],
}
ITEM = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "url": URL, "external_url": URL,
        "title": {"type": "string"},
        "content_html": {"type": "string"}, "content_text": {"type": "string"},
        "summary": {"type": "string"},
        "image": URL, "banner_image": URL,
        "date_published": {"type": "string"}, "date_modified": {"type": "string"},
        "authors": {"type": "array", "items": AUTHOR},
        "author": AUTHOR,
        "tags": {"type": "array", "items": {"type": "string"}},
        "language": {"type": "string"},
        "attachments": {"type": "array", "items": {
            "type": "object", "required": ["url", "mime_type"],
            "properties": {"url": URL, "mime_type": {"type": "string"},
                           "title": {"type": "string"},
                           "size_in_bytes": {"type": "number"},
                           "duration_in_seconds": {"type": "number"}}}},
    },
    # "content_html and content_text are each optional strings — but one or both must be present."
    "anyOf": [{"required": ["content_html"]}, {"required": ["content_text"]}],
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "home_page_url": URL, "feed_url": URL,
        "description": {"type": "string"}, "user_comment": {"type": "string"},
        "next_url": URL, "icon": URL, "favicon": URL,
        "authors": {"type": "array", "items": AUTHOR},
        "author": AUTHOR,
        "language": {"type": "string"},
        "expired": {"type": "boolean"},
        "hubs": {"type": "array", "items": {"type": "object", "required": ["type", "url"],
                                            "properties": {"type": {"type": "string"},
                                                           "url": URL}}},
        "items": {"type": "array", "items": ITEM},
    },
}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ABSOLUTE = re.compile(r"^https?://[^/\s]+")


def jsonfeed_problems(doc: dict[str, Any]) -> list[str]:
    """Everything in ``doc`` that breaks JSON Feed 1.1 (or its SHOULDs we keep)."""
    problems = [f"{'/'.join(map(str, e.path))}: {e.message}"
                for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc)]
    # "home_page_url ... feed_url ... should be considered required for feeds on the public web."
    problems += [f"{key} missing" for key in ("home_page_url", "feed_url") if key not in doc]
    for key in ("home_page_url", "feed_url", "icon", "favicon", "next_url"):
        if key in doc and not ABSOLUTE.match(str(doc[key])):
            problems.append(f"{key} is not an absolute URL")
    ids: set[str] = set()
    for n, item in enumerate(doc.get("items", [])):
        if item.get("id") in ids:
            problems.append(f"items/{n}: duplicate id {item['id']!r}")
        ids.add(item.get("id"))
        for key in ("date_published", "date_modified"):
            if key in item and not RFC3339.match(item[key]):
                problems.append(f"items/{n}/{key}: {item[key]!r} is not RFC 3339")
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item and not ABSOLUTE.match(item[key]):
                problems.append(f"items/{n}/{key}: not an absolute URL")
        for url in re.findall(r'(?:href|src)="([^"]*)"', item.get("content_html", "")):
            if not ABSOLUTE.match(url) and not url.startswith("mailto:"):
                problems.append(f"items/{n}/content_html: relative URL {url!r}")
        # "content_html ... This is the HTML of the item", and HTML never goes in content_text.
        if "<" in item.get("content_text", ""):
            problems.append(f"items/{n}/content_text: holds HTML")
    return problems


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_site(tmp_path_factory.mktemp("jsonfeed") / "site")
    settings, articles = load(root)
    build_feeds(settings, articles, NOW)
    return root / "public"


def test_checker_catches_what_it_should() -> None:
    bad = {"version": "https://jsonfeed.org/version/1", "title": "t",
           "items": [{"id": "1", "date_published": "2026-01-01 09:00"},
                     {"id": "1", "content_html": '<a href="/x">x</a>', "url": "/rel"}]}
    problems = jsonfeed_problems(bad)
    assert any("version" in p or "const" in p for p in problems)
    assert any("home_page_url missing" in p for p in problems)
    assert any("duplicate id" in p for p in problems)
    assert any("not RFC 3339" in p for p in problems)
    assert any("relative URL" in p for p in problems)
    assert any("items/0" in p for p in problems)  # no content_html/content_text


@pytest.mark.parametrize("name", ["feed.json", "category/nutrition/feed.json",
                                  "category/heart-health/feed.json"])
def test_every_json_feed_is_valid(built: Path, name: str) -> None:
    doc = json.loads((built / name).read_bytes())
    assert jsonfeed_problems(doc) == []


def test_json_feed_fields(built: Path) -> None:
    doc = json.loads((built / "feed.json").read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == f"{FEEDS_URL}/feed.json"
    assert doc["home_page_url"] == f"{SITE_URL}/"
    assert doc["hubs"] == [{"type": "WebSub", "url": "https://hub.example.com/"}]
    assert doc["icon"] == f"{SITE_URL}/logo.png" and doc["favicon"] == f"{SITE_URL}/favicon.png"
    assert doc["authors"] == [{"name": "Clinic Team"}]
    titles = [i["title"] for i in doc["items"]]
    assert titles == ["Cold season 🤧 is here",
                      "Café culture and caffeine: naïve questions answered",
                      "Salt & sugar: <why> it matters"]
    salt = doc["items"][2]
    assert salt["id"] == "tag:journal.example.org,2026-03-20:ampersand"
    assert salt["url"] == f"{SITE_URL}/ampersand/"
    assert salt["summary"] == "Less salt < more salt? A & B."
    assert salt["image"] == f"{SITE_URL}/images/salt.jpg"
    assert salt["tags"] == ["Heart health", "salt", "sugar"]
    assert salt["authors"] == [{"name": "Dr Amara Osei"}]
    assert salt["author"] == {"name": "Dr Amara Osei"}  # 1.0's field, for older readers
    cafe = doc["items"][1]
    assert datetime.fromisoformat(cafe["date_published"]).utcoffset().total_seconds() == 3600
    assert cafe["date_modified"] == "2026-04-10T10:00:00+01:00"
    assert doc["items"][0]["date_published"] == "2026-11-02T07:00:00-05:00"


def test_json_feed_is_utf8_without_escapes(built: Path) -> None:
    raw = (built / "feed.json").read_bytes()
    assert "🤧".encode() in raw and b"\\u" not in raw
