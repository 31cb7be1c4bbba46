"""The delivery stage of ``dispatch run``: drain what is due, then return."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatch.delivery.engine import deliver

if TYPE_CHECKING:
    from dispatch.pipeline import PassContext, StageReport


def delivery_stage(ctx: PassContext) -> StageReport:
    from dispatch.pipeline import StageReport

    # burst: send everything due at this pass's ``now``; rows waiting for a
    # retry delay are picked up by a later pass (or by `dispatch worker`).
    report = deliver(ctx.store, ctx.settings, ctx.now, burst=True)
    return StageReport("delivery", report.summary())
