"""The feed formats dispatch writes, one line each.

A format is a :class:`FeedFormat` declared beside its renderer: its name,
the file it is written to in every feed folder, the media type it is served
with, and the function that renders a :class:`~dispatch.feeds.model.Feed`
to bytes. Building, the incremental manifest, the render key (which code
renders the feeds: a change to any renderer invalidates every manifest) and
``dispatch serve`` all go through :func:`feed_formats`, so a new format is a
new module plus one line here and cannot be half wired.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.feeds.model import Feed

FEED_FORMATS: dict[str, str] = {
    "rss": "dispatch.feeds.rss_atom:RSS",
    "atom": "dispatch.feeds.rss_atom:ATOM",
    "json": "dispatch.feeds.jsonfeed:JSON_FEED",
}
"""Format name -> ``module:attribute`` of its declaration, in the order written."""


@dataclass(frozen=True, slots=True)
class FeedFormat:
    name: str
    file_name: str
    media_type: str
    """Served as ``media_type; charset=utf-8``."""
    render: Callable[[Feed], bytes]


@cache
def feed_formats() -> tuple[FeedFormat, ...]:
    found = []
    for name, reference in FEED_FORMATS.items():
        module, attr = reference.split(":")
        declared = getattr(importlib.import_module(module), attr)
        assert isinstance(declared, FeedFormat) and declared.name == name
        found.append(declared)
    return tuple(found)


def format_names() -> tuple[str, ...]:
    return tuple(FEED_FORMATS)


def feed_format(name: str) -> FeedFormat:
    return next(f for f in feed_formats() if f.name == name)


def file_name(name: str) -> str:
    return feed_format(name).file_name


def renderer_modules() -> tuple[str, ...]:
    """The modules whose code decides the bytes of some feed file."""
    return tuple(sorted({f.render.__module__ for f in feed_formats()}))
