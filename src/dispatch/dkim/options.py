"""``[dkim]`` in dispatch.toml, as written.

No ``[dkim]`` table means messages go out unsigned. The private key never
lives in this file: it comes from ``DISPATCH_DKIM_PRIVATE_KEY`` (the PEM text)
or ``DISPATCH_DKIM_KEY_FILE`` (a path), so the file can be committed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from dispatch.errors import Problem
from dispatch.sections import CONFIG_FILE, SectionModel
from dispatch.sourcelines import SourceLines

KEY_ENV = "DISPATCH_DKIM_PRIVATE_KEY"
KEY_FILE_ENV = "DISPATCH_DKIM_KEY_FILE"
ALGORITHMS: tuple[str, ...] = ("rsa-sha256", "ed25519-sha256")
# A DNS label: the selector becomes SELECTOR._domainkey.DOMAIN.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_NOT_HERE = (f"a private key is never read from dispatch.toml; put the PEM text in "
             f"${KEY_ENV} or the key file's path in ${KEY_FILE_ENV}")


class DkimOptions(SectionModel):
    selector: str | None = None
    """The DNS selector: the public key is published at SELECTOR._domainkey.DOMAIN."""
    domain: str | None = None
    """The signing domain (d=); by default the domain of sender.email."""
    algorithm: str | list[str] = "rsa-sha256"
    """rsa-sha256, ed25519-sha256, or both as a list (two signatures per message)."""
    ed25519_selector: str | None = None
    """The Ed25519 key's selector when signing with both (each key has its own record)."""
    # Any type: a key written here is reported by cross_check without its
    # value ever being echoed in an error message.
    private_key: Any = Field(default=None, json_schema_extra={
        "secret": True, "env": f"{KEY_ENV} or {KEY_FILE_ENV}"})
    """Refused: the key comes from DISPATCH_DKIM_PRIVATE_KEY or DISPATCH_DKIM_KEY_FILE."""

    @field_validator("selector", "ed25519_selector", "domain")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError("a DNS name: letters, digits, hyphens and dots, e.g. \"news2026\"")
        return value

    @field_validator("algorithm")
    @classmethod
    def _distinct(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if name not in ALGORITHMS:
                raise ValueError('"rsa-sha256", "ed25519-sha256", or both as a list')
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError('one algorithm, or both once each: ["rsa-sha256", "ed25519-sha256"]')
        return value

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "private_key" and value else value)

    @property
    def algorithms(self) -> tuple[str, ...]:
        chosen = [self.algorithm] if isinstance(self.algorithm, str) else self.algorithm
        return tuple(a for a in ALGORITHMS if a in chosen)  # RSA first, always

    def selector_for(self, algorithm: str) -> str:
        if algorithm == "ed25519-sha256" and len(self.algorithms) == 2:
            return self.ed25519_selector or ""
        return self.selector or ""

    @classmethod
    def cross_check(cls, raw: Mapping[str, Any], lines: SourceLines) -> list[Problem]:
        problems: list[Problem] = []
        for name in ("private_key",):
            if name in raw:
                problems.append(Problem(CONFIG_FILE, "refused: " + _NOT_HERE,
                                        lines.line(("dkim", name)), f"dkim.{name}",
                                        None))
        if "selector" not in raw:
            problems.append(Problem(CONFIG_FILE, "missing", lines.line(("dkim",)),
                                    "dkim.selector", 'the DNS selector, e.g. "news2026"'))
        both = isinstance(raw.get("algorithm"), list) and len(set(raw["algorithm"])) == 2
        if both and "ed25519_selector" not in raw:
            problems.append(Problem(
                CONFIG_FILE, "signing with both algorithms needs a second selector",
                lines.line(("dkim", "algorithm")), "dkim.ed25519_selector",
                "a selector for the Ed25519 key, different from dkim.selector"))
        elif both and raw.get("ed25519_selector") == raw.get("selector"):
            problems.append(Problem(
                CONFIG_FILE, "the Ed25519 key needs its own selector",
                lines.line(("dkim", "ed25519_selector")), "dkim.ed25519_selector",
                "a selector different from dkim.selector"))
        return problems
