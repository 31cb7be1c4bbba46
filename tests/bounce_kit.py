"""A site that has really sent an edition (captured, with VERP return paths),
and reports about those messages in the shapes real mail systems write them:
a Postfix RFC 3464 DSN, Exim, qmail, Exchange and Gmail text bounces, an ARF
complaint, vacation replies and a mailto unsubscribe."""

from __future__ import annotations

import email
import os
from dataclasses import dataclass
from datetime import datetime
from email import policy
from pathlib import Path

from tests.web_kit import NOW, SECRET, WebSite, make_site

from dispatch.config import load_settings
from dispatch.content import load_site
from dispatch.delivery.capture import captured
from dispatch.delivery.engine import deliver
from dispatch.outbox import queue_edition
from dispatch.render import render_article_edition

BOUNCES = "bounces@journal.test"
UNSUBSCRIBE = "unsubscribe@journal.test"
TOML_EXTRA = f"""
[bounces]
address = "{BOUNCES}"
soft_limit = 3
soft_window = 30
"""


@dataclass(frozen=True)
class Sent:
    """One captured message as it left: its envelope and headers."""

    email: str
    return_path: str
    message_id: str
    mailto: str
    raw: bytes


@dataclass
class SentSite:
    site: WebSite
    sent: dict[str, Sent]

    def reload(self) -> None:
        self.site.settings = load_settings(self.site.root)


def sent_site(root: Path, database_url: str | None = None, *, at: datetime = NOW) -> SentSite:
    """The example site with [bounces] address and an unsubscribe mailto,
    one edition queued to three readers and delivered by local capture."""
    assert os.environ.get("DISPATCH_SECRET_KEY") == SECRET
    toml = root / "dispatch.toml"
    text = toml.read_text(encoding="utf-8").replace(
        "[email]\n", f'[email]\nunsubscribe_mailto = "{UNSUBSCRIBE}"\n', 1)
    toml.write_text(text + TOML_EXTRA, encoding="utf-8")
    site = make_site(root, database_url)
    report = deliver(site.store, site.settings, at)
    assert report.sent == 3, report
    sent: dict[str, Sent] = {}
    for path in captured(site.settings.state_dir / "maildir"):
        one = sent_from_raw(path.read_bytes())
        sent[one.email] = one
    return SentSite(site, sent)


def send_more(sent: SentSite, count: int, at: datetime = NOW) -> list[dict[str, Sent]]:
    """``count`` further editions (other articles) delivered to the same
    readers: each reader then has several messages, each with its own token."""
    settings, store = sent.site.settings, sent.site.store
    articles = [a for a in load_site(settings).articles if a.is_published(at)]
    before = set(captured(settings.state_dir / "maildir"))
    batches: list[dict[str, Sent]] = []
    for article in articles[1:count + 1]:
        queue_edition(store, render_article_edition(settings, article, f"{article.slug}.more"),
                      ["weekly"], at)
        deliver(store, settings, at)
        now_captured = set(captured(settings.state_dir / "maildir"))
        batch = {one.email: one for one in (sent_from_raw(p.read_bytes())
                                            for p in sorted(now_captured - before))}
        before = now_captured
        batches.append(batch)
    return batches


def sent_from_raw(raw: bytes) -> Sent:
    """A delivered message (with the Return-Path and Delivered-To a local
    delivery agent adds) as the reports about it will see it."""
    message = email.message_from_bytes(raw, policy=policy.default)
    unsub = str(message["List-Unsubscribe"])
    mailto = unsub[unsub.index("<mailto:") + 8:].split(">")[0] if "<mailto:" in unsub else ""
    rcpt = str(message["Delivered-To"])
    return Sent(rcpt, str(message["Return-Path"]).strip("<>"), str(message["Message-ID"]),
                mailto, raw)


def headers_of(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").replace("\r\n", "\n")


# --- reports -----------------------------------------------------------------

def postfix_dsn(to: Sent, status: str = "5.1.1", action: str = "failed",
                diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: "
                                  "User unknown in virtual mailbox table",
                message_id: str = "<20261201120501.4AB1C2@mx.example.com>") -> bytes:
    """A DSN as Postfix writes it (multipart/report, delivery-status)."""
    diag = diagnostic.format(rcpt=to.email)
    return f"""Return-Path: <>
Delivered-To: {to.return_path}
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to.return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4AB1C2.1764590701/mx.example.com"
Message-Id: {message_id}
Date: Tue,  1 Dec 2026 12:05:01 +0000 (UTC)

This is a MIME-encapsulated message.

--4AB1C2.1764590701/mx.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{to.email}>: host mail.example.com[192.0.2.7] said: {diag}

--4AB1C2.1764590701/mx.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
X-Postfix-Queue-ID: 4AB1C2
X-Postfix-Sender: rfc822; {to.return_path}
Arrival-Date: Tue,  1 Dec 2026 12:05:00 +0000 (UTC)

Final-Recipient: rfc822; {to.email}
Original-Recipient: rfc822;{to.email}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.com
Diagnostic-Code: {diag}

--4AB1C2.1764590701/mx.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers_of(to.raw)}

--4AB1C2.1764590701/mx.example.com--
""".replace("\n", "\r\n").encode()


def exim_bounce(to: Sent) -> bytes:
    return f"""Return-path: <>
Envelope-to: {to.return_path}
From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: {to.return_path}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1vQ2-0003xF-Ab@mail.example.net>
X-Failed-Recipients: {to.email}
Auto-Submitted: auto-replied
Date: Tue, 01 Dec 2026 12:06:00 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {to.email}
    host mx.example.net [198.51.100.4]
    SMTP error from remote mail server after RCPT TO:<{to.email}>:
    550 5.1.1 <{to.email}>... User unknown

------ This is a copy of the message, including all the headers. ------

{headers_of(to.raw)}
""".replace("\n", "\r\n").encode()


def qmail_bounce(to: Sent) -> bytes:
    # qmail quotes the VERP address only in its envelope and the returned
    # headers; here the server stripped the returned message entirely.
    return f"""Return-Path: <>
Delivered-To: {to.return_path}
From: MAILER-DAEMON@qmail.example.org
To: {to.return_path}
Subject: failure notice
Message-ID: <20261201120700.1234.qmail@qmail.example.org>
Date: 1 Dec 2026 12:07:00 -0000

Hi. This is the qmail-send program at qmail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{to.email}>:
Sorry, no mailbox here by that name. (#5.1.1)
""".replace("\n", "\r\n").encode()


def exchange_bounce(to: Sent) -> bytes:
    return f"""Return-Path: <>
To: {to.return_path}
From: Microsoft Outlook <postmaster@corp.example.com>
Subject: Undeliverable: Your weekly health notes
Message-ID: <a1b2c3d4-e5f6@corp.example.com>
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=utf-8
Date: Tue, 1 Dec 2026 12:08:00 +0000

Delivery has failed to these recipients or groups:

{to.email}
The email address you entered couldn't be found. Please check the recipient's
email address and try to resend the message.

Diagnostic information for administrators:

Generating server: corp.example.com

{to.email}
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'

Original message headers:

{headers_of(to.raw)}
""".replace("\n", "\r\n").encode()


def gmail_bounce(to: Sent, delay: bool = False) -> bytes:
    if delay:
        body = (f"** Message not delivered yet **\n\nThere was a temporary problem delivering "
                f"your message to {to.email}. Gmail will retry for 47 more hours.\n\n"
                f"The response was:\n\n451 4.4.1 No answer from host")
        subject = "Delivery Status Notification (Delay)"
    else:
        body = (f"** Address not found **\n\nYour message wasn't delivered to {to.email} "
                "because the address couldn't be found, or is unable to receive mail.\n\n"
                "The response from the remote server was:\n550 5.1.1 The email account that "
                "you tried to reach does not exist.")
        subject = "Delivery Status Notification (Failure)"
    return f"""Return-Path: <>
Delivered-To: {to.return_path}
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {to.return_path}
Subject: {subject}
Message-ID: <gmail-{'delay' if delay else 'fail'}-{to.email}@mx.google.com>
Content-Type: text/plain; charset=UTF-8
Date: Tue, 1 Dec 2026 12:09:00 +0000

{body}
""".replace("\n", "\r\n").encode()


def arf_report(to: Sent, feedback_type: str = "abuse",
               message_id: str = "<arf-1@fbl.example.com>", redact: bool = True) -> bytes:
    """An RFC 5965 report as a feedback loop sends it; the recipient is
    redacted (RFC 6590), so only the returned message's token names them."""
    rcpt = "redacted@example.com" if redact else to.email
    return f"""From: Feedback Loop <fbl@fbl.example.com>
To: {BOUNCES}
Subject: FW: Your weekly health notes
Message-ID: {message_id}
Date: Tue, 1 Dec 2026 13:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Tue, 1 Dec 2026 12:05:00 +0000.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{to.return_path}>
Original-Rcpt-To: <{rcpt}>
Arrival-Date: Tue, 1 Dec 2026 12:05:00 +0000
Reporting-MTA: dns; fbl.example.com
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: text/rfc822-headers

{headers_of(to.raw).replace(to.email, rcpt)}

--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()


def vacation_reply(to: Sent, style: str) -> bytes:
    """Automatic replies in the ways responders mark them; each is sent to
    the return path (RFC 3834 says so), so it carries the VERP token."""
    extra = {
        "auto-submitted": "Auto-Submitted: auto-replied\n",
        "x-autoreply": "X-Autoreply: yes\n",
        "precedence": "Precedence: auto_reply\n",
        "subject-only": "",
        "encoded-subject": "",
    }[style]
    subject = {"subject-only": "Out of Office: Your weekly health notes",
               # "Abwesenheitsnotiz: …" as an RFC 2047 encoded-word, as clients send it.
               "encoded-subject": "=?utf-8?q?Abwesenheitsnotiz=3A_Ihre_Nachricht_=C3=BCber?="
               }.get(style, "Re: Your weekly health notes")
    return f"""Return-Path: <>
From: {to.email}
To: {to.return_path}
Subject: {subject}
Message-ID: <vacation-{style}@example.com>
{extra}Date: Tue, 1 Dec 2026 12:10:00 +0000
Content-Type: text/plain; charset=utf-8

I am away until 4 January with no access to email; my message could not
be delivered to me in person. For anything urgent, the address does not
exist for me now: call the front desk. Permanent error in my schedule :)
""".replace("\n", "\r\n").encode()


def mailto_unsubscribe(to: Sent) -> bytes:
    """What a mail client sends for the List-Unsubscribe mailto."""
    address = to.mailto.split("?", 1)[0]
    return f"""From: {to.email}
To: {address}
Subject: unsubscribe
Message-ID: <unsub-{to.email}@client.example.com>
Date: Tue, 1 Dec 2026 12:11:00 +0000
Content-Type: text/plain; charset=utf-8

unsubscribe
""".replace("\n", "\r\n").encode()


def stranger(n: int = 1) -> bytes:
    """A message that has nothing to do with us: it must stay untouched."""
    return f"""From: someone@example.org
To: {BOUNCES}
Subject: Question about the newsletter {n}
Message-ID: <stranger-{n}@example.org>
Date: Tue, 1 Dec 2026 12:12:00 +0000

Hello, who runs this list?
""".replace("\n", "\r\n").encode()


def stray_bounce() -> bytes:
    """A bounce with no token of ours (someone else's mail): untouched."""
    return b"""Return-Path: <>
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
To: bounces@journal.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <stray@mx.example.com>
X-Failed-Recipients: ghost@example.com

This is a permanent error. ghost@example.com: user unknown 550 5.1.1
"""


def write_maildir(root: Path, messages: dict[str, bytes]) -> dict[str, Path]:
    """Put messages into root/new (a maildir); returns name -> path."""
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, raw in messages.items():
        path = root / "new" / f"1764590000.{name}.host"
        path.write_bytes(raw)
        paths[name] = path
    return paths
