"""The social networks dispatch can write for, and the transports that carry posts.

Everything dispatch knows about one network — its name, its default limit,
how it counts, what it adds to a post (facets, a link card) and which API
transport (if any) posts it — is one :class:`Network` declared in one
module and named by one line in :data:`NETWORKS`. A transport is a
:class:`SocialTransport`: its name, the keys it reads in a
``[social.<name>]`` table (a settings model), and how it is built.
``capture`` and ``webhook`` carry any network's post; a network's own API
transport comes with the network.

Declarations are imported when dispatch.toml is read, so their modules keep
heavy imports (httpx, twitter-text) inside the functions that need them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.sections import SectionModel

if TYPE_CHECKING:
    import httpx

    from dispatch.models import Article
    from dispatch.social.config import NetworkConfig
    from dispatch.social.http import Transport
    from dispatch.social.post import Facet, LinkCard

NETWORKS: dict[str, str] = {
    "x": "dispatch.social.builtin:X",
    "mastodon": "dispatch.social.builtin:MASTODON",
    "bluesky": "dispatch.social.builtin:BLUESKY",
    "threads": "dispatch.social.builtin:THREADS",
    "linkedin": "dispatch.social.builtin:LINKEDIN",
    "telegram": "dispatch.social.telegram:TELEGRAM",
}
"""Network name -> ``module:attribute`` of its declaration. A new network is one line."""

GENERIC_TRANSPORTS: dict[str, str] = {
    "capture": "dispatch.social.builtin:CAPTURE",
    "webhook": "dispatch.social.builtin:WEBHOOK",
}
"""Transports that carry any network's post."""

BuildTransport = Callable[["NetworkConfig", "httpx.Client", Path, Mapping[str, str]],
                          "Transport"]
Facets = Callable[[str, str, tuple[str, ...]], tuple["Facet", ...]]
"""(body, url, hashtags) -> facets on the text the composer lays out."""
Card = Callable[["Article", str], "LinkCard | None"]
"""(article, url) -> the link card the post embeds."""


class NoOptions(SectionModel):
    """A transport that reads no keys of its own."""


@dataclass(frozen=True, slots=True)
class SocialTransport:
    name: str
    options: type[SectionModel]
    """The keys this transport reads in a ``[social.<name>]`` table, with defaults."""
    build: BuildTransport
    secret_key: str | None = None
    """Which of ``options`` names the environment variable holding the secret."""
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    limit: int
    """The network's own limit, used unless a table sets ``limit``."""
    measure: Callable[[str], int]
    """The length the network itself would count for a text."""
    counting: str
    """The counting rule in words, for the README."""
    max_bytes: int | None = None
    """A UTF-8 byte cap the network enforces on top of the length."""
    transport: SocialTransport | None = None
    """The network's own API transport, if dispatch has one."""
    facets: Facets | None = None
    card: Card | None = None
    accepts: Callable[[str], bool] | None = None
    """Whether the network would take the text at all, whatever its length
    (X refuses a post holding U+FEFF, U+FFFE or U+FFFF)."""

    def fits(self, text: str, limit: int) -> bool:
        if self.max_bytes is not None and len(text.encode("utf-8")) > self.max_bytes:
            return False
        if self.accepts is not None and not self.accepts(text):
            return False
        return self.measure(text) <= limit


def _load(reference: str) -> object:
    module, attr = reference.split(":")
    return getattr(importlib.import_module(module), attr)


@cache
def network(name: str) -> Network:
    declared = _load(NETWORKS[name])
    assert isinstance(declared, Network) and declared.name == name
    return declared


@cache
def transports() -> dict[str, SocialTransport]:
    """Every transport by name: the generic ones, then each network's own."""
    found: dict[str, SocialTransport] = {}
    for reference in GENERIC_TRANSPORTS.values():
        declared = _load(reference)
        assert isinstance(declared, SocialTransport)
        found[declared.name] = declared
    for name in NETWORKS:
        own = network(name).transport
        if own is not None:
            found[own.name] = own
    return found


def carries(transport: str, network_name: str) -> bool:
    """Whether ``transport`` can deliver a ``network_name`` post."""
    if transport in GENERIC_TRANSPORTS:
        return True
    own = network(network_name).transport
    return own is not None and own.name == transport
