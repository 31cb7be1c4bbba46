"""Bounce processing throughput, each figure beside its baseline measured in
the same run.

Run:  .venv/bin/python bench/bounces.py [--reports 3000] [--quick]

1. Classification: ``classify`` (DSN / ARF / non-standard / auto-reply /
   mailto, token search and verification) over a mix of report shapes,
   against the baseline of only parsing the same bytes with Python's email
   package and walking the parts — what any reader must pay anyway — with
   the compat32 policy classify itself uses, and with ``policy.default``.
2. Processing a maildir end to end on SQLite (classify, resolve the token's
   outbox row, decide, record the evidence, update the subscriber, move the
   file), against the baseline of reading, parsing and moving the same files
   with no decisions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the report builders are shared with the tests

from tests.bounce_kit import (  # noqa: E402
    Sent,
    arf_report,
    exim_bounce,
    gmail_bounce,
    mailto_unsubscribe,
    postfix_dsn,
    qmail_bounce,
    sent_site,
    stranger,
    vacation_reply,
    write_maildir,
)
from tests.web_kit import NOW, SECRET  # noqa: E402

from dispatch.bounces.classify import classify  # noqa: E402
from dispatch.bounces.process import locals_for, process_mailbox  # noqa: E402


def reports(sent: dict[str, Sent], n: int) -> dict[str, bytes]:
    shapes = [
        lambda s, i: postfix_dsn(s, status="4.2.2", message_id=f"<dsn-{i}@mx>"),
        lambda s, i: arf_report(s, "not-spam", message_id=f"<arf-{i}@fbl>"),
        lambda s, i: exim_bounce(s).replace(b"E1vQ2-0003xF-Ab", f"exim-{i}".encode()),
        lambda s, i: qmail_bounce(s).replace(b"1234.qmail", f"{i}.qmail".encode()),
        lambda s, i: gmail_bounce(s, delay=True).replace(b"gmail-delay", f"g{i}".encode()),
        lambda s, i: vacation_reply(s, "auto-submitted").replace(b"vacation-", f"v{i}-".encode()),
        lambda s, i: mailto_unsubscribe(s).replace(b"unsub-", f"u{i}-".encode()),
        lambda s, i: stranger(i),
    ]
    people = list(sent.values())
    return {f"r{i:06d}": shapes[i % len(shapes)](people[i % len(people)], i) for i in range(n)}


def timed(label: str, count: int, run: object) -> float:
    assert callable(run)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    rate = count / seconds
    print(f"  {label:<52} {rate:>9,.0f} reports/s  ({seconds:.2f} s for {count})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="a smoke run (300 reports)")
    args = parser.parse_args()
    n = 300 if args.quick else args.reports
    os.environ["DISPATCH_SECRET_KEY"] = SECRET
    os.environ.pop("DISPATCH_BOUNCE_MAILBOX", None)
    work = Path(tempfile.mkdtemp(prefix="dispatch-bench-bounces-"))
    try:
        site_root = work / "site"
        site_root.mkdir()
        for name in ("content", "templates", "static"):
            if (REPO / name).exists():
                shutil.copytree(REPO / name, site_root / name)
        for name in ("dispatch.toml", "schedules.yaml", "subscribers.csv"):
            shutil.copy(REPO / name, site_root / name)
        site = sent_site(site_root)
        settings, store = site.site.settings, site.site.store
        key = SECRET.encode()
        locals_ = locals_for(settings, key)
        raws = reports(site.sent, n)
        print(f"bounce processing, {n} reports (8 shapes, one in 8 not ours)")

        # Warm both paths up first (imports, regex compilation, caches), so
        # neither measurement pays for the first use.
        for raw in list(raws.values())[:64]:
            list(message_from_bytes(raw, policy=policy.default).walk())
            classify(raw, locals_)
        print("1. classification")
        modern = timed("baseline: parse (email policy.default) and walk", n,
                       lambda: [list(message_from_bytes(r, policy=policy.default).walk())
                                for r in raws.values()])
        base = timed("baseline: parse (compat32, what classify uses) and walk", n,
                     lambda: [list(message_from_bytes(r).walk()) for r in raws.values()])
        ours = timed("classify (report kind, status, tokens verified)", n,
                     lambda: [classify(r, locals_) for r in raws.values()])
        print(f"  classify / compat32 parse: {ours / base:.2f}x the baseline's rate "
              f"({ours / modern:.2f}x policy.default's)")

        print("2. a maildir, end to end on SQLite")
        plain = work / "plain"
        write_maildir(plain, raws)
        target = plain / ".moved" / "cur"
        target.mkdir(parents=True)

        def read_parse_move() -> None:
            for path in sorted((plain / "new").iterdir()):
                list(message_from_bytes(path.read_bytes(), policy=policy.default).walk())
                os.replace(path, target / path.name)

        base2 = timed("baseline: read, parse and move every file", n, read_parse_move)
        box = work / "box"
        write_maildir(box, raws)
        os.environ["DISPATCH_BOUNCE_MAILBOX"] = f"maildir://{box}"
        result: list[object] = []
        ours2 = timed("dispatch bounces process (decide, record, move)", n,
                      lambda: result.append(process_mailbox(settings, store, key, NOW)))
        print(f"  process / baseline: {ours2 / base2:.2f}x the baseline's rate")
        print(f"  ({result[0].summary()})")  # type: ignore[attr-defined]
        store.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
