"""``dispatch.toml`` plus the environment, turned into frozen settings.

Every section of the file is a pydantic model declared beside the code that
reads it and listed in :data:`dispatch.sections.SECTIONS`; the core ones
(site, sender, paths, database) are declared here. :func:`load_settings`
validates the whole file at once and raises one :class:`ConfigError` listing
every unknown section or key, wrong type and bad value with its line, so
every command refuses a mistaken file before it does anything. Secrets only
ever come from the environment and are masked in ``repr``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from dispatch.errors import ConfigError, Problem
from dispatch.sections import (
    CONFIG_FILE,
    SectionModel,
    default_section,
    environment_problems,
    mask_url,
    section_model,
    validate_sections,
)
from dispatch.sourcelines import SourceLines, toml_lines
from dispatch.values import controls, urls
from dispatch.values.language import language_tag

if TYPE_CHECKING:
    from dispatch.bounces.settings import BounceOptions
    from dispatch.delivery.options import DeliveryOptions
    from dispatch.feeds.options import FeedOptions
    from dispatch.render.options import EmailOptions
    from dispatch.social.options import SocialOptions
    from dispatch.subscribers.options import SubscriberOptions
    from dispatch.web.options import WebOptions

__all__ = ["CONFIG_FILE", "DATABASE_ENV", "SenderSettings", "Settings", "SiteSettings",
           "load_settings", "locate_key"]

DATABASE_ENV = "DISPATCH_DATABASE_URL"


class SiteSettings(SectionModel):
    """``[site]``."""

    title: str = "dispatch"
    """The site's name: feed titles, email subjects and footers."""
    url: str = "http://localhost:8000"
    """Public base URL of the site, without a trailing slash."""
    language: str = "en"
    """BCP 47 language of the site (feeds, emails, posts)."""
    timezone: str = "UTC"
    """IANA zone in which article dates without an offset are read."""
    description: str = ""
    """One line about the site, for the feeds."""
    author: str | None = None
    """Feed author; the title when unset."""

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not urls.is_absolute(value):
            raise ValueError("an absolute URL: http:// or https:// followed by a host")
        return value.rstrip("/")

    @field_validator("title", "description", "author")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        # The title is the default From: name and in every subject.
        return None if value is None else _one_line(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return language_tag(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone name such as Europe/London") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _one_line(value: str) -> str:
    # Any line break ends a header (Python's email package and some clients
    # also break on NEL and U+2028), so a value holding one could add a Bcc:.
    if not controls.is_one_line(value):
        raise ValueError("one line without control characters (a line break could add "
                         "email headers of its own)")
    return value


class SenderSettings(SectionModel):
    """``[sender]``: who every email is from. ``name`` defaults to the site title."""

    name: str = "dispatch"
    """Display name in From:; the site title when unset."""
    email: str = "newsletter@localhost"
    """The From: address, bare (no display name)."""
    postal_address: str = ""
    """Shown in every email footer (the law in many countries)."""
    reply_to: str | None = None
    """One address (optionally with a name) for Reply-To:."""

    @field_validator("name", "postal_address")
    @classmethod
    def _line(cls, value: str) -> str:
        return _one_line(value)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        return _bare_address(value)

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else _reply_address(value)


class PathSettings(SectionModel):
    """``[paths]``: folders, relative to the site folder."""

    content: str = "content"
    """Where the Markdown articles are."""
    templates: str = "templates"
    """Email templates that override the packaged ones."""
    state: str = ".dispatch"
    """State: the SQLite database, captured mail and posts."""


class DatabaseSettings(SectionModel):
    """``[database]``."""

    url: str = Field(default="", json_schema_extra={"env": DATABASE_ENV, "secret": True})
    """SQLAlchemy URL; empty means SQLite in the state folder."""


def _mask_url(url: str) -> str:
    return mask_url(url)


@dataclass(frozen=True)
class Settings:
    root: Path
    site: SiteSettings = field(default_factory=SiteSettings)
    sender: SenderSettings = field(default_factory=SenderSettings)
    content_dir: Path = Path("content")
    templates_dir: Path = Path("templates")
    state_dir: Path = Path(".dispatch")
    database_url: str = field(default="", repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    source_text: str = field(default="", repr=False)
    sections: Mapping[str, SectionModel] = field(default_factory=dict, repr=False)
    """Every validated section by name; one missing from the file has its defaults."""
    lines: SourceLines = field(default_factory=SourceLines, repr=False)

    def __repr__(self) -> str:
        return (
            f"Settings(root={self.root!s}, site={self.site!r}, "
            f"database_url={_mask_url(self.database_url)!r})"
        )

    def _typed(self, name: str) -> Any:
        value = self.sections.get(name)
        if value is not None:
            return value
        # Settings built in code with ``raw=`` rather than by load_settings.
        written = self.raw.get(name)
        if isinstance(written, Mapping):
            return section_model(name).model_validate(written)
        return default_section(name)

    @property
    def delivery(self) -> DeliveryOptions:
        return cast("DeliveryOptions", self._typed("delivery"))

    @property
    def social(self) -> SocialOptions:
        return cast("SocialOptions", self._typed("social"))

    @property
    def feeds(self) -> FeedOptions:
        return cast("FeedOptions", self._typed("feeds"))

    @property
    def email(self) -> EmailOptions:
        return cast("EmailOptions", self._typed("email"))

    @property
    def subscribers(self) -> SubscriberOptions:
        return cast("SubscriberOptions", self._typed("subscribers"))

    @property
    def web(self) -> WebOptions:
        return cast("WebOptions", self._typed("web"))

    @property
    def bounces(self) -> BounceOptions:
        return cast("BounceOptions", self._typed("bounces"))

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level table of dispatch.toml as written, or an empty mapping.

        Kept for readers not yet moved to the typed sections above; the
        file has been validated before any of them runs."""
        value = self.raw.get(name, {})
        return value if isinstance(value, Mapping) else {}

    def line_of(self, key: str) -> int | None:
        """Line number of ``key`` (dotted) in dispatch.toml, for error messages."""
        if self.lines.values or self.lines.keys:
            return self.lines.dotted(key)
        return locate_key(self.source_text, key)

    def problem(self, key: str, message: str, expected: str | None = None) -> Problem:
        return Problem(
            path=CONFIG_FILE, line=self.line_of(key), field=key, message=message,
            expected=expected,
        )

    @property
    def fingerprint(self) -> str:
        """What derived article fields depend on; part of the load-cache key."""
        return f"{self.site.url}|{self.site.timezone}"


def locate_key(text: str, dotted: str) -> int | None:
    """Find the line of ``a.b.c`` in TOML text: the table header, then the key.

    tomllib keeps no positions, and a wrong line is worse than none, so this
    only answers when the key is found inside the right table.
    """
    *tables, key = dotted.split(".")
    table = ".".join(tables)
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?([^\]]+)\]\]?", stripped)
        if header:
            current = header.group(1).strip()
            if current == dotted:
                return number
            continue
        if current == table and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return number
    return None


_BARE = 'a bare email address such as "news@example.org" (the display name goes in sender.name)'


def _bare_address(value: str) -> str:
    """``[sender] email``: one address by the address module's rules, no name, no <…>."""
    from dispatch.values.address import address_problem  # email-validator: slow to import

    value = value.strip()
    if value.startswith("<"):
        raise ValueError(_BARE)
    problem = address_problem(value)
    if problem is not None:
        raise ValueError(f"{problem}; {_BARE}")
    return value


_REPLY_TO = 'one address, e.g. "help@example.org" or "Help desk <help@example.org>"'


def _reply_address(value: str) -> str | None:
    """``[sender] reply_to``: one address, optionally with a display name, on one line."""
    if not controls.is_one_line(value):
        raise ValueError(f"{_REPLY_TO}; a line break or control character could add headers "
                         "of its own")
    if not value.strip():
        return None
    # The email package's header parser costs more to import than a site
    # without reply_to should pay for at every command's start.
    from email import policy
    from email.utils import getaddresses

    from dispatch.values.address import address_problem  # email-validator: slow to import

    pairs = getaddresses([value])
    # The header parser that will write it must see the same single address.
    parsed = policy.SMTP.header_factory("Reply-To", value)
    addresses: tuple[Any, ...] = getattr(parsed, "addresses", ())
    if (len(pairs) != 1 or address_problem(pairs[0][1]) is not None
            or len(addresses) != 1
            or addresses[0].addr_spec != pairs[0][1] or parsed.defects):
        raise ValueError(_REPLY_TO)
    return value.strip()


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and data; a file that is not UTF-8 TOML is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        return text, tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(CONFIG_FILE, f"not UTF-8 at byte {exc.start}")]) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError([Problem(CONFIG_FILE, f"not valid TOML: {exc}",
                                   int(match.group(1)) if match else None)]) from None


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``ROOT/dispatch.toml`` (optional) and the environment.

    Raises one :class:`ConfigError` with every problem in the file, and in
    the environment variables that stand for its URLs.
    """
    env = os.environ if environ is None else environ
    root = root.resolve()
    path = root / CONFIG_FILE
    text, raw = read_toml(path) if path.exists() else ("", {})
    lines = toml_lines(text)
    sections, problems = validate_sections(raw, lines)
    problems += environment_problems(env)
    if problems:
        raise ConfigError(problems)
    site = sections.get("site") or SiteSettings()
    sender = sections.get("sender") or SenderSettings()
    assert isinstance(site, SiteSettings) and isinstance(sender, SenderSettings)
    if "name" not in raw.get("sender", {}):
        sender = sender.model_copy(update={"name": site.title})
    paths = sections.get("paths") or PathSettings()
    database = sections.get("database") or DatabaseSettings()
    assert isinstance(paths, PathSettings) and isinstance(database, DatabaseSettings)
    state_dir = root / paths.state
    database_url = env.get(DATABASE_ENV) or database.url
    if not database_url:
        database_url = f"sqlite:///{state_dir / 'dispatch.db'}"
    return Settings(
        root=root,
        site=site,
        sender=sender,
        content_dir=root / paths.content,
        templates_dir=root / paths.templates,
        state_dir=state_dir,
        database_url=database_url,
        raw=raw,
        source_text=text,
        sections=sections,
        lines=lines,
    )
