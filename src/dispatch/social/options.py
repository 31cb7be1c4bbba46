"""``[social]`` and its ``[social.<name>]`` tables in dispatch.toml, as written.

A ``[social.<name>]`` table may hold the keys every account has (below) and
the keys of any registered transport; which of those its own transport
actually reads, and the values they need, is checked against that
transport's settings model by ``social/config.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from dispatch.errors import Problem
from dispatch.sections import CONFIG_FILE, SectionModel
from dispatch.social.networks import NETWORKS, carries, network, transports
from dispatch.sourcelines import SourceLines, known_name, suggest
from dispatch.values.language import language_tag

DEFAULT_UTM = "utm_source={network}&utm_medium=social&utm_campaign={slug}"


class AccountOptions(SectionModel):
    """The keys every ``[social.<name>]`` table may have."""

    network: str | None = None
    """Whose counting rule and default limit apply; the table name by default."""
    transport: str = "capture"
    """How the post leaves: capture, webhook, or the network's own API."""
    limit: int | None = Field(default=None, ge=40)
    """Override the network's limit (Mastodon servers differ)."""
    hashtags: int | None = Field(default=None, ge=0)
    """Override [social] hashtags for this account."""
    utm: str | None = None
    """Override [social] utm for this account."""
    language: str | None = None
    """The post's language; [site] language by default."""

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else language_tag(value)

    @field_validator("network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        return None if value is None else known_name(value, NETWORKS)

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str) -> str:
        return known_name(value, transports())


def _account_model() -> type[SectionModel]:
    """:class:`AccountOptions` plus every registered transport's keys, all
    optional here (whether one is needed depends on the table's transport)."""
    extra: dict[str, Any] = {}
    for transport in transports().values():
        for name, info in transport.options.model_fields.items():
            if name not in AccountOptions.model_fields and name not in extra:
                extra[name] = (info.annotation | None, None)  # type: ignore[operator]
    model: type[SectionModel] = create_model("NetworkTable", __base__=AccountOptions, **extra)
    return model


if TYPE_CHECKING:
    NetworkTable = AccountOptions
else:
    NetworkTable = _account_model()


class SocialOptions(SectionModel):
    utm: str = DEFAULT_UTM
    """Query added to the article link, with {network} and {slug}; "" for none."""
    hashtags: int = Field(default=2, ge=0)
    """At most this many tags, from the article's tags, only while they fit."""
    max_attempts: int = Field(default=6, ge=1)
    """429/5xx answers are retried with backoff (Retry-After wins)."""
    lease_seconds: int = Field(default=300, ge=10)
    """How long a claimed post stays with its worker."""
    batch: int = Field(default=20, ge=1)
    """Posts claimed at a time."""
    backoff_seconds: int = Field(default=60, ge=1)
    """First retry delay; it doubles per attempt."""
    on_publish: bool | Literal["auto"] = "auto"
    """Queue a new article's posts at once (true), never (false: schedules
    decide), or "auto": only for networks no social schedule covers."""
    networks: dict[str, NetworkTable] = Field(default_factory=dict)
    """Each ``[social.<name>]`` table, by name."""

    flatten = ("networks",)

    @model_validator(mode="before")
    @classmethod
    def _tables(cls, data: Any) -> Any:
        # [social.x] arrives as a key "x" of [social] holding a table.
        if not isinstance(data, Mapping):
            return data
        tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
        rest = {k: v for k, v in data.items() if k not in tables}
        return {**rest, "networks": tables} if tables else rest

    @classmethod
    def cross_check(cls, raw: Mapping[str, Any], lines: SourceLines) -> list[Problem]:
        problems: list[Problem] = []
        for name, table in raw.items():
            if isinstance(table, Mapping):
                problems.extend(table_problems(str(name), table, lines)[1])
        return problems


def _problem(lines: SourceLines, key: str, message: str, expected: str | None) -> Problem:
    return Problem(CONFIG_FILE, message, lines.dotted(key), key, expected)


def table_problems(name: str, raw: Mapping[str, Any], lines: SourceLines
                   ) -> tuple[SectionModel | None, list[Problem]]:
    """One ``[social.<name>]`` table against its network and its transport:
    the transport's own settings (validated), and what is wrong."""
    where = f"social.{name}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", name):
        return None, [_problem(lines, where, "bad network table name",
                               "lowercase letters, digits, - and _")]
    kind = raw.get("network", name)
    if not isinstance(kind, str) or kind not in NETWORKS:
        if "network" in raw:
            return None, []  # the model reports a bad `network =` value
        close = suggest(str(kind), NETWORKS)
        return None, [_problem(
            lines, where, f"unknown network {kind!r} (the table name, as it sets no network)",
            f"did you mean {close!r}?" if close else "one of " + ", ".join(NETWORKS))]
    name_of_transport = raw.get("transport", "capture")
    known = transports()
    if not isinstance(name_of_transport, str) or name_of_transport not in known:
        return None, []  # reported by the model
    transport = known[name_of_transport]
    problems: list[Problem] = []
    own_keys = set(transport.options.model_fields)
    secret_keys = {t.secret_key for t in known.values() if t.secret_key}
    for key in raw:
        if key in AccountOptions.model_fields or key in own_keys:
            continue
        owners = [t.name for t in known.values() if key in t.options.model_fields]
        if not owners:
            continue  # not a key of any transport: the model reports it
        close = transport.secret_key if key in secret_keys else suggest(
            str(key), [*AccountOptions.model_fields, *own_keys])
        problems.append(_problem(
            lines, f"{where}.{key}", f"{key!r} is not used by the {transport.name} transport "
            f"(only by {' and '.join(owners)})",
            f"did you mean {close!r}?" if close else
            f"keys of transport = \"{transport.name}\": " + (", ".join(own_keys) or "none")))
    if not carries(transport.name, kind):
        own = network(kind).transport
        problems.append(_problem(
            lines, f"{where}.transport",
            f"the {transport.name} transport cannot post a {kind} post",
            f"transport = \"capture\", \"webhook\" or \"{own.name}\"" if own
            else "transport = \"capture\" or \"webhook\""))
    options: SectionModel | None = None
    try:
        options = transport.options.model_validate(
            {k: v for k, v in raw.items() if k in own_keys})
    except ValidationError as exc:
        for error in exc.errors():
            key = f"{where}.{'.'.join(str(p) for p in error['loc'])}"
            text = str(error.get("msg", "")).removeprefix("Value error, ")
            text = text.removeprefix("Input should be ")
            problems.append(
                _problem(lines, key, "missing", "a value for this key")
                if error["type"] == "missing" else
                _problem(lines, key, f"{error.get('input')!r} is not allowed",
                         text[:1].lower() + text[1:]))
    return options, problems
