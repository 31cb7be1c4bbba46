"""Queue posts for newly published articles; deliver the ones that are due.

A post that cannot be written (its link alone is over the limit) is not
just reported: it is recorded as a failed row, composed again when what it
depends on changes (:func:`retry_unfit`), and can be queued by hand
(:func:`queue_by_hand`).

Delivery is the job engine's one loop (:func:`dispatch.jobs.worker.work`)
with posts as its channel: it claims a small batch in one short
transaction, talks HTTP with no transaction open, and records each outcome
in its own short transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import httpx

from dispatch.config import Settings
from dispatch.errors import InputError, Problem
from dispatch.jobs.lease import JobResult
from dispatch.jobs.policy import RetryPolicy
from dispatch.jobs.states import Outcome, TransportResult
from dispatch.jobs.worker import Batch, Options, work
from dispatch.models import Article
from dispatch.social import queue
from dispatch.social.compose import compose, fingerprint
from dispatch.social.config import SocialSettings, load_social
from dispatch.social.http import MissingSecret, Transport
from dispatch.social.post import ComposedPost
from dispatch.social.transports import build_transport
from dispatch.store.engine import Store

log = logging.getLogger(__name__)

MAX_BATCHES_PER_RUN = 50


@dataclass(frozen=True, slots=True)
class PostOutcome:
    slug: str
    network: str
    status: str
    """sent, retry, failed or lost-lease."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SocialDeliveryReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    lost_lease: int = 0
    outcomes: tuple[PostOutcome, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def summary(self) -> str:
        text = f"sent {self.sent}, retry later {self.retried}, failed {self.failed}"
        return text + (f", lost lease {self.lost_lease}" if self.lost_lease else "")


@dataclass(frozen=True, slots=True)
class QueueReport:
    queued: int = 0
    unfit: int = 0
    """Newly recorded as failed because the post could not be written."""
    problems: tuple[Problem, ...] = ()

    @property
    def summary(self) -> str:
        text = f"{self.queued} social post(s) queued"
        if self.unfit:
            text += (f", {self.unfit} could not be written (recorded as failed; written again "
                     "when the network's settings or the article change)")
        return text


def _reason(exc: InputError) -> str:
    return "; ".join(p.message for p in exc.problems) or str(exc)


def queue_posts(store: Store, settings: Settings, articles: Sequence[Article], now: datetime,
                networks: Sequence[str] | None = None,
                social: SocialSettings | None = None) -> QueueReport:
    """Compose and queue one post per (article, network).

    A (slug, network) that already has a row, in any state, is left alone.
    """
    social = social or load_social(settings)
    configs = [n for n in social.networks if networks is None or n.name in networks]
    posts: list[ComposedPost] = []
    unfit: list[queue.Unfit] = []
    problems: list[Problem] = []
    for article in articles:
        for config in configs:
            try:
                posts.append(compose(article, config))
            except InputError as exc:  # one bad article/network never sinks the rest
                problems.extend(exc.problems)
                unfit.append(queue.Unfit(article.slug, config.name, _reason(exc),
                                         fingerprint(article, config)))
    queued = queue.enqueue(store, posts, now)
    return QueueReport(queued, queue.record_unfit(store, unfit, now), tuple(problems))


def retry_unfit(store: Store, social: SocialSettings, articles: Sequence[Article],
                now: datetime) -> QueueReport:
    """Write again the posts that could not be written, where something changed.

    Only when :func:`~dispatch.social.compose.fingerprint` differs from the
    one recorded with the failure, so an unchanged failure costs nothing and
    is not reported on every pass.
    """
    configs = {n.name: n for n in social.networks}
    by_slug = {a.slug: a for a in articles}
    queued = 0
    problems: list[Problem] = []
    for item in queue.unfit_rows(store, sorted(configs)):
        article, config = by_slug.get(item.slug), configs[item.network]
        if article is None:  # unpublished since: nothing to announce
            continue
        current = fingerprint(article, config)
        if current == item.fingerprint:
            continue
        try:
            post = compose(article, config)
        except InputError as exc:
            problems.extend(exc.problems)
            queue.note_unfit(store, queue.Unfit(item.slug, item.network, _reason(exc), current),
                             now)
            continue
        queued += queue.requeue(store, post, now, only_unfit=True)
    return QueueReport(queued, 0, tuple(problems))


@dataclass(frozen=True, slots=True)
class HandQueued:
    network: str
    outcome: str
    """queued, re-queued, already <status>, or could not be written."""
    detail: str = ""


def queue_by_hand(store: Store, settings: Settings, article: Article, now: datetime,
                  networks: Sequence[str] | None = None) -> list[HandQueued]:
    """``dispatch social SLUG --queue``: announce one article deliberately.

    Idempotent per (slug, network): a queued or sent post is left alone; a
    failed one (could not be written, or the network refused it) is written
    again from the current article and settings and queued.
    """
    social = load_social(settings)
    configs = [n for n in social.networks if networks is None or n.name in networks]
    existing = {row["network"]: row for row in queue.posts_for(store, article.slug)}
    out: list[HandQueued] = []
    for config in configs:
        row = existing.get(config.name)
        if row is not None and row["status"] != queue.FAILED:
            out.append(HandQueued(config.name, f"already {row['status']}"))
            continue
        try:
            post = compose(article, config)
        except InputError as exc:
            item = queue.Unfit(article.slug, config.name, _reason(exc),
                               fingerprint(article, config))
            if not queue.record_unfit(store, [item], now):
                queue.note_unfit(store, item, now)
            out.append(HandQueued(config.name, "could not be written", item.reason))
            continue
        if queue.enqueue(store, [post], now):
            out.append(HandQueued(config.name, "queued"))
        elif queue.requeue(store, post, now):
            out.append(HandQueued(config.name, "re-queued"))
        else:  # another process got there first
            current = {r["network"]: r for r in queue.posts_for(store, article.slug)}
            status = current[config.name]["status"] if config.name in current else "queued"
            out.append(HandQueued(config.name, f"already {status}"))
    return out


class _Posts:
    """Social posts as a channel of the one delivery loop (:mod:`dispatch.jobs.worker`).

    Each outcome is settled as soon as it is known, in its own short
    transaction: a network without idempotency (Telegram) must not post
    again because a later post of the same batch crashed the worker.
    """

    settle_each = True

    def __init__(self, store: Store, transports: Mapping[str, Transport], batch: int,
                 policy: RetryPolicy) -> None:
        self.store, self.transports, self.batch, self.policy = store, transports, batch, policy
        self.networks = sorted(transports)
        self.outcomes: list[PostOutcome] = []
        self.claimed = 0

    def start(self, clock: Callable[[], datetime],
              writing: Callable[[], AbstractContextManager[None]]) -> None:
        pass

    def stop(self) -> None:
        pass

    def lane(self) -> None:
        return None

    def claim(self, owner: str, now: datetime, limit: int) -> Batch[queue.ClaimedPost]:
        # Posts whose lease expired are reaped by the claim itself.
        posts = queue.claim(self.store, owner, now, self.policy.lease, min(limit, self.batch),
                            self.networks, self.policy.max_attempts)
        self.claimed += len(posts)
        return Batch(owner, now + self.policy.lease, posts)

    def renew(self, token: str, now: datetime) -> bool:
        return queue.renew(self.store, token, now + self.policy.lease)

    def reap(self, now: datetime) -> int:
        return 0

    def ask(self, lane: object, job: queue.ClaimedPost) -> None:
        pass

    def check(self, lane: object, job: queue.ClaimedPost) -> tuple[bool, Outcome | None]:
        return True, None

    def accept(self, lane: object, token: str, job: queue.ClaimedPost,
               sent: TransportResult) -> bool:
        return False  # settled at once with its remote id, by record()

    def flush(self, lane: object) -> bool:
        return True

    def transport(self, job: queue.ClaimedPost) -> Transport:
        return self.transports[job.network]

    def build(self, job: queue.ClaimedPost, now: datetime) -> queue.OutgoingPost:
        return queue.OutgoingPost(job, now)

    def result(self, job: queue.ClaimedPost, outcome: Outcome, detail: str | None,
               sent: TransportResult | None) -> _Settled:
        detail = detail or ""
        if outcome is Outcome.RETRY:
            if job.attempts >= self.policy.max_attempts:
                outcome = Outcome.FAILED
                detail = f"gave up after {job.attempts} attempts: {detail}"
            else:
                log.info("social %s/%s: %s, retry later: %s", job.slug, job.network,
                         sent.klass if sent else outcome, detail)
        return _Settled(job, outcome, detail, sent)

    def record(self, token: str, results: Sequence[_Settled], now: datetime) -> int:
        accepted = 0
        for r in results:
            job = JobResult(r.job_id, r.outcome, r.detail, r.attempts,
                            r.sent.retry_after if r.sent else None)
            if r.outcome is Outcome.SENT and r.sent is not None:
                ok = queue.settle(self.store, token, job, now, self.policy,
                                  remote_id=r.sent.remote_id, remote_url=r.sent.remote_url)
            else:
                ok = queue.settle(self.store, token, job, now, self.policy)
            accepted += ok
            status = {Outcome.SENT: "sent", Outcome.RETRY: "retry"}.get(r.outcome, "failed")
            self.outcomes.append(PostOutcome(r.post.slug, r.post.network,
                                             status if ok else "lost-lease", r.detail))
        return accepted


@dataclass(frozen=True, slots=True)
class _Settled:
    post: queue.ClaimedPost
    outcome: Outcome
    detail: str
    sent: TransportResult | None

    @property
    def job_id(self) -> int:
        return self.post.id

    @property
    def attempts(self) -> int:
        return self.post.attempts


def deliver(store: Store, settings: Settings, now: datetime, *,
            client: httpx.Client | None = None, environ: Mapping[str, str] | None = None,
            owner: str | None = None) -> SocialDeliveryReport:
    """Send every due post once, through the one delivery loop."""
    social = load_social(settings)
    env = os.environ if environ is None else environ
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    http = client or httpx.Client(headers={"User-Agent": "dispatch (social posts)"})
    problems: list[Problem] = []
    transports: dict[str, Transport] = {}
    for config in social.networks:
        try:
            transports[config.name] = build_transport(
                config, http, settings.state_dir / "social", env)
        except MissingSecret as exc:
            # Said only while posts are actually waiting, not on every pass.
            waiting = queue.due_count(store, now, [config.name])
            if waiting:
                problems.append(settings.problem(
                    f"social.{config.name}", f"{exc} ({waiting} waiting)",
                    f"{config.secret_env} set in the environment"))
    policy = queue.policy_for(social.max_attempts, social.backoff_seconds, social.lease_seconds)
    posts = _Posts(store, transports, social.batch, policy)
    try:
        if transports:
            tally = work(posts, Options(lanes=1, batch_size=social.batch,
                                        max_batches=MAX_BATCHES_PER_RUN),
                         policy, owner=owner, clock=lambda: now,
                         due=lambda at: queue.due_count(store, at, sorted(transports)),
                         serialise_writes=store.is_sqlite)
            if tally.error is not None:
                # A bug, not a network's answer: the pass reports it as such.
                raise tally.error
    finally:
        if client is None:
            http.close()
    outcomes = posts.outcomes
    count = Counter(o.status for o in outcomes)
    return SocialDeliveryReport(
        claimed=posts.claimed, sent=count["sent"], retried=count["retry"],
        failed=count["failed"], lost_lease=count["lost-lease"], outcomes=tuple(outcomes),
        problems=tuple(problems))
