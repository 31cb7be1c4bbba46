"""`dispatch queue pause/resume/cancel/retry` work the same way for an email
edition and for a social post: one set of controls on the one job engine,
on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.delivery_kit import T0, Clock, edition, seed
from tests.sitekit import build_site

from dispatch.cli import main
from dispatch.config import Settings
from dispatch.content.loader import load_site
from dispatch.delivery import deliver
from dispatch.jobs.states import JobStatus, Outcome
from dispatch.outbox import RowResult, claim, edition_status, queue_edition, record
from dispatch.outbox.policy import RetryPolicy
from dispatch.social import deliver_social_posts, queue_social_posts
from dispatch.social import queue as q
from dispatch.store.engine import Store

SOCIAL = '\n[social.mastodon]\ntransport = "capture"\n'
FRONT = "    title: Sleep\n    date: 2026-05-06T07:00:00\n"
BODY = "Intro.\n\n## Key takeaway\n\nSleep seven hours.\n"
READERS = 4
POST = "sleep@mastodon"
Site = tuple[Settings, Store, Path]


@pytest.fixture
def site(site_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    settings, store = build_site(site_root, toml=SOCIAL, articles={"sleep.md": (FRONT, BODY)})
    seed(store, READERS)
    queue_edition(store, edition(), ["main"], T0)
    assert queue_social_posts(store, settings, load_site(settings).articles, T0) == 1
    yield settings, store, site_root
    store.dispose()


def later() -> datetime:
    # The CLI controls at the real clock; deliver after it.
    return datetime.now(UTC) + timedelta(hours=1)


def send(site: Site, target: str) -> int:
    """Deliver whatever is due of the target's kind; how many went out."""
    settings, store, _ = site
    if target == POST:
        return deliver_social_posts(store, settings, later()).sent
    return deliver(store, settings, later(), clock=Clock(later())).sent


def fail_everything(site: Site, target: str) -> int:
    """Claim every waiting job of the target and record it failed (a refusal)."""
    store = site[1]
    now = later()
    if target == POST:
        (post,) = q.claim(store, "w", now, timedelta(minutes=5), 10, ["mastodon"])
        assert q.mark_failed(store, post.id, "w", now, "HTTP 422: refused")
        return 1
    batch = claim(store, "w", now, 100, RetryPolicy())
    results = [RowResult(r.id, r.subscriber_id, Outcome.FAILED, "550 5.7.1 refused", r.attempts)
               for r in batch.rows]
    # Under the error budget's minimum sample, so the edition keeps sending.
    assert record(store, batch.token, results, now, RetryPolicy(), random.Random(1))
    return len(results)


def cli(root: Path) -> Callable[..., tuple[int, str]]:
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        out = runner.invoke(main, [*args, "--root", str(root)])
        return out.exit_code, out.output
    return run


@pytest.mark.parametrize("target", ["e1", POST])
def test_pause_resume_cancel_behave_the_same_for_an_edition_and_a_post(
        site: Site, target: str) -> None:
    run = cli(site[2])
    code, out = run("queue", "pause", target)
    assert code == 0 and f"{target}: pause; now paused, 0 sent" in out, out
    assert send(site, target) == 0  # paused: nothing claimed
    code, out = run("queue", "pause", target)
    assert code == 1 and f"{target} is paused, so pause changed nothing" in out
    code, out = run("queue", "resume", target)
    assert code == 0 and "now sending" in out
    code, out = run("queue", "cancel", target)
    assert code == 0 and "now cancelled" in out
    assert send(site, target) == 0
    code, out = run("queue", "retry", target)
    assert code == 1 and f"{target} is cancelled" in out
    code, out = run("queue", "pause", target)
    assert code == 1 and "nothing to pause" in out


@pytest.mark.parametrize("target", ["e1", POST])
def test_retry_requeues_failed_jobs_and_each_goes_out_once(site: Site, target: str) -> None:
    run = cli(site[2])
    failed = fail_everything(site, target)
    code, out = run("queue", "pause", target)
    assert code == 1 and "nothing to pause" in out  # nothing waiting any more
    code, out = run("queue", "retry", target)
    assert code == 0 and f"({failed} row(s)); now sending, 0 sent, {failed} pending" in out, out
    assert send(site, target) == failed
    assert send(site, target) == 0  # sent stays sent
    code, out = run("queue", "resume", target)
    assert code == 1 and "resume changed nothing" in out
    if target == "e1":  # a second retry finds nothing failed: it says so, as the others do
        code, out = run("queue", "retry", target)
        assert code == 1 and "no failed row of a still-active subscriber, so retry changed " \
            "nothing" in out, out


def test_the_queue_lists_posts_beside_editions(site: Site) -> None:
    run = cli(site[2])
    assert run("queue", "pause", POST)[0] == 0
    code, out = run("queue")
    assert code == 0 and f"{POST}  [paused]  attempts 0" in out
    assert "e1  [sending]  queued 4 = sent 0" in out
    assert edition_status(site[1], "e1").state == "sending"  # one paused, the other not
    (row,) = q.posts_for(site[1], "sleep")
    assert row["status"] == JobStatus.PAUSED
    code, out = run("queue", "pause", "nope@mastodon")
    assert code == 1 and "no social post 'nope@mastodon'" in out


def test_emails_and_posts_go_out_through_the_one_delivery_loop(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kinds are channels of jobs.worker: the same batch loop sends them."""
    from dispatch.jobs import worker

    settings, store, _root = site
    seen: list[tuple[str, int]] = []
    real = worker._send_batch

    def spying(run: Any, batch: Any, conns: Any, lane: Any) -> Any:
        seen.append((type(run.channel).__name__, len(batch.jobs)))
        return real(run, batch, conns, lane)  # the batch's steps, for its thread to drive

    monkeypatch.setattr(worker, "_send_batch", spying)
    assert deliver(store, settings, later(), clock=Clock(later())).sent == READERS
    assert deliver_social_posts(store, settings, later()).sent == 1
    kinds = {kind for kind, _jobs in seen}
    assert kinds == {"EmailChannel", "_Posts"}
    assert sum(n for kind, n in seen if kind == "EmailChannel") == READERS


def test_a_bug_in_a_social_transport_is_raised_not_swallowed(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.jobs import capture

    settings, store, _root = site

    def broken(self: Any, message: Any) -> Any:
        raise RuntimeError("a bug in a transport")

    monkeypatch.setattr(capture.CaptureConnection, "send", broken)
    with pytest.raises(RuntimeError, match="a bug in a transport"):
        deliver_social_posts(store, settings, later())
    # The post was claimed, not lost: its lease runs out and it is sent later.
    assert [p["status"] for p in q.posts_for(store)] == ["sending"]
