"""Language tags, as settings give them."""

from __future__ import annotations

import re

_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def language_tag(value: str) -> str:
    """``value`` if it has a BCP 47 tag's shape (``en``, ``en-GB``,
    ``zh-Hans-CN``), else ValueError: it goes into the feeds, the emails'
    ``lang`` and Bluesky's ``langs``, which refuses a post with a malformed one."""
    if not _TAG.fullmatch(value):
        raise ValueError("a BCP 47 language tag such as en, en-GB or pt-BR")
    return value
