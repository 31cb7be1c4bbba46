"""The pass stage of signup: expire, and finish what a stopped server left.

Every pass deletes signup requests whose link expired, with the ``pending``
addresses nobody confirmed in time, and old rate-limit windows; then it
processes requests that no web process got to (the server stopped between
its response and sending the confirmation), once they are a minute old.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from dispatch.signup.requests import expire, process_request, unprocessed
from dispatch.unsubscribe import public_base, secret_key

if TYPE_CHECKING:
    from dispatch.stage import PassContext, StageReport

GRACE = timedelta(minutes=1)
"""How long a web process has to send a confirmation itself."""


def signup_stage(ctx: PassContext) -> StageReport:
    from dispatch.stage import StageReport

    requests, people = expire(ctx.store, ctx.now)
    left = unprocessed(ctx.store, ctx.now - GRACE)
    outcomes: dict[str, int] = {}
    if left:
        key = secret_key(ctx.settings)
        for request_id in left:
            outcome = process_request(ctx.store, ctx.settings, key, public_base(ctx.settings),
                                      request_id, ctx.now).split(":")[0]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    parts = [f"{requests} expired request(s), {people} unconfirmed address(es) deleted"]
    if outcomes:
        parts.append("late confirmations: " + ", ".join(f"{n} {k}"
                                                        for k, n in sorted(outcomes.items())))
    return StageReport("signup", "; ".join(parts))
