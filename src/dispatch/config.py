"""``dispatch.toml`` plus the environment, turned into frozen settings.

Every stage reads its own section through :meth:`Settings.section`; the core
settings (site, sender, paths, database) are typed here. Secrets only ever
come from the environment and are masked in ``repr``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.errors import ConfigError, Problem

CONFIG_FILE = "dispatch.toml"
DATABASE_ENV = "DISPATCH_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class SiteSettings:
    title: str = "dispatch"
    url: str = "http://localhost:8000"
    """Public base URL of the site, without a trailing slash."""
    language: str = "en"
    timezone: str = "UTC"
    description: str = ""
    author: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class SenderSettings:
    name: str = "dispatch"
    email: str = "newsletter@localhost"
    postal_address: str = ""
    reply_to: str | None = None


def _mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


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

    def __repr__(self) -> str:
        return (
            f"Settings(root={self.root!s}, site={self.site!r}, "
            f"database_url={_mask_url(self.database_url)!r})"
        )

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level table of dispatch.toml, or an empty mapping."""
        value = self.raw.get(name, {})
        return value if isinstance(value, Mapping) else {}

    def line_of(self, key: str) -> int | None:
        """Best-effort line number of ``key`` in dispatch.toml, for error messages."""
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


def _str(raw: Mapping[str, Any], key: str, default: str, problems: list[Problem],
         where: str, text: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        problems.append(Problem(CONFIG_FILE, f"{value!r} is not text",
                                locate_key(text, f"{where}.{key}"), f"{where}.{key}", "a string"))
        return default
    return value


# Any line break ends a header (Python's email package and some clients also
# break on these), so a Reply-To holding one could add a Bcc: of its own.
_LINE_BREAK = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _reply_to(raw: Mapping[str, Any], problems: list[Problem], text: str) -> str | None:
    """``[sender] reply_to``: one address, optionally with a display name, on one line."""
    if "reply_to" not in raw:
        return None
    value = raw["reply_to"]
    line = locate_key(text, "sender.reply_to")
    expected = 'one address, e.g. "help@example.org" or "Help desk <help@example.org>"'
    if not isinstance(value, str):
        problems.append(Problem(CONFIG_FILE, f"{value!r} is not text", line, "sender.reply_to",
                                expected))
        return None
    if _LINE_BREAK.search(value):
        problems.append(Problem(CONFIG_FILE, "contains a line break or control character; "
                                "refused because it could add headers of its own", line,
                                "sender.reply_to", expected))
        return None
    if not value.strip():
        return None
    pairs = getaddresses([value])
    # The header parser that will write it must see the same single address.
    parsed = policy.SMTP.header_factory("Reply-To", value)
    addresses: tuple[Any, ...] = getattr(parsed, "addresses", ())
    if (len(pairs) != 1 or not _ADDRESS.match(pairs[0][1]) or len(addresses) != 1
            or addresses[0].addr_spec != pairs[0][1] or parsed.defects):
        problems.append(Problem(CONFIG_FILE, f"{value!r} is not an email address", line,
                                "sender.reply_to", expected))
        return None
    return value.strip()


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``ROOT/dispatch.toml`` (optional) and the environment."""
    env = os.environ if environ is None else environ
    root = root.resolve()
    path = root / CONFIG_FILE
    text = ""
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8-sig")
            raw = tomllib.loads(text)
        except UnicodeDecodeError as exc:
            raise ConfigError([Problem(CONFIG_FILE, f"not UTF-8 at byte {exc.start}")]) from None
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            raise ConfigError([Problem(CONFIG_FILE, f"not valid TOML: {exc}",
                                       int(match.group(1)) if match else None)]) from None

    problems: list[Problem] = []
    site_raw = raw.get("site", {})
    sender_raw = raw.get("sender", {})
    paths_raw = raw.get("paths", {})
    site = SiteSettings(
        title=_str(site_raw, "title", "dispatch", problems, "site", text),
        url=_str(site_raw, "url", "http://localhost:8000", problems, "site", text).rstrip("/"),
        language=_str(site_raw, "language", "en", problems, "site", text),
        timezone=_str(site_raw, "timezone", "UTC", problems, "site", text),
        description=_str(site_raw, "description", "", problems, "site", text),
        author=site_raw.get("author") if isinstance(site_raw.get("author"), str) else None,
    )
    if not re.match(r"^https?://[^/\s]+", site.url):
        problems.append(Problem(CONFIG_FILE, f"{site.url!r} is not an absolute URL",
                                locate_key(text, "site.url"), "site.url",
                                "http:// or https:// followed by a host"))
    try:
        ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(CONFIG_FILE, f"unknown timezone {site.timezone!r}",
                                locate_key(text, "site.timezone"), "site.timezone",
                                "an IANA name such as Europe/London"))
    sender = SenderSettings(
        name=_str(sender_raw, "name", site.title, problems, "sender", text),
        email=_str(sender_raw, "email", "newsletter@localhost", problems, "sender", text),
        postal_address=_str(sender_raw, "postal_address", "", problems, "sender", text),
        reply_to=_reply_to(sender_raw, problems, text),
    )
    if problems:
        raise ConfigError(problems)

    state_dir = root / _str(paths_raw, "state", ".dispatch", problems, "paths", text)
    database_url = env.get(DATABASE_ENV) or raw.get("database", {}).get("url") or ""
    if not database_url:
        database_url = f"sqlite:///{state_dir / 'dispatch.db'}"
    return Settings(
        root=root,
        site=site,
        sender=sender,
        content_dir=root / _str(paths_raw, "content", "content", problems, "paths", text),
        templates_dir=root / _str(paths_raw, "templates", "templates", problems, "paths", text),
        state_dir=state_dir,
        database_url=database_url,
        raw=raw,
        source_text=text,
    )
