"""``[subscribers]`` in dispatch.toml: lists kept in step with CSV files."""

from __future__ import annotations

from pydantic import Field

from dispatch.sections import SectionModel


class SubscriberOptions(SectionModel):
    lists: dict[str, str] = Field(default_factory=dict)
    """``[subscribers.lists]``: list name = CSV file, relative to the site folder,
    imported on every pass of ``dispatch run``."""
