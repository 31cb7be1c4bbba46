"""Personalise and serialise one digest edition for many recipients.

    .venv/bin/python bench/email_personalise.py [--count 100000] [--naive-sample 40]

Prints, from the same run:

* the fast path: MessageFactory.build() per recipient (edition rendered and
  inlined once, MIME pre-serialised, placeholders filled in as bytes);
* an intermediate path: inline once, but str.replace + a stdlib EmailMessage
  per recipient ("inline once + substitution", the obvious optimisation);
* the naive path on a sample: Jinja2 render + premailer + EmailMessage per
  recipient (build_naive_message).

One process, one thread: the figures are per core. The edition is the example
site's digest of every published article.
"""

from __future__ import annotations

import argparse
import email
import html
import platform
import sys
import time
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from dispatch.config import load_settings
from dispatch.content.loader import load_site
from dispatch.render import (
    MessageFactory,
    Recipient,
    build_naive_message,
    render_digest_edition,
)
from dispatch.render.edition import PLACEHOLDERS
from dispatch.render.mime import boundary_for, message_id

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["Ann Reader", "Tom & Jerry", "Zoë Ångström", "山田 太郎", None, "Mary O'Neil",
         "Dr. Smith, Jr.", "", "محمد", "Sam"]


def recipients(count: int) -> list[Recipient]:
    out = []
    for i in range(count):
        token = f"{i:08x}c0ffee{i * 7919 % 1000003:07d}"
        out.append(Recipient(
            email=f"reader{i}@example.org", name=NAMES[i % len(NAMES)],
            unsubscribe_url=f"https://journal.example/u/{token}",
            webview_url=f"https://journal.example/e/{token}",
            unsubscribe_mailto=f"mailto:unsubscribe+{token}@journal.example"))
    return out


def intermediate(edition, settings, person, date) -> bytes:  # type: ignore[no-untyped-def]
    """Inline once, then str.replace and a stdlib EmailMessage per recipient."""
    values = {"name": person.name or "reader", "email": person.email,
              "unsubscribe_url": person.unsubscribe_url, "webview_url": person.webview_url,
              "preferences_url": person.unsubscribe_url,
              "first_name": (person.name or "reader").split()[0]}
    body, text = edition.html, edition.text
    for key, token in PLACEHOLDERS.items():
        body = body.replace(token, html.escape(values[key], quote=False))
        text = text.replace(token, values[key])
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(settings.sender.name, addr_spec=settings.sender.email)
    msg["To"] = Address(person.name or "", addr_spec=person.email)
    msg["Subject"] = edition.subject
    msg["Date"] = date
    msg["Message-ID"] = message_id(edition.edition_id, person.email, "journal.example")
    msg["List-Id"] = edition.list_id
    msg["List-Unsubscribe"] = f"<{person.unsubscribe_url}>, <{person.unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(body, subtype="html", charset="utf-8", cte="quoted-printable")
    msg.set_boundary(boundary_for(edition.edition_id))
    return msg.as_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=40)
    parser.add_argument("--intermediate-sample", type=int, default=2_000)
    args = parser.parse_args()

    settings = load_settings(ROOT)
    from datetime import UTC, datetime

    date = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    # Every non-draft article of the example site, scheduled ones included:
    # a fuller digest is the harder case.
    articles = [a for a in load_site(settings).articles if a.status == "published"]
    started = time.perf_counter()
    edition = render_digest_edition(settings, articles, "bench-digest")
    render_once = time.perf_counter() - started
    people = recipients(args.count)

    started = time.perf_counter()
    factory = MessageFactory(edition, settings)
    factory_s = time.perf_counter() - started

    total_bytes = 0
    started = time.perf_counter()
    for person in people:
        total_bytes += len(factory.build(person, date=date))
    fast_s = time.perf_counter() - started
    fast_rate = args.count / fast_s

    sample = people[: args.intermediate_sample]
    started = time.perf_counter()
    for person in sample:
        intermediate(edition, settings, person, date)
    mid_rate = len(sample) / (time.perf_counter() - started)

    naive = people[: args.naive_sample]
    naive_out = []
    started = time.perf_counter()
    for person in naive:
        naive_out.append(build_naive_message(settings, "digest", articles, "bench-digest",
                                             person, date=date))
    naive_rate = len(naive) / (time.perf_counter() - started)

    # Sanity: the fast bytes say what the naive bytes say.
    for person, slow in zip(naive[:10], naive_out, strict=False):
        fast = email.message_from_bytes(factory.build(person, date=date), policy=policy.default)
        ref = email.message_from_bytes(slow, policy=policy.default)
        same = [p.get_content() for p in fast.iter_parts()] == \
            [p.get_content() for p in ref.iter_parts()]  # type: ignore[attr-defined]
        if not same:
            print("MISMATCH between fast and naive output", file=sys.stderr)
            return 1

    print(f"python {platform.python_version()} on {platform.machine()}, one thread")
    print(f"edition: {len(articles)} articles, HTML part {edition.html_size / 1024:.1f} KB, "
          f"message ~{total_bytes / args.count / 1024:.1f} KB")
    print(f"render + inline once:          {render_once * 1000:8.1f} ms")
    print(f"MessageFactory setup:          {factory_s * 1000:8.1f} ms")
    print(f"fast path ({args.count:,} messages):   {fast_rate:10,.0f} msg/s "
          f"({fast_s:.2f} s, {1e6 / fast_rate:.1f} µs/msg)")
    print(f"inline once + EmailMessage ({len(sample):,}): {mid_rate:8,.0f} msg/s "
          f"-> fast path is {fast_rate / mid_rate:,.0f}x")
    print(f"naive: Jinja+premailer+EmailMessage ({len(naive)}): {naive_rate:8,.1f} msg/s "
          f"-> fast path is {fast_rate / naive_rate:,.0f}x")
    goal = fast_rate >= 20_000 and fast_rate / naive_rate >= 100
    print(f"goal (>= 20,000 msg/s and >= 100x naive): {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
