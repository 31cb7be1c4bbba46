"""DKIM signing cost per message, and delivery throughput with signing.

Run:  .venv/bin/python bench/dkim_signing.py [--messages 2000] [--recipients 5000] [--quick]

Figures, each with its baseline measured in the same run:

1. Per message, on the example site's digest: building the message unsigned
   (the baseline), then building and signing it with RSA-2048, with Ed25519,
   and with both. For comparison, dkimpy's own ``dkim.sign`` on the finished
   bytes (it re-canonicalises the whole body and signs RSA in pure Python).
2. The body hash alone: the cached static pieces of the edition plus each
   recipient's values, against canonicalising the whole body each time, and
   how much of the body is static (what the cache can reuse).
3. Delivery end to end (queued edition → every message accepted by a local
   SMTP sink in another process, all outbox bookkeeping included) with RSA
   signing, with Ed25519 signing, and without signing: the ratio of each to
   the unsigned run. The unsigned run goes first and last, so a change in the
   machine's load shows instead of skewing the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the sink is shared with the tests
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

from tests.smtp_sink import SinkProcess  # noqa: E402

from dispatch.config import Settings, load_settings  # noqa: E402
from dispatch.content import load_site  # noqa: E402
from dispatch.dkim.keys import SigningKey, generate  # noqa: E402
from dispatch.dkim.sign import BodyHasher, Signer, body_hash  # noqa: E402
from dispatch.render import (  # noqa: E402
    Edition,
    MessageFactory,
    Recipient,
    render_digest_edition,
)


def site(tmp: Path, dkim: str | None) -> Settings:
    root = tmp / f"site-{dkim or 'plain'}"
    root.mkdir()
    toml = (REPO / "dispatch.toml").read_text()
    if dkim == "rsa":
        toml += '\n[dkim]\nselector = "bench"\n'
    elif dkim == "ed25519":
        toml += '\n[dkim]\nselector = "bench"\nalgorithm = "ed25519-sha256"\n'
    (root / "dispatch.toml").write_text(toml)
    (root / "content").symlink_to(REPO / "content")
    return load_settings(root)


def recipients(n: int) -> list[Recipient]:
    return [Recipient(email=f"reader{i:06d}@example.com", name=f"Reader {i}",
                      unsubscribe_url=f"https://journal.example/unsubscribe/tok{i:012d}",
                      webview_url="https://journal.example/email/bench/") for i in range(n)]


def per_message(label: str, fn: Callable[[Recipient], bytes], people: list[Recipient]
                ) -> float:
    start = time.perf_counter()
    for person in people:
        fn(person)
    each = (time.perf_counter() - start) / len(people)
    print(f"  {label:<44} {each * 1e6:9,.1f} µs/message")
    return each


def signing_costs(edition: Edition, settings: Settings, n: int,
                  keys: dict[str, SigningKey]) -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization

    # dkimpy reads the traditional "RSA PRIVATE KEY" form only.
    pkcs1 = keys["rsa"].key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption())
    factory = MessageFactory(edition, settings)
    people = recipients(n)
    print(f"1. per message ({n:,} messages, digest of {len(edition.article_slugs)} articles, "
          f"{len(factory.build(people[0], date=NOW)) / 1024:.1f} KB)")
    signers = {name: Signer(ks, "example.com", {k.algorithm: "bench" for k in ks})
               for name, ks in (("RSA-2048", [keys["rsa"]]), ("Ed25519", [keys["ed25519"]]),
                                ("RSA-2048 + Ed25519", [keys["rsa"], keys["ed25519"]]))}
    base = per_message("build, unsigned (baseline)",
                       lambda p: factory.build(p, date=NOW), people)
    for name, signer in signers.items():
        signed = per_message(f"build + sign, {name}",
                             lambda p, s=signer: s.build(factory, p, NOW), people)
        print(f"  {'':<44} signing adds {(signed - base) * 1e6:8,.1f} µs "
              f"({signed / base:.1f}x the unsigned build)")
    headers = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version",
               b"Content-Type", b"List-Id", b"List-Unsubscribe", b"List-Unsubscribe-Post"]
    few = people[: max(20, n // 20)]
    naive = per_message(f"dkimpy dkim.sign on the bytes, RSA ({len(few)} msgs)",
                        lambda p: dkim.sign(factory.build(p, date=NOW), b"bench",
                                            b"example.com", pkcs1,
                                            canonicalize=(b"relaxed", b"relaxed"),
                                            include_headers=headers), few)
    rsa = per_message("  (same messages) build + sign, RSA-2048",
                      lambda p: signers["RSA-2048"].build(factory, p, NOW), few)
    print(f"  {'':<44} dispatch's signing is {naive / rsa:.1f}x faster than dkim.sign")

    print("2. body hash alone")
    pieces = [factory.pieces(p, date=NOW) for p in people]
    hasher = BodyHasher(factory)
    at, offset = factory.body_start
    whole_bodies = [b"".join(p)[len(b"".join(p[:at])) + offset:] for p in pieces]
    start = time.perf_counter()
    for p in pieces:
        hasher.digest(p)
    cached = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for body in whole_bodies:
        body_hash(body)
    whole = (time.perf_counter() - start) / n
    static = sum(len(v) for v in hasher.static.values())
    print(f"  whole body canonicalised per message (baseline) {whole * 1e6:8,.1f} µs")
    print(f"  static pieces cached, values per message        {cached * 1e6:8,.1f} µs "
          f"= {whole / cached:.1f}x faster; {static / len(whole_bodies[0]):.1%} of the "
          f"body is the same for every recipient")


def delivery(tmp: Path, settings: Settings, edition: Edition, n: int, port: int,
             tag: str) -> float:
    from dispatch.delivery import deliver
    from dispatch.delivery.settings import DeliverySettings, SmtpSettings
    from dispatch.outbox import edition_status, queue_edition
    from dispatch.store import open_store
    from dispatch.subscribers.csvfile import ImportRow, import_rows

    store = open_store(f"sqlite:///{tmp / f'{tag}.db'}")
    import_rows(store, [ImportRow(i, f"reader{i:06d}@example.com", f"Reader {i}", "active", ())
                        for i in range(n)], "bench", NOW)
    queue_edition(store, edition, ["bench"], NOW)
    config = DeliverySettings(transport="smtp", smtp=SmtpSettings("127.0.0.1", port, tls="none",
                                                                  timeout=30),
                              connections=4, batch_size=100)
    start = time.perf_counter()
    report = deliver(store, settings, NOW, config=config, rng=random.Random(1))
    elapsed = time.perf_counter() - start
    status = edition_status(store, edition.edition_id)
    assert status.sent == n == report.sent, (status, report)
    store.dispose()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="Smaller numbers, for a smoke run.")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.recipients = 300, 600
    os.environ.setdefault("DISPATCH_SECRET_KEY", "bench-key")
    generated = {kind: generate(kind) for kind in ("rsa", "ed25519")}
    keys = {kind: key for kind, (_pem, key) in generated.items()}
    pems = {kind: pem for kind, (pem, _key) in generated.items()}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        plain = site(tmp, None)
        articles = [a for a in load_site(plain).articles if a.is_published(NOW)]
        edition = render_digest_edition(plain, articles, "bench-digest")
        signing_costs(edition, plain, args.messages, keys)

        print(f"3. delivery end to end, {args.recipients:,} recipients, 4 connections, "
              "SMTP sink in another process")
        sink = SinkProcess(0)
        try:
            first = delivery(tmp, plain, edition, args.recipients, sink.port, "plain1")
            figures = {}
            for kind in ("rsa", "ed25519"):
                os.environ["DISPATCH_DKIM_PRIVATE_KEY"] = pems[kind].decode()
                figures[kind] = delivery(tmp, site(tmp, kind), edition, args.recipients,
                                         sink.port, kind)
            del os.environ["DISPATCH_DKIM_PRIVATE_KEY"]
            last = delivery(tmp, plain, edition, args.recipients, sink.port, "plain2")
        finally:
            sink.stop()
        unsigned = (first + last) / 2
        print(f"  unsigned (baseline)      {unsigned:8,.0f} msg/s "
              f"(first {first:,.0f}, last {last:,.0f})")
        for kind, label in (("rsa", "signed, RSA-2048"), ("ed25519", "signed, Ed25519")):
            print(f"  {label:<24} {figures[kind]:8,.0f} msg/s = "
                  f"{figures[kind] / unsigned:.0%} of unsigned")


if __name__ == "__main__":
    main()
