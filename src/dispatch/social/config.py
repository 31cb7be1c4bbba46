"""``[social]`` and ``[social.<name>]`` in dispatch.toml, as frozen settings.

Two questions are kept apart on purpose:

* *which network* a post is written for (``network = "mastodon"``): that
  decides the counting rule and the default limit;
* *how it is delivered* (``transport = "capture"``): the local capture
  default, the network's own API, or a signed webhook.

So ``[social.mastodon]`` with ``transport = "capture"`` writes a post that
fits Mastodon's rules into ``.dispatch/social/`` and talks to nobody, and
two Mastodon accounts are just two tables with ``network = "mastodon"``.
Secrets are never read from the file: a table names the environment
variable that holds them (``token_env``, ``password_env``, ``secret_env``).
A network that has no table gets no posts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dispatch.config import Settings
from dispatch.errors import ConfigError, Problem
from dispatch.sections import SectionModel
from dispatch.social import networks as registry
from dispatch.social.options import DEFAULT_UTM as DEFAULT_UTM
from dispatch.social.options import AccountOptions, SocialOptions, table_problems
from dispatch.sourcelines import suggest as suggest

NetworkKind = str
"""A name in :data:`dispatch.social.networks.NETWORKS`."""
TransportKind = str

NETWORKS: dict[str, int] = {name: registry.network(name).limit for name in registry.NETWORKS}
"""Each registered network's default limit."""
# Keys of [social] itself that are options, not network tables.
GLOBAL_KEYS = {k for k in SocialOptions.model_fields if k not in SocialOptions.flatten}
NETWORK_KEYS = tuple(AccountOptions.model_fields)
"""Keys every [social.<name>] table may have; its transport's own keys come on top.
Anything else is a typo or belongs to another transport, and is rejected:
`limt = 300` silently ignored means a post written to the wrong limit."""


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    name: str
    """The table name: the outbox key and the frontmatter override key."""
    network: NetworkKind
    transport: TransportKind
    limit: int
    utm: str
    """Query template with ``{network}`` and ``{slug}``; empty for none."""
    hashtags: int
    language: str
    base_url: str = ""
    """Mastodon instance, Bluesky PDS/entryway, or webhook URL."""
    identifier: str = ""
    """Bluesky handle."""
    secret_env: str = ""
    """Environment variable holding the Mastodon token, Bluesky app password
    or webhook signing secret."""
    visibility: str = "public"
    timeout: float = 20.0
    options: SectionModel | None = None
    """The transport's own settings (its model in the registry), as validated."""


@dataclass(frozen=True, slots=True)
class SocialSettings:
    networks: tuple[NetworkConfig, ...]
    max_attempts: int = 6
    lease_seconds: int = 300
    batch: int = 20
    backoff_seconds: int = 60
    on_publish: bool | Literal["auto"] = "auto"
    """Queue posts in the pass that first sees an article published: always
    (true), never (false: schedules.yaml decides), or "auto": only for the
    networks no ``kind: social`` schedule in schedules.yaml takes care of."""

    def get(self, name: str) -> NetworkConfig | None:
        return next((n for n in self.networks if n.name == name), None)


def _network(name: str, raw: Mapping[str, Any], social: SocialOptions,
             settings: Settings, problems: list[Problem]) -> NetworkConfig | None:
    options, found = table_problems(name, raw, settings.lines)
    problems.extend(found)
    account = social.networks[name]
    kind = account.network or name
    if found or options is None or kind not in registry.NETWORKS:
        return None
    declared = registry.network(kind)
    transport = registry.transports()[account.transport]
    secret_env = str(getattr(options, transport.secret_key)) if transport.secret_key else ""
    return NetworkConfig(
        name=name, network=kind, transport=transport.name,
        limit=account.limit if account.limit is not None else declared.limit,
        utm=account.utm if account.utm is not None else social.utm,
        hashtags=account.hashtags if account.hashtags is not None else social.hashtags,
        language=account.language or settings.site.language,
        base_url=str(getattr(options, "url", "")).rstrip("/"),
        identifier=str(getattr(options, "handle", "")), secret_env=secret_env,
        visibility=str(getattr(options, "visibility", "public")), options=options,
    )


def social_problems(settings: Settings) -> tuple[SocialSettings, list[Problem]]:
    """``[social]`` (validated when dispatch.toml was read) checked per table
    against its transport; never raises, so ``dispatch check`` can list everything."""
    social = settings.social
    problems: list[Problem] = []
    networks: list[NetworkConfig] = []
    for name, account in social.networks.items():
        # Only the keys written in the table, so the transport's defaults apply.
        table = account.model_dump(exclude_unset=True)
        config = _network(name, table, social, settings, problems)
        if config is not None:
            networks.append(config)
    result = SocialSettings(
        networks=tuple(networks), max_attempts=social.max_attempts,
        lease_seconds=social.lease_seconds, batch=social.batch,
        backoff_seconds=social.backoff_seconds, on_publish=social.on_publish,
    )
    return result, problems


def load_social(settings: Settings) -> SocialSettings:
    social, problems = social_problems(settings)
    if any(p.is_error for p in problems):
        raise ConfigError(problems)
    return social
