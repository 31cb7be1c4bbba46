"""``[delivery]`` in dispatch.toml plus the environment, as frozen settings.

SMTP is configured by one URL, from ``DISPATCH_SMTP_URL`` or
``[delivery] smtp_url``::

    smtp://user:pass@smtp.example.com:587?tls=starttls&connections=4&rate=10&daily=50000
    smtps://user@smtp.example.com:465          (password from DISPATCH_SMTP_PASSWORD)

Query parameters (all optional): ``tls`` (starttls | ssl | none), ``connections``,
``rate`` (messages per second), ``burst``, ``hourly``, ``daily``, ``timeout``
(seconds), ``helo``. The same knobs may also be written as keys of
``[delivery]``; the URL wins, so one environment variable can retarget a
deployment completely.

Which transport: ``DISPATCH_SMTP_URL`` in the environment always means SMTP;
else an ``smtp_url`` in ``[delivery]`` means SMTP unless ``transport`` in the
same table names another one (honoured, with a warning from ``dispatch
check``); else ``transport``, by default ``capture``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from dispatch.config import CONFIG_FILE, Settings
from dispatch.delivery.options import SMTP_URL_ENV as SMTP_URL_ENV
from dispatch.delivery.registry import EMAIL_TRANSPORTS, email_transport
from dispatch.delivery.transport import BOUNCE_CODES
from dispatch.errors import ConfigError, Problem, Severity
from dispatch.outbox.policy import RetryPolicy
from dispatch.values import controls

SMTP_PASSWORD_ENV = "DISPATCH_SMTP_PASSWORD"
TransportName = str
"""A name in :data:`dispatch.delivery.registry.EMAIL_TRANSPORTS`."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    timeout: float = 30.0
    helo: str | None = None

    @property
    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port} (tls={self.tls})"


@dataclass(frozen=True)
class DeliverySettings:
    transport: TransportName = "capture"
    smtp: SmtpSettings | None = None
    maildir: Path = Path(".dispatch/maildir")
    connections: int = 4
    rate: float = 0.0
    """Messages per second across all connections of this worker; 0 = no limit."""
    burst: int = 0
    """Token-bucket size; 0 means one second's worth of ``rate``."""
    hourly_cap: int = 0
    daily_cap: int = 0
    batch_size: int = 50
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    bounce_codes: tuple[int, ...] = BOUNCE_CODES
    warnings: tuple[Problem, ...] = ()
    """Settings that load but probably do not do what was meant (for `dispatch check`)."""


_INTS = {"connections": 1, "burst": 0, "hourly_cap": 0, "daily_cap": 0, "batch_size": 1,
         "max_attempts": 1, "error_budget_min": 0}
_FLOATS = {"rate": 0.0, "lease_seconds": 1.0, "retry_base_seconds": 0.0,
           "retry_max_seconds": 0.0, "error_budget": 0.0, "timeout": 0.1}
_URL_KEYS = {"connections": "connections", "rate": "rate", "burst": "burst",
             "hourly": "hourly_cap", "daily": "daily_cap", "timeout": "timeout"}


def _number(key: str, value: Any, minimum: float, kind: type,
            blame: Callable[[str, str, str], Problem], problems: list[Problem]) -> Any:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        # nan passes no comparison and inf is no rate, pause or timeout.
        if not math.isfinite(number) or number < minimum:
            raise ValueError
        return number
    except (TypeError, ValueError, OverflowError):
        noun = "a whole number" if kind is int else "a number"
        problems.append(blame(key, f"{value!r} is not valid", f"{noun} ≥ {minimum:g}"))
        return None


class SmtpUrlError(ValueError):
    """Why an SMTP URL is unusable. The message never quotes the URL: it
    may hold a password, and a mis-split URL puts password pieces where a
    host or port is expected."""


URL_HINT = (f"smtp://user@host:587?tls=starttls, with the password in {SMTP_PASSWORD_ENV} "
            "or %-encoded in the URL (# as %23, / as %2F, @ as %40, : as %3A)")


def _unparsable(why: str) -> SmtpUrlError:
    return SmtpUrlError(f"the SMTP URL could not be parsed ({why}); a '#', '/', '?' or '@' "
                        "in the user name or password must be %-encoded")


def parse_smtp_url(url: str, password_env: str | None) -> tuple[SmtpSettings, dict[str, str]]:
    """Split an SMTP URL into connection settings and the remaining query knobs.

    Raises :class:`SmtpUrlError` with a message safe to print.
    """
    if controls.CONTROL.search(url):
        # urlsplit drops tabs and line breaks without a word: a password
        # holding one would be sent without it.
        raise _unparsable("a control character such as a line break or tab")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" taken for an IPv6 host
        raise _unparsable("the server part is malformed") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise SmtpUrlError("it does not start with smtp:// or smtps://")
    if scheme not in ("smtp", "smtps"):
        # Not even the scheme is named: a password given where the URL
        # belongs ("pa55:word") has one.
        raise SmtpUrlError("the scheme is not smtp:// or smtps://")
    # An unencoded '#', '/' or '?' in the password ends the server part early,
    # leaving the '@' (and the rest of the password) in the path, query or
    # fragment: urlsplit then sees a host and port made of password pieces.
    if "@" in parts.path + parts.query + parts.fragment:
        raise _unparsable("an '@' after the server part")
    try:
        port = parts.port
    except ValueError:
        raise _unparsable("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise _unparsable("no server host")
    if parts.path not in ("", "/") or parts.fragment:
        raise _unparsable("unexpected text after the server part")
    query = dict(parse_qsl(parts.query))
    tls = query.pop("tls", "ssl" if scheme == "smtps" else "starttls").lower()
    if tls not in ("starttls", "ssl", "none"):
        # Not quoted: the value is a piece of the URL.
        raise SmtpUrlError("tls in the SMTP URL is not starttls, ssl or none")
    port = port or (465 if tls == "ssl" else 587)
    if parts.password and not parts.username:
        # The client logs in only with a user name: the password would be dropped.
        raise SmtpUrlError("the SMTP URL has a password but no user name")
    password = unquote(parts.password) if parts.password else (password_env or None)
    try:
        timeout = float(query.pop("timeout", "30"))
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout) or timeout < _FLOATS["timeout"]:
        raise SmtpUrlError(f"timeout in the SMTP URL is not a number of seconds "
                           f"≥ {_FLOATS['timeout']:g}")
    config = SmtpSettings(parts.hostname, port, unquote(parts.username) if parts.username else None,
                          password, tls, timeout, query.pop("helo", None))  # type: ignore[arg-type]
    return config, query


def url_problems(url: str) -> list[tuple[str, str]]:
    """What is wrong with an SMTP URL as written, as (message, expected) pairs
    that never quote it; none for a usable URL.

    ``[delivery] smtp_url`` is checked with the rest of dispatch.toml by
    this, so a user fixing the file sees every mistake in one run."""
    try:
        _, query = parse_smtp_url(url, None)
    except SmtpUrlError as exc:
        return [(str(exc), URL_HINT)]
    found: list[tuple[str, str]] = []
    unknown = set(query) - set(_URL_KEYS)
    if unknown:
        found.append((f"unknown URL parameter(s) {', '.join(sorted(unknown))}",
                      ", ".join(["tls", "helo", *_URL_KEYS])))
    for name, key in _URL_KEYS.items():
        if name in query:
            kind, minimum = (int, _INTS[key]) if key in _INTS else (float, _FLOATS[key])
            wrong: list[Problem] = []
            _number(key, query[name], minimum, kind,
                    lambda k, m, e: Problem(CONFIG_FILE, m, None, k, e), wrong)
            found.extend((f"{name} in the SMTP URL is not valid", p.expected or "")
                         for p in wrong)
    return found


def load_delivery_settings(settings: Settings, environ: Mapping[str, str] | None = None
                           ) -> DeliverySettings:
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = settings.delivery.model_dump(exclude_none=True)
    problems: list[Problem] = []
    env_url = env.get(SMTP_URL_ENV) or ""
    file_url = raw.get("smtp_url") or ""
    url = env_url or file_url
    smtp: SmtpSettings | None = None
    from_url: dict[str, str] = {}  # setting -> the URL parameter it came from

    def blame(key: str, message: str, expected: str) -> Problem:
        """A problem at its source: the URL (in the environment or the file)
        for a value the URL gave, else the key's own line in the file."""
        if key in from_url:
            # Not the value: it is a piece of the URL, which may hold a password.
            message = f"{from_url[key]} in the SMTP URL is not valid"
        elif key != "smtp_url":
            return settings.problem(f"delivery.{key}", message, expected)
        if env_url:
            return Problem(f"environment variable {SMTP_URL_ENV}", message, None, None, expected)
        return settings.problem("delivery.smtp_url", message, expected)

    if url:
        try:
            smtp, query = parse_smtp_url(str(url), env.get(SMTP_PASSWORD_ENV))
        except SmtpUrlError as exc:
            # Reported with every other delivery problem, not alone.
            problems.append(blame("smtp_url", str(exc), URL_HINT))
            query = {}
        unknown = set(query) - set(_URL_KEYS)
        if unknown:
            names = ", ".join(sorted(unknown))
            problems.append(blame("smtp_url", f"unknown URL parameter(s) {names}",
                                  ", ".join(["tls", "helo", *_URL_KEYS])))
        raw.update({_URL_KEYS[k]: v for k, v in query.items() if k in _URL_KEYS})
        from_url.update({_URL_KEYS[k]: k for k in query if k in _URL_KEYS})
    # Precedence: the environment's URL retargets a deployment completely;
    # otherwise an smtp_url means SMTP unless [delivery] transport explicitly
    # says something else — then that is honoured, and `dispatch check` (and
    # the worker's log) warn that the URL is being ignored.
    notes: list[Problem] = []
    explicit = raw.get("transport")
    if env_url:
        transport = "smtp"
    elif file_url:
        transport = explicit or "smtp"
        if explicit in EMAIL_TRANSPORTS and not email_transport(explicit).needs_server:
            notes.append(Problem(
                CONFIG_FILE, f"smtp_url is set but transport = {explicit!r}, so nothing is sent "
                "over SMTP", settings.line_of("delivery.transport"), "delivery.transport",
                'transport = "smtp" (or remove the line) to send with smtp_url', Severity.WARNING))
    else:
        transport = explicit or "capture"
    if transport not in EMAIL_TRANSPORTS:
        problems.append(settings.problem("delivery.transport", f"unknown transport {transport!r}",
                                         ", ".join(EMAIL_TRANSPORTS)))
    elif email_transport(transport).needs_server and smtp is None and not url:
        problems.append(settings.problem("delivery.transport", "smtp needs a server URL",
                                         f"{SMTP_URL_ENV} or delivery.smtp_url"))
    values: dict[str, Any] = {}
    for key, minimum in _INTS.items():
        if key in raw:
            values[key] = _number(key, raw[key], minimum, int, blame, problems)
    for key, fminimum in _FLOATS.items():
        if key in raw:
            values[key] = _number(key, raw[key], fminimum, float, blame, problems)
    if values.get("error_budget") is not None and values["error_budget"] > 1:
        problems.append(settings.problem("delivery.error_budget", "must be a share of 1",
                                         "a number between 0 and 1, e.g. 0.1"))
    if problems:
        raise ConfigError(problems)
    base = RetryPolicy()
    policy = RetryPolicy(
        max_attempts=values.get("max_attempts") or base.max_attempts,
        base_seconds=values.get("retry_base_seconds", base.base_seconds),
        max_seconds=values.get("retry_max_seconds", base.max_seconds),
        lease_seconds=values.get("lease_seconds", base.lease_seconds),
        error_budget=values.get("error_budget", base.error_budget),
        error_budget_min=values.get("error_budget_min", base.error_budget_min))
    maildir = raw.get("maildir")
    return DeliverySettings(
        transport=transport,
        smtp=smtp,
        maildir=(settings.root / maildir if isinstance(maildir, str)
                 else settings.state_dir / "maildir"),
        connections=values.get("connections") or (4 if transport == "smtp" else 1),
        rate=values.get("rate", 0.0),
        burst=values.get("burst", 0),
        hourly_cap=values.get("hourly_cap", 0),
        daily_cap=values.get("daily_cap", 0),
        batch_size=values.get("batch_size") or 50,
        policy=policy,
        warnings=tuple(notes),
    )


def config_problems(settings: Settings) -> list[Problem]:
    """For ``dispatch check``: bad delivery settings, settings that conflict,
    and a password written into dispatch.toml (secrets belong in the environment)."""
    try:
        config = load_delivery_settings(settings)
    except ConfigError as exc:
        return list(exc.problems)
    found = list(config.warnings)
    url = settings.delivery.smtp_url
    if isinstance(url, str) and urlsplit(url).password:
        found.append(Problem(CONFIG_FILE, "a password is written in dispatch.toml",
                             settings.line_of("delivery.smtp_url"), "delivery.smtp_url",
                             f"the password in {SMTP_PASSWORD_ENV} instead", Severity.WARNING))
    return found
