"""The registry of ``dispatch.toml`` sections, and how they are validated.

Each top-level table of ``dispatch.toml`` is a pydantic model declared
beside the code that reads it (``[delivery]`` in ``delivery/options.py``,
``[social]`` in ``social/options.py`` …) and named here by one line.
:func:`validate_sections` checks the whole file against them at once, so
an unknown section, an unknown key, a wrong type and a bad value are all
reported together, each as ``dispatch.toml:LINE: section.key: problem``
with the nearest valid name when one is close.

The models are listed as ``"module:Class"`` and imported only when a file
is validated: importing every stage to read its settings would load the
email renderer and the social counting libraries for ``dispatch --help``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from dispatch.errors import Problem
from dispatch.sourcelines import KeyPath, SourceLines, suggest

CONFIG_FILE = "dispatch.toml"

SECTIONS: dict[str, str] = {
    "site": "dispatch.config:SiteSettings",
    "sender": "dispatch.config:SenderSettings",
    "paths": "dispatch.config:PathSettings",
    "database": "dispatch.config:DatabaseSettings",
    "delivery": "dispatch.delivery.options:DeliveryOptions",
    "social": "dispatch.social.options:SocialOptions",
    "feeds": "dispatch.feeds.options:FeedOptions",
    "email": "dispatch.render.options:EmailOptions",
    "subscribers": "dispatch.subscribers.options:SubscriberOptions",
    "web": "dispatch.web.options:WebOptions",
    "bounces": "dispatch.bounces.settings:BounceOptions",
    "dkim": "dispatch.dkim.options:DkimOptions",
}
"""Section name -> the model that validates it. A new section is one line here."""

ENVIRONMENT: dict[str, str] = {
    "DISPATCH_SMTP_URL": "dispatch.delivery.settings:url_problems",
    "DISPATCH_BOUNCE_MAILBOX": "dispatch.bounces.mailboxurl:url_problems",
}
"""Environment variables that stand for a setting of the file -> what finds
their mistakes, as (message, expected) pairs that never quote the value.
They are checked with the file so that a mistake in either shows in the
same run; a checker is imported only when its variable is set."""


class SectionModel(BaseModel):
    """Base of every section model: unknown keys are errors, types are strict
    (``"4"`` is not a number, ``1`` is not true), values are frozen."""

    # defer_build: a model's validator is made the first time it is used, so
    # sections a site does not have cost nothing at start-up. The attribute
    # docstrings are the README's settings reference, but they are read there
    # (``dispatch.reference``), not here: pydantic's use_attribute_docstrings
    # parses each model's source when the class is made, a third of the time
    # every command spent reading dispatch.toml.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)

    flatten: ClassVar[tuple[str, ...]] = ()
    """Fields that hold the section's sub-tables under their own names (e.g.
    ``[social.x]`` kept in ``SocialOptions.networks``): left out of key paths."""

    @classmethod
    def cross_check(cls, raw: Mapping[str, Any], lines: SourceLines) -> list[Problem]:
        """Problems one key's type cannot show (how keys depend on each other).

        Runs on the section as written even when the model refused it, so
        that these are reported together with the others."""
        return []

    def __repr_args__(self) -> Any:
        # Secrets are marked per field; a URL keeps its host but not its password.
        for name, value in super().__repr_args__():
            extra = type(self).model_fields[name].json_schema_extra if name else None
            if isinstance(extra, dict) and extra.get("secret") and isinstance(value, str):
                yield name, mask_url(value)
            else:
                yield name, value


def mask_url(url: str) -> str:
    """``scheme://user:***@host``: a password in a URL never reaches a log or repr."""
    # Up to the last "@": an unencoded "@" in the password must not leave its tail shown.
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


@cache
def section_model(name: str) -> type[SectionModel]:
    module, attr = SECTIONS[name].split(":")
    model = getattr(importlib.import_module(module), attr)
    assert isinstance(model, type) and issubclass(model, SectionModel)
    return model


def _model_of(annotation: Any) -> type[SectionModel] | None:
    """The section model inside ``Model``, ``Model | None`` or ``dict[str, Model]``."""
    if isinstance(annotation, type) and issubclass(annotation, SectionModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _located(model: type[SectionModel], loc: tuple[int | str, ...]
             ) -> tuple[KeyPath, list[str]]:
    """The key path a pydantic ``loc`` names in the file, and the keys valid
    beside its last part (for "did you mean")."""
    path: list[str | int] = []
    current: type[SectionModel] | None = model
    mapping = False  # the previous part opened a dict: this part is a free name
    leaf = False  # past a plain value: further parts name union members, not keys
    for part in loc:
        if mapping:
            path.append(part)
            mapping = False
            continue
        if leaf:
            continue
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            path.append(part)
            current = None
            continue
        annotation = current.model_fields[part].annotation
        if part not in current.flatten:
            path.append(part)
        mapping = get_origin(annotation) is dict or any(
            get_origin(a) is dict for a in get_args(annotation))
        current = _model_of(annotation)
        leaf = current is None and not mapping
    choices = list(current.model_fields) if current is not None and not mapping else []
    if current is not None:
        choices = [f for f in choices if f not in current.flatten]
    return tuple(path), choices


def _is_secret(model: type[SectionModel], loc: tuple[int | str, ...]) -> bool:
    """Whether ``loc`` is, or lies inside, a field marked secret (a URL that
    may hold a password, a token): its value is never quoted back."""
    current: type[SectionModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            continue
        extra = current.model_fields[part].json_schema_extra
        if isinstance(extra, dict) and extra.get("secret"):
            return True
        current = _model_of(current.model_fields[part].annotation)
    return False


def _describe(error: Mapping[str, Any]) -> str:
    """pydantic's "Input should be …" as what was expected."""
    text = str(error.get("msg", ""))
    text = re.sub(r"^(Input should be |Value error, |Assertion failed, )", "", text)
    return text[:1].lower() + text[1:]


def _toml_key(part: str) -> str:
    """A key as it is written in TOML: bare when it can be, else quoted."""
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def model_problems(section: str, model: type[SectionModel], exc: ValidationError,
                   lines: SourceLines) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if loc[-1:] == ("[key]",):  # pydantic's mark for a refused table key
            loc = loc[:-1]
        path, choices = _located(model, loc[:-1] if error["type"] == "extra_forbidden" else loc)
        if error["type"] == "extra_forbidden":
            key = str(loc[-1])
            path = (*path, key)
            close = suggest(key, choices)
            expected = (f"did you mean {close!r}?" if close
                        else "one of " + ", ".join(choices) if choices else None)
            message = f"unknown key {key!r}"
        elif error["type"] == "missing":
            message, expected = "missing", "a value for this key"
        elif _is_secret(model, loc):
            message, expected = "the value is not allowed", _describe(error)
        else:
            message = f"{_shown(error.get('input'))} is not allowed"
            expected = _describe(error)
        full = (section, *path)
        key = ".".join(_toml_key(str(p)) for p in full)
        if problems and problems[-1].field == key and problems[-1].message == message:
            # One value refused by each member of a union (true, false or "auto").
            last = problems.pop()
            expected = f"{last.expected} or {expected}"
        problems.append(Problem(CONFIG_FILE, message, lines.line(full), key, expected))
    return problems


def validate_sections(raw: Mapping[str, Any], lines: SourceLines
                      ) -> tuple[dict[str, SectionModel], list[Problem]]:
    """Every section of ``raw`` checked against its model; never raises for a mistake."""
    problems: list[Problem] = []
    found: dict[str, SectionModel] = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            close = suggest(name, SECTIONS)
            problems.append(Problem(
                CONFIG_FILE, f"unknown section [{name}]", lines.line((name,)), name,
                f"did you mean {close!r}?" if close else "one of " + ", ".join(SECTIONS)))
            continue
        model = section_model(name)
        if not isinstance(value, Mapping):
            problems.append(Problem(CONFIG_FILE, f"{_shown(value)} is not a table",
                                    lines.line((name,)), name, f"a [{name}] table"))
            continue
        found_here: list[Problem] = []
        try:
            found[name] = model.model_validate(value)
        except ValidationError as exc:
            found_here.extend(model_problems(name, model, exc, lines))
        seen = {p.field for p in found_here}
        # A key the model already refused is not reported a second time.
        found_here.extend(p for p in model.cross_check(value, lines) if p.field not in seen)
        problems.extend(found_here)
    problems.sort(key=lambda p: p.line or 0)  # in file order, as an editor lists them
    return found, problems


def environment_problems(environ: Mapping[str, str]) -> list[Problem]:
    """Mistakes in the variables of :data:`ENVIRONMENT` that are set."""
    problems: list[Problem] = []
    for name, target in ENVIRONMENT.items():
        value = environ.get(name)
        if not value:
            continue
        module, attr = target.split(":")
        check = getattr(importlib.import_module(module), attr)
        problems.extend(Problem(f"environment variable {name}", message, None, None, expected)
                        for message, expected in check(value))
    return problems


def default_section(name: str) -> SectionModel:
    """A section's settings when ``dispatch.toml`` does not have it."""
    return section_model(name)()
