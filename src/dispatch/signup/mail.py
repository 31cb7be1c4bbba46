"""The confirmation email of a double opt-in signup.

Rendered from ``confirm.html`` and ``confirm.txt`` (a site's own copies in
``templates/email/`` win, like every email template), inlined with the same
stylesheets as the newsletters, and built with the standard library's
``EmailMessage`` under the SMTP policy: a header value holding a line break
raises instead of being written, so a name typed into the form can never add
a header of its own (and names with line breaks are refused earlier still).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from dispatch.config import Settings
from dispatch.errors import TemplateError


@dataclass(frozen=True, slots=True)
class ListChoice:
    name: str
    description: str


def confirmation_message(settings: Settings, *, email: str, name: str, confirm_url: str,
                         lists: Sequence[ListChoice], expires: datetime,
                         date: datetime) -> bytes:
    from dispatch.render.edition import _css
    from dispatch.render.env import environment, template_error
    from dispatch.render.inline import inline_css

    site = settings.site
    context = {
        "site": {"title": site.title, "url": site.url, "language": site.language,
                 "home": site.url + "/"},
        "sender": {"name": settings.sender.name, "email": settings.sender.email,
                   "postal_address": settings.sender.postal_address},
        "email": email, "name": name, "confirm_url": confirm_url,
        "lists": [{"name": c.name, "description": c.description} for c in lists],
        "expires": expires.strftime("%d %B %Y, %H:%M UTC"),
    }
    env = environment(settings)
    try:
        html = env.get_template("confirm.html").render(context)
        text = env.get_template("confirm.txt").render(context)
    except Exception as exc:  # any template failure names its file and line
        raise template_error(exc, settings) from None
    html = inline_css(html, _css(settings, "inline.css"), _css(settings, "head.css"))
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(settings.sender.name, addr_spec=settings.sender.email)
    msg["To"] = Address(name, addr_spec=email) if name else email
    msg["Subject"] = f"Please confirm your subscription to {site.title}"
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = make_msgid(domain=settings.sender.email.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    if settings.sender.reply_to:
        msg["Reply-To"] = settings.sender.reply_to
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    try:
        return msg.as_bytes()
    except ValueError as exc:  # a header the policy refused to write
        raise TemplateError(f"confirmation email to {email}: {exc}") from None
