"""Telegram: posts to a channel or group through the Bot API.

Everything dispatch needs to know about Telegram is in this module, named by
one line in ``social/networks.py``::

    [social.telegram]
    transport = "telegram"
    chat_id = "@northfield_journal"      # a public channel, or a numeric chat id
    # token_env = "DISPATCH_TELEGRAM_TOKEN"   (the bot token from @BotFather)

Counting: the Bot API takes 1-4096 characters of message text and measures
entity offsets in UTF-16 code units, so the text is counted in UTF-16 code
units (an emoji outside the BMP is 2): never fewer than Telegram counts.
URLs count in full (Telegram does not shorten them).

Delivery: ``POST {url}/bot<token>/sendMessage`` with the text and a link
preview of the article. The Bot API has no idempotency key: an answer lost
after Telegram accepted the message is retried and shows twice, which is why
the network is off unless a table asks for it. A 429 carries its wait in
``parameters.retry_after``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from dispatch.sections import SectionModel
from dispatch.social.builtin import EnvName, HttpUrl
from dispatch.social.http import PostTransport
from dispatch.social.networks import Network, SocialTransport

if TYPE_CHECKING:
    import httpx

    from dispatch.social.config import NetworkConfig
    from dispatch.social.http import Delivered, Transport
    from dispatch.social.queue import ClaimedPost

LIMIT = 4096


def telegram_length(text: str) -> int:
    """UTF-16 code units of the text as sent (Telegram trims outer whitespace)."""
    return len(text.strip().encode("utf-16-le")) // 2


class TelegramOptions(SectionModel):
    chat_id: str
    """``@channelname`` of a public channel, or the numeric id of a chat (as text)."""
    url: HttpUrl = "https://api.telegram.org"
    """The Bot API server (a local one, or a test server)."""
    token_env: EnvName = "DISPATCH_TELEGRAM_TOKEN"
    """Environment variable holding the bot token from @BotFather."""
    silent: bool = False
    """Send without a notification sound."""

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, value: str) -> str:
        if not (value.startswith("@") and len(value) > 5) and not value.lstrip("-").isdigit():
            raise ValueError('"@channelname" or a numeric chat id such as "-1001234567890"')
        return value


class TelegramTransport(PostTransport):
    """``sendMessage`` once per post, with the article as the link preview."""

    def __init__(self, config: NetworkConfig, client: httpx.Client,
                 environ: Mapping[str, str]) -> None:
        from dispatch.social.http import MissingSecret

        assert isinstance(config.options, TelegramOptions)
        self.config, self.options, self.client = config, config.options, client
        self.token = environ.get(config.secret_env, "")
        if not self.token:
            raise MissingSecret(f"social.{config.name}: environment variable "
                                f"{config.secret_env} is not set; posts stay queued")

    def post(self, claimed: ClaimedPost, now: datetime) -> Delivered:
        import httpx

        from dispatch.http_api import RetryLater, check, redact
        from dispatch.social.http import Delivered

        what = f"telegram {self.config.name}"
        body: dict[str, Any] = {
            "chat_id": self.options.chat_id, "text": claimed.post.text,
            "disable_notification": self.options.silent,
            "link_preview_options": {"url": claimed.post.url},
        }
        url = f"{self.options.url}/bot{self.token}/sendMessage"
        try:
            response = self.client.post(url, json=body, timeout=self.config.timeout)
        except httpx.TransportError as exc:
            raise RetryLater(redact(f"{what}: {type(exc).__name__}: {exc}",
                                    (self.token,))) from None
        answer = _json(response)
        if response.status_code == 429:
            wait = (answer.get("parameters") or {}).get("retry_after")
            raise RetryLater(f"{what}: HTTP 429: {answer.get('description', 'too many requests')}",
                             float(wait) if isinstance(wait, int | float) else None)
        check(response, now, what, (self.token,))
        result = answer.get("result") or {}
        chat = result.get("chat") or {}
        message_id = result.get("message_id")
        public = (f"https://t.me/{chat['username']}/{message_id}"
                  if chat.get("username") and message_id is not None else None)
        return Delivered(None if message_id is None else f"{chat.get('id')}/{message_id}",
                         public)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _build(config: NetworkConfig, client: httpx.Client, capture_dir: Path,
           environ: Mapping[str, str]) -> Transport:
    return TelegramTransport(config, client, environ)


TELEGRAM = Network(
    "telegram", LIMIT, telegram_length, "UTF-16 code units, URLs in full; 4096",
    transport=SocialTransport("telegram", TelegramOptions, _build, "token_env",
                              "Bot API sendMessage with a link preview"))
