"""``[web]`` in dispatch.toml: how the web app is reached from outside."""

from __future__ import annotations

from pydantic import field_validator

from dispatch.sections import SectionModel
from dispatch.values import urls


class WebOptions(SectionModel):
    public_url: str | None = None
    """Base URL of ``dispatch serve`` behind the proxy, for unsubscribe and
    web-view links; ``[site] url`` when unset."""

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value and not urls.is_absolute(value):
            raise ValueError("an absolute URL: http:// or https:// followed by a host")
        return value
