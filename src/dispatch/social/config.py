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

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dispatch.config import CONFIG_FILE, Settings
from dispatch.errors import ConfigError, Problem

NetworkKind = Literal["x", "mastodon", "bluesky", "threads", "linkedin"]
TransportKind = Literal["capture", "mastodon", "bluesky", "webhook"]

NETWORKS: dict[str, int] = {
    "x": 280, "mastodon": 500, "bluesky": 300, "threads": 500, "linkedin": 3000,
}
# Which API transports can deliver which network's post; capture and webhook
# take anything.
API_TRANSPORTS: dict[str, str] = {"mastodon": "mastodon", "bluesky": "bluesky"}
TRANSPORTS = ("capture", "mastodon", "bluesky", "webhook")
DEFAULT_UTM = "utm_source={network}&utm_medium=social&utm_campaign={slug}"
# Keys of [social] itself that are options, not network tables.
GLOBAL_KEYS = {"utm", "hashtags", "max_attempts", "lease_seconds", "batch", "backoff_seconds",
               "on_publish"}
# Keys every [social.<name>] table may have, and those only its transport reads.
# Anything else is a typo or belongs to another transport, and is rejected:
# `limt = 300` silently ignored means a post written to the wrong limit.
NETWORK_KEYS = ("network", "transport", "limit", "hashtags", "utm", "language")
TRANSPORT_KEYS: dict[str, tuple[str, ...]] = {
    "capture": (),
    "mastodon": ("url", "token_env", "visibility"),
    "bluesky": ("url", "handle", "password_env"),
    "webhook": ("url", "secret_env"),
}
SECRET_KEYS = {"mastodon": "token_env", "bluesky": "password_env", "webhook": "secret_env"}


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


def _problem(settings: Settings, key: str, message: str,
             expected: str | None = None) -> Problem:
    """A dispatch.toml problem at ``key``'s line, else at its table's header
    (a missing key has no line of its own, but its table does)."""
    line = settings.line_of(key)
    parent = key
    while line is None and "." in parent:
        parent = parent.rsplit(".", 1)[0]
        line = settings.line_of(parent)
    return Problem(CONFIG_FILE, message, line, key, expected)


def suggest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_keys(name: str, raw: Mapping[str, Any], transport: str, settings: Settings,
                  problems: list[Problem]) -> None:
    allowed = NETWORK_KEYS + TRANSPORT_KEYS[transport]
    for key in raw:
        if key in allowed:
            continue
        owners = [t for t, keys in TRANSPORT_KEYS.items() if key in keys]
        if owners:
            message = (f"{key!r} is not used by the {transport} transport "
                       f"(only by {' and '.join(owners)})")
        else:
            message = f"unknown key {key!r}"
        close = (SECRET_KEYS.get(transport) if key in SECRET_KEYS.values()
                 else suggest(str(key), allowed))
        expected = (f"did you mean {close!r}?" if close
                    else f"one of {', '.join(allowed)} with transport = \"{transport}\"")
        problems.append(_problem(settings, f"social.{name}.{key}", message, expected))


def _env_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None


def _positive_int(raw: Mapping[str, Any], key: str, default: int, where: str,
                  settings: Settings, problems: list[Problem], minimum: int = 1) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(_problem(settings, f"{where}.{key}", f"{value!r} is not allowed",
                                 f"a whole number of at least {minimum}"))
        return default
    return value


def _on_publish(raw: Mapping[str, Any], settings: Settings,
                problems: list[Problem]) -> bool | Literal["auto"]:
    value = raw.get("on_publish", "auto")
    if isinstance(value, bool) or value == "auto":
        return value  # type: ignore[no-any-return]
    problems.append(_problem(settings, "social.on_publish", f"{value!r} is not allowed",
                             'true, false or "auto"'))
    return "auto"


def _network(name: str, raw: Mapping[str, Any], common_utm: str, common_tags: int,
             settings: Settings, problems: list[Problem]) -> NetworkConfig | None:
    where = f"social.{name}"
    before = len(problems)
    network = raw.get("network", name)
    if network not in NETWORKS:
        close = suggest(str(network), list(NETWORKS))
        problems.append(_problem(
            settings, f"{where}.network" if "network" in raw else where,
            f"unknown network {network!r}" + ("" if "network" in raw else
                                              " (the table name, as it sets no network)"),
            f"did you mean {close!r}?" if close else "one of " + ", ".join(NETWORKS)))
        return None
    transport = raw.get("transport", "capture")
    if transport not in TRANSPORTS:
        problems.append(_problem(settings, f"{where}.transport",
                                 f"unknown transport {transport!r}",
                                 "one of " + ", ".join(TRANSPORTS)))
        return None
    _unknown_keys(name, raw, transport, settings, problems)
    if transport in API_TRANSPORTS and API_TRANSPORTS[transport] != network:
        problems.append(_problem(
            settings, f"{where}.transport",
            f"the {transport} transport cannot post a {network} post",
            f"transport = \"capture\", \"webhook\" or \"{API_TRANSPORTS.get(network, 'capture')}\""
            if network in API_TRANSPORTS else "transport = \"capture\" or \"webhook\""))
    limit = _positive_int(raw, "limit", NETWORKS[network], where, settings, problems, minimum=40)
    hashtags = _positive_int(raw, "hashtags", common_tags, where, settings, problems, minimum=0)
    utm = raw.get("utm", common_utm)
    if not isinstance(utm, str):
        problems.append(_problem(settings, f"{where}.utm", "is not text",
                                 'a query such as "utm_source={network}", or ""'))
        utm = common_utm
    defaults = {
        "mastodon": ("https://mastodon.social", "DISPATCH_MASTODON_TOKEN"),
        "bluesky": ("https://bsky.social", "DISPATCH_BLUESKY_PASSWORD"),
        "webhook": ("", "DISPATCH_WEBHOOK_SECRET"),
    }
    base_url = identifier = token_env = ""
    if transport in defaults:
        url_default, env_default = defaults[transport]
        env_key = SECRET_KEYS[transport]
        base_url = raw.get("url", url_default)
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            problems.append(_problem(settings, f"{where}.url", f"{base_url!r} is not a URL",
                                     "an http:// or https:// URL"))
            base_url = ""
        token_env = raw.get(env_key, env_default)
        if not _env_name(token_env):
            problems.append(_problem(
                settings, f"{where}.{env_key}",
                f"{token_env!r} is not an environment variable name",
                "the NAME of a variable holding the secret, never the secret itself"))
    if transport == "bluesky":
        identifier = raw.get("handle", "")
        if not isinstance(identifier, str) or not identifier:
            problems.append(_problem(settings, f"{where}.handle", "missing",
                                     'handle = "name.bsky.social"'))
            identifier = ""
    language = raw.get("language", settings.site.language)
    visibility = raw.get("visibility", "public")
    if visibility not in ("public", "unlisted", "private", "direct"):
        problems.append(_problem(settings, f"{where}.visibility",
                                 f"{visibility!r} is not allowed",
                                 "public, unlisted, private or direct"))
    if len(problems) > before:
        return None
    return NetworkConfig(
        name=name, network=network, transport=transport, limit=limit, utm=utm,
        hashtags=hashtags, language=str(language), base_url=base_url.rstrip("/"),
        identifier=identifier, secret_env=token_env, visibility=str(visibility),
    )


def social_problems(settings: Settings) -> tuple[SocialSettings, list[Problem]]:
    """Parse ``[social]``; never raises, so ``dispatch check`` can list everything."""
    raw = settings.section("social")
    problems: list[Problem] = []
    utm = raw.get("utm", DEFAULT_UTM)
    if not isinstance(utm, str):
        problems.append(_problem(settings, "social.utm", "is not text",
                                 'a query such as "utm_source={network}", or ""'))
        utm = DEFAULT_UTM
    tags = _positive_int(raw, "hashtags", 2, "social", settings, problems, minimum=0)
    networks: list[NetworkConfig] = []
    for name, table in raw.items():
        if name in GLOBAL_KEYS:
            continue
        if not isinstance(table, Mapping):
            close = suggest(str(name), sorted(GLOBAL_KEYS))
            problems.append(_problem(settings, f"social.{name}", f"unknown option {name!r}",
                                     f"did you mean {close!r}?" if close else
                                     ", ".join(sorted(GLOBAL_KEYS))
                                     + " or a [social.<network>] table"))
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", name):
            problems.append(_problem(settings, f"social.{name}", "bad network table name",
                                     "lowercase letters, digits, - and _"))
            continue
        config = _network(name, table, utm, tags, settings, problems)
        if config is not None:
            networks.append(config)
    social = SocialSettings(
        networks=tuple(networks),
        max_attempts=_positive_int(raw, "max_attempts", 6, "social", settings, problems),
        lease_seconds=_positive_int(raw, "lease_seconds", 300, "social", settings, problems,
                                    minimum=10),
        batch=_positive_int(raw, "batch", 20, "social", settings, problems),
        backoff_seconds=_positive_int(raw, "backoff_seconds", 60, "social", settings, problems),
        on_publish=_on_publish(raw, settings, problems),
    )
    return social, problems


def load_social(settings: Settings) -> SocialSettings:
    social, problems = social_problems(settings)
    if any(p.is_error for p in problems):
        raise ConfigError(problems)
    return social
