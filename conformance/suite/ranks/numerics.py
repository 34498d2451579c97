"""Rank side of the schedule numerics-state checks: a schedule's step leaves torch's global numerics state as found.

Wraps the `schedule` scenario (conformance.suite.ranks.schedules) on every rank: snapshot, run it, compare. A change
fails the rank with the list of changed settings and is undone, so the pool's next check starts from the pinned
state. Imports torch when a check runs.
"""

from __future__ import annotations

from conformance.pool import scenarios
from conformance.pool.scenarios import RankContext, register
from conformance.suite import numerics_state


@register("schedule_numerics")
def schedule_numerics(ctx: RankContext, params: dict) -> dict | None:
    """The `schedule` scenario with the rank's global numerics state compared before and after it."""
    devices = [ctx.device_type]
    numerics_state.restore_defaults()  # from the pinned state, whatever an earlier check left on this rank
    before = numerics_state.snapshot(devices)
    try:
        data = scenarios.get("schedule")(ctx, params)
        numerics_state.assert_unchanged(f"{params['schedule']}.step", before, numerics_state.snapshot(devices),
                                        f"on rank {ctx.rank} of {ctx.world_size}", ctx.device)
    finally:
        if numerics_state.compare(before, numerics_state.snapshot(devices)):
            numerics_state.restore_defaults()  # the pool's next check on this rank must not inherit it
    return data
