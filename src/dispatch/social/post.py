"""The composed post: the value that crosses from composing to the queue,
the transports, the CLI and the capture files (as JSON)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["override", "takeaway", "summary"]


@dataclass(frozen=True, slots=True)
class Facet:
    """A Bluesky rich-text facet; offsets are UTF-8 bytes, end exclusive.

    ``value`` is the link's URI, the tag without its ``#`` (a cashtag keeps
    its ``$``), or a mention's handle: the transport swaps the handle for
    the account's DID when it posts.
    """

    byte_start: int
    byte_end: int
    kind: Literal["link", "tag", "mention"]
    value: str

    def as_bluesky(self, did: str | None = None) -> dict[str, Any]:
        """The facet as the record carries it; a mention needs its resolved ``did``
        (without one it holds the handle, as RichText does before resolving)."""
        feature: dict[str, Any]
        if self.kind == "link":
            feature = {"$type": "app.bsky.richtext.facet#link", "uri": self.value}
        elif self.kind == "mention":
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": did or self.value}
        else:
            feature = {"$type": "app.bsky.richtext.facet#tag", "tag": self.value}
        return {"index": {"byteStart": self.byte_start, "byteEnd": self.byte_end},
                "features": [feature]}


@dataclass(frozen=True, slots=True)
class LinkCard:
    uri: str
    title: str
    description: str
    thumb: str | None = None


@dataclass(frozen=True, slots=True)
class ComposedPost:
    network: str
    """The configured network table name (outbox key)."""
    kind: str
    """Which network's rules apply: x, mastodon, bluesky, threads, linkedin."""
    slug: str
    text: str
    length: int
    limit: int
    url: str
    source: Source
    truncated: bool
    language: str
    hashtags: tuple[str, ...] = ()
    facets: tuple[Facet, ...] = ()
    card: LinkCard | None = None

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network, "kind": self.kind, "slug": self.slug, "text": self.text,
            "length": self.length, "limit": self.limit, "url": self.url, "source": self.source,
            "truncated": self.truncated, "language": self.language,
            "hashtags": list(self.hashtags),
            "facets": [f.as_bluesky() for f in self.facets],
            "card": None if self.card is None else {
                "uri": self.card.uri, "title": self.card.title,
                "description": self.card.description, "thumb": self.card.thumb},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComposedPost:
        facets = []
        for f in data.get("facets", []):
            feature = f["features"][0]
            kind = feature["$type"].rpartition("#")[2]
            value = {"link": feature.get("uri"), "mention": feature.get("did")}.get(
                kind, feature.get("tag"))
            facets.append(Facet(f["index"]["byteStart"], f["index"]["byteEnd"],
                                kind if kind in ("link", "mention") else "tag", str(value)))
        card = data.get("card")
        return cls(
            network=data["network"], kind=data["kind"], slug=data["slug"], text=data["text"],
            length=data["length"], limit=data["limit"], url=data["url"], source=data["source"],
            truncated=data["truncated"], language=data["language"],
            hashtags=tuple(data.get("hashtags", ())), facets=tuple(facets),
            card=None if card is None else LinkCard(card["uri"], card["title"],
                                                    card["description"], card.get("thumb")),
        )
