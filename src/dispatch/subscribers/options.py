"""``[subscribers]`` in dispatch.toml: lists, and how readers join them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from dispatch.sections import SectionModel

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """``"7d"``, ``"48h"``, ``"90m"`` as a timedelta; ValueError otherwise."""
    found = _DURATION.match(value)
    if found is None or int(found.group(1)) == 0:
        raise ValueError('a duration like "7d", "48h" or "90m" (minutes, hours or days)')
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


_LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LIST_NAME_EXPECTED = ("letters, digits, '-', '_' and '.', at most 64, such as weekly or "
                      "heart-health")


def is_list_name(name: str) -> bool:
    """A list name goes into edition ids, and so into web-view URLs, the
    archive and Message-IDs: a space, '<' or '@' there made every message
    of an edition fail to build, and an empty name was a list nobody could name."""
    return _LIST_NAME.fullmatch(name) is not None


def _list_name(name: str) -> str:
    if not is_list_name(name):
        raise ValueError(f"a list name: {LIST_NAME_EXPECTED}")
    return name


ListName = Annotated[str, AfterValidator(_list_name)]
"""A key of ``[subscribers.lists]``: checked one by one, so each bad name is
reported on its own line."""


class ListOptions(SectionModel):
    """One ``[subscribers.lists]`` entry written as a table."""

    file: str | None = None
    """CSV file (relative to the site folder) imported into the list on every
    pass; none for a list readers join through the signup form only."""
    public: bool = False
    """Offered on the signup form, the preference page and the archive."""
    description: str = ""
    """One line shown beside the list on the signup form and preference page."""


class SubscriberOptions(SectionModel):
    lists: dict[ListName, ListOptions] = Field(default_factory=dict)
    """``[subscribers.lists]``: list name = CSV file (relative to the site
    folder, imported on every pass of ``dispatch run``), or a table
    ``{ file = "…", public = true, description = "…" }``; public lists are
    offered on the signup form and preference page and shown in the archive."""
    confirm_within: str = "7d"
    """How long a signup's confirmation link works ("7d", "48h", "90m"); a
    pending address that did not confirm in time is deleted."""
    min_submit_seconds: int = Field(default=3, ge=0, le=600)
    """A signup form sent back sooner than this after it was shown is taken for a
    robot and shown again."""
    signups_per_ip: int = Field(default=10, ge=1)
    """Signup requests accepted per hour from one network (an IPv4 /24 or IPv6 /48);
    more get 429 with Retry-After."""

    @field_validator("lists", mode="before")
    @classmethod
    def _file_only(cls, value: object) -> object:
        # `weekly = "subscribers.csv"` is short for `weekly = { file = "subscribers.csv" }`.
        if isinstance(value, dict):
            return {k: {"file": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("confirm_within")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def confirm_delta(self) -> timedelta:
        return parse_duration(self.confirm_within)

    def list_options(self) -> dict[str, ListOptions]:
        """Every list entry as a table (a plain string is its CSV file)."""
        return dict(self.lists)

    def public_lists(self) -> dict[str, ListOptions]:
        return {name: opts for name, opts in self.list_options().items() if opts.public}
