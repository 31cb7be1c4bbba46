"""The networks and transports dispatch has had from the start.

X, Threads and LinkedIn have no API transport here: their posts are written
and measured, and leave by ``capture`` or ``webhook``. Mastodon and Bluesky
come with their own. The counting functions live in ``count.py`` and the
transport classes in ``transports.py``; they are imported on first use, as
this module is read with dispatch.toml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, field_validator

from dispatch.sections import SectionModel
from dispatch.social.networks import Network, NoOptions, SocialTransport
from dispatch.values import urls

if TYPE_CHECKING:
    import httpx

    from dispatch.models import Article
    from dispatch.social.config import NetworkConfig
    from dispatch.social.http import Transport
    from dispatch.social.post import Facet, LinkCard

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def http_url(value: str) -> str:
    """A validator body: an http(s) URL with a host."""
    if not urls.is_absolute(value):
        raise ValueError("an http:// or https:// URL")
    return value.rstrip("/")


def env_name(value: str) -> str:
    """A validator body: the NAME of an environment variable, never the secret."""
    if not _ENV_NAME.fullmatch(value):
        raise ValueError("the NAME of a variable holding the secret, never the secret itself")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
"""A settings field holding an http(s) URL with a host (trailing "/" dropped)."""
EnvName = Annotated[str, AfterValidator(env_name)]
"""A settings field naming the environment variable that holds a secret."""


# Counting rules, imported on use: the generated tables are large.
def _x(text: str) -> int:
    from dispatch.social.count import x_length

    return x_length(text)


def _x_accepts(text: str) -> bool:
    from dispatch.social.twitter import has_invalid_characters

    return not has_invalid_characters(text)


def _mastodon(text: str) -> int:
    from dispatch.social.count import mastodon_length

    return mastodon_length(text)


def _bluesky(text: str) -> int:
    from dispatch.social.count import bluesky_length

    return bluesky_length(text)


def _threads(text: str) -> int:
    from dispatch.social.count import threads_length

    return threads_length(text)


def _linkedin(text: str) -> int:
    from dispatch.social.count import linkedin_length

    return linkedin_length(text)


def _bluesky_facets(body: str, url: str, tags: tuple[str, ...]) -> tuple[Facet, ...]:
    from dispatch.social.bsky_facets import detect_facets
    from dispatch.social.compose import layout

    return detect_facets(layout(body, url, tags))


def _bluesky_card(article: Article, url: str) -> LinkCard:
    from dispatch.social.compose import summary_card

    return summary_card(article, url)


def _capture(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
             environ: Mapping[str, str]) -> Transport:
    from dispatch.social.transports import capture_transport

    return capture_transport(capture_dir)


def _webhook(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
             environ: Mapping[str, str]) -> Transport:
    from dispatch.social.transports import WebhookTransport

    return WebhookTransport(config, client, environ)


def _mastodon_api(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
                  environ: Mapping[str, str]) -> Transport:
    from dispatch.social.transports import MastodonTransport

    return MastodonTransport(config, client, environ)


def _bluesky_api(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
                 environ: Mapping[str, str]) -> Transport:
    from dispatch.social.transports import BlueskyTransport

    return BlueskyTransport(config, client, environ)


class WebhookOptions(SectionModel):
    url: HttpUrl
    """Where the signed JSON is POSTed (Buffer, Zapier, your own service)."""
    secret_env: EnvName = "DISPATCH_WEBHOOK_SECRET"
    """Environment variable holding the HMAC signing secret."""


class MastodonOptions(SectionModel):
    url: HttpUrl = "https://mastodon.social"
    """The Mastodon instance."""
    token_env: EnvName = "DISPATCH_MASTODON_TOKEN"
    """Environment variable holding an access token with write:statuses."""
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"


class BlueskyOptions(SectionModel):
    handle: str
    """The account's handle, e.g. clinic.bsky.social."""
    url: HttpUrl = "https://bsky.social"
    """The PDS or entryway."""
    password_env: EnvName = "DISPATCH_BLUESKY_PASSWORD"
    """Environment variable holding an app password."""

    @field_validator("handle")
    @classmethod
    def _handle(cls, value: str) -> str:
        if not value:
            raise ValueError('a handle such as "name.bsky.social"')
        return value


CAPTURE = SocialTransport("capture", NoOptions, _capture,
                          summary="JSON files under .dispatch/social/<name>/; talks to nobody")
WEBHOOK = SocialTransport("webhook", WebhookOptions, _webhook, "secret_env",
                          "a signed JSON POST to any URL (HMAC-SHA256)")

X = Network("x", 280, _x, "twitter-text 3.1.0 weighted length; every URL 23; "
            "U+FEFF, U+FFFE, U+FFFF refused", accepts=_x_accepts)
MASTODON = Network("mastodon", 500, _mastodon,
                   "graphemes; every http(s) URL 23; a mention Mastodon recognises as @user",
                   transport=SocialTransport("mastodon", MastodonOptions, _mastodon_api,
                                             "token_env", "POST /api/v1/statuses"))
BLUESKY = Network("bluesky", 300, _bluesky,
                  "graphemes, URLs in full; at most 3000 UTF-8 bytes; "
                  "links, mentions, tags faceted",
                  max_bytes=3000,
                  transport=SocialTransport("bluesky", BlueskyOptions, _bluesky_api,
                                            "password_env", "createSession + createRecord"),
                  facets=_bluesky_facets, card=_bluesky_card)
THREADS = Network("threads", 500, _threads, "characters; emoji by their UTF-8 byte length")
LINKEDIN = Network("linkedin", 3000, _linkedin, "UTF-16 code units")
