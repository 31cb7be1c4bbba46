"""Social posts: per-network text from the Key takeaway, counted by each
network's own rules, queued once per (article, network) and delivered.

Modules, in pipeline order::

    config      [social.<name>] tables -> NetworkConfig (which network, which transport)
    count       each network's length rule
    post        ComposedPost, Facet, LinkCard: the frozen values that cross stages
    compose     article -> ComposedPost (sentences, cut, hashtags, UTM, facets)
    queue       the social_posts outbox: enqueue once, claim with a lease, fenced acks
    http        PostTransport: the job engine's transport shape for posts
    transports  capture (default), Mastodon, Bluesky, webhook
    deliver     queue posts for new articles; deliver due posts (the job
                engine's one delivery loop, posts as its channel)
    stage       the pipeline stage
    checks      what `dispatch check` reports
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from dispatch.config import Settings
    from dispatch.models import Article
    from dispatch.social.config import NetworkConfig, SocialSettings, load_social
    from dispatch.social.deliver import (
        HandQueued,
        PostOutcome,
        QueueReport,
        SocialDeliveryReport,
        queue_by_hand,
    )
    from dispatch.social.post import ComposedPost, Facet, LinkCard
    from dispatch.store.engine import Store

# Imported on first use (PEP 562): reading [social]'s settings model must not
# load httpx and the counting libraries.
_LAZY = {
    "NetworkConfig": "dispatch.social.config", "SocialSettings": "dispatch.social.config",
    "load_social": "dispatch.social.config", "HandQueued": "dispatch.social.deliver",
    "PostOutcome": "dispatch.social.deliver", "QueueReport": "dispatch.social.deliver",
    "SocialDeliveryReport": "dispatch.social.deliver", "queue_by_hand": "dispatch.social.deliver",
    "ComposedPost": "dispatch.social.post", "Facet": "dispatch.social.post",
    "LinkCard": "dispatch.social.post",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ComposedPost",
    "Facet",
    "HandQueued",
    "LinkCard",
    "NetworkConfig",
    "PostOutcome",
    "QueueReport",
    "SocialDeliveryReport",
    "SocialSettings",
    "compose_post",
    "deliver_social_posts",
    "load_social",
    "queue_by_hand",
    "queue_social",
    "queue_social_posts",
]

log = logging.getLogger(__name__)


def queue_social(store: Store, settings: Settings, articles: Sequence[Article],
                 now: datetime, networks: Sequence[str] | None = None) -> QueueReport:
    """Queue one post per (article, configured network): queued, could not be written, why.

    Idempotent: a (slug, network) that was ever queued is never queued again,
    so a re-run queues nothing and an edited article is not posted twice. A
    post that cannot be written (its link alone is over the limit) is
    recorded as a failed row with the reason, and written again once the
    network's settings or the article change.
    """
    from dispatch.social.deliver import queue_posts

    return queue_posts(store, settings, articles, now, networks)


def queue_social_posts(store: Store, settings: Settings, articles: Sequence[Article],
                       now: datetime, networks: Sequence[str] | None = None) -> int:
    """:func:`queue_social`, logging the problems; rows newly queued."""
    report = queue_social(store, settings, articles, now, networks)
    for problem in report.problems:
        log.warning("%s", problem)
    return report.queued


def deliver_social_posts(store: Store, settings: Settings, now: datetime, *,
                         client: httpx.Client | None = None,
                         environ: Mapping[str, str] | None = None) -> SocialDeliveryReport:
    """Send every due post once; ``client`` lets tests aim at 127.0.0.1."""
    from dispatch.social.deliver import deliver

    return deliver(store, settings, now, client=client, environ=environ)


def compose_post(settings: Settings, article: Article, network: str) -> ComposedPost:
    """The post ``network`` (a ``[social.<name>]`` table) would get for ``article``."""
    from dispatch.errors import ConfigError
    from dispatch.social.compose import compose
    from dispatch.social.config import load_social

    social = load_social(settings)
    config = social.get(network)
    if config is None:
        configured = ", ".join(n.name for n in social.networks) or "none"
        raise ConfigError([settings.problem(
            f"social.{network}", f"network {network!r} is not configured",
            f"one of: {configured}")])
    return compose(article, config)
