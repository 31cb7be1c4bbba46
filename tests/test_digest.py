"""One rule decides a digest's articles and its edition id, for the scheduler
and for `dispatch send --digest` alike (src/dispatch/digest.py)."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.schedulekit import article, schedules, utc

from dispatch import digest
from dispatch.schedule.decide import edition_id, select_articles

SRC = Path(__file__).resolve().parent.parent / "src" / "dispatch"
START, END = utc(2026, 11, 23, 8), utc(2026, 11, 30, 8)
_WEEKLY = schedules("""
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
""").get("weekly")
assert _WEEKLY is not None
WEEKLY = _WEEKLY


@pytest.mark.parametrize(("dated", "seen", "includes_start", "belongs"), [
    (START + timedelta(days=1), START + timedelta(days=1), False, True),   # new in the window
    (START - timedelta(days=3), START + timedelta(days=2), False, True),   # backdated, seen late
    (START - timedelta(days=3), START - timedelta(days=3), False, False),  # an earlier window's
    (START, START, False, False),            # exactly at a scheduled window's start: the last one
    (START, START, True, True),              # `--since DATE` is on or after
    (END + timedelta(minutes=1), END + timedelta(minutes=1), False, False),  # after the slot
    (END, END, False, True),
])
def test_which_articles_belong_to_a_window(dated: datetime, seen: datetime,
                                           includes_start: bool, belongs: bool) -> None:
    window = digest.Window(START, END, includes_start=includes_start)
    chosen = digest.choose([(article("a", dated), seen)], window)
    assert [a.slug for a in chosen] == (["a"] if belongs else [])


def test_newest_first_without_email_opt_outs_sent_ones_or_more_than_the_limit() -> None:
    day = START + timedelta(days=1)
    published = [(article(slug, day + timedelta(hours=n), email=slug != "quiet"),
                  day + timedelta(hours=n))
                 for n, slug in enumerate(["old", "quiet", "sent", "mid", "new"])]
    chosen = digest.choose(published, digest.Window(START, END), sent={"sent"}, limit=2)
    assert [a.slug for a in chosen] == ["new", "mid"]


def test_the_scheduler_and_the_cli_choose_by_the_same_rule() -> None:
    day = START + timedelta(days=1)
    published = [(article(f"a{n}", day + timedelta(hours=n)), day + timedelta(hours=n))
                 for n in range(4)]
    by_schedule = select_articles(WEEKLY, published, (START, END))
    by_hand = digest.decide(published, digest.Window(START, END, includes_start=True),
                            digest.ByHand(("weekly",)))
    assert [a.slug for a in by_schedule] == [a.slug for a in by_hand.articles]


def test_edition_ids_are_named_by_firing_or_by_what_the_digest_holds() -> None:
    window = digest.Window(START, END, includes_start=True)
    one, two = article("one", START), article("two", START)
    fired = digest.edition_id(digest.Firing("weekly", END), window, [one])
    assert fired == "weekly-20261130T080000Z" == edition_id(WEEKLY, END)
    by_hand = digest.edition_id(digest.ByHand(("weekly", "daily")), window, [one, two])
    # The same articles and lists, in any order: the same edition (sent once).
    assert by_hand == digest.edition_id(digest.ByHand(("daily", "weekly")), window, [two, one])
    assert by_hand.startswith("digest.2026-11-23.2a-") and by_hand.endswith(".daily+weekly")
    # A new article since makes a new edition.
    assert by_hand != digest.edition_id(digest.ByHand(("weekly", "daily")), window,
                                        [one, two, article("three", START)])


def test_the_cli_names_no_digest_itself() -> None:
    """`send --digest` asks dispatch.digest; it hashes no slugs of its own."""
    tree = ast.parse((SRC / "cli" / "queue.py").read_text(encoding="utf-8"))
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "digest_rule.decide" in called
    assert not any(name.startswith("hashlib.") for name in called)


def test_a_by_hand_edition_id_pads_the_year_to_four_digits() -> None:
    early = utc(1, 1, 1, 0)
    one = article("one", START)
    held = digest.edition_id(digest.ByHand(("weekly",)), digest.Window(early, END, True), [one])
    assert held.startswith("digest.0001-01-01.1a-"), held
    usual = digest.edition_id(digest.ByHand(("weekly",)), digest.Window(START, END, True), [one])
    # Normal years are written as before, so editions already sent keep their ids.
    assert usual == f"digest.{START:%Y-%m-%d}.1a-" + usual.split(".1a-")[1]
    assert usual.startswith("digest.2026-11-23.1a-")
