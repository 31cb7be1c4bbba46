"""The job engine's own rules, beside the per-kind tests (outbox, social,
firings) that run them on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import random
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dispatch.delivery.transport import classify
from dispatch.http_api import PermanentFailure, RetryLater
from dispatch.jobs import JobStatus, Outcome, ResultClass, RetryPolicy, TransportResult
from dispatch.social.http import attempt

SRC = Path(__file__).resolve().parent.parent / "src" / "dispatch"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize("module", ["delivery/engine.py", "jobs/lease.py", "jobs/control.py",
                                    "jobs/states.py", "outbox/lease.py", "social/deliver.py",
                                    "jobs/worker.py", "jobs/transport.py", "jobs/capture.py"])
def test_the_engines_know_no_protocol_codes(module: str) -> None:
    """Reply codes live in the transports; the engine acts on a result's class."""
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    codes = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
             and type(node.value) is int and 200 <= node.value < 600]
    assert codes == []


@pytest.mark.parametrize(("code", "text", "klass"), [
    (250, "2.0.0 ok", ResultClass.DELIVERED),
    (421, "4.7.0 closing", ResultClass.THROTTLED),
    (451, "4.3.0 later", ResultClass.THROTTLED),
    (452, "4.5.3 too many", ResultClass.THROTTLED),
    (454, "Throttling failure: Maximum sending rate exceeded", ResultClass.THROTTLED),
    (450, "4.2.1 mailbox busy", ResultClass.TEMPORARY),
    (550, "5.1.1 User unknown", ResultClass.BOUNCED),
    (554, "5.7.1 blocked", ResultClass.PERMANENT),
])
def test_smtp_replies_are_classified_with_the_servers_text(code: int, text: str,
                                                           klass: ResultClass) -> None:
    result = classify(code, text, at_recipient=True)
    assert result.klass is klass and result.text == f"{code} {text}"


def test_each_class_means_one_outcome() -> None:
    assert {k: k.outcome for k in ResultClass} == {
        ResultClass.DELIVERED: Outcome.SENT, ResultClass.THROTTLED: Outcome.RETRY,
        ResultClass.TEMPORARY: Outcome.RETRY, ResultClass.PERMANENT: Outcome.FAILED,
        ResultClass.BOUNCED: Outcome.BOUNCED}
    # Stored as plain words, so the tables read the same as before the enums.
    assert JobStatus.QUEUED == "queued" and f"{JobStatus.SENDING}" == "sending"


def test_one_retry_policy_with_and_without_jitter() -> None:
    email = RetryPolicy(base_seconds=30, max_seconds=600)
    social = RetryPolicy(base_seconds=60, max_seconds=6 * 3600, jitter=False)
    rng = random.Random(7)
    for attempts in range(1, 12):
        cap = min(600, 30 * 2 ** (attempts - 1))
        assert cap / 2 <= email.backoff(attempts, rng).total_seconds() <= cap
    assert [social.backoff(n).total_seconds() for n in (1, 2, 3, 20)] == [60, 120, 240,
                                                                          6 * 3600]


class _Fake:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def post(self, claimed: object, now: datetime) -> object:
        if self.error is not None:
            raise self.error
        from dispatch.social.http import Delivered

        return Delivered("42", "https://m.example/42")


@pytest.mark.parametrize(("error", "klass", "after"), [
    (None, ResultClass.DELIVERED, None),
    (RetryLater("HTTP 429: slow down", 90, throttled=True), ResultClass.THROTTLED, 90),
    (RetryLater("HTTP 503: unavailable"), ResultClass.TEMPORARY, None),
    (PermanentFailure("HTTP 422: Validation failed"), ResultClass.PERMANENT, None),
    (ValueError("no JSON"), ResultClass.TEMPORARY, None),
])
def test_social_outcomes_are_classified_for_the_engine(error: Exception | None,
                                                       klass: ResultClass,
                                                       after: float | None) -> None:
    message = cast(Any, SimpleNamespace(claimed=object(), now=NOW))
    result = attempt(_Fake(error), message)  # type: ignore[arg-type]
    assert isinstance(result, TransportResult)
    assert (result.klass, result.retry_after) == (klass, after)
    if error is None:
        assert (result.remote_id, result.remote_url) == ("42", "https://m.example/42")
    elif not isinstance(error, ValueError):
        assert result.text == str(error)
