"""Rank side of the schedule numerics-state checks: a schedule's step leaves torch's global numerics state as found.

Wraps the `schedule` scenario (conformance.suite.ranks.schedules) on every rank: snapshot, run it, compare; while it
runs, every module's forward must also see that state (grad mode aside: the scenario's own reference runs under
no_grad). A change fails the rank with the list of changed settings and is undone, so the pool's next check starts
from the pinned state. Imports torch when a check runs.
"""

from __future__ import annotations

from typing import Any

from conformance.pool.scenarios import RankContext, register
from conformance.suite import numerics_state
from conformance.suite.ranks import schedules


class _InsideForwards:
    """A global forward pre-hook (public torch API) noting every setting that differs from `before` in a forward."""

    def __init__(self, before: dict[str, str], devices: list[str]) -> None:
        self.before, self.devices = before, devices
        self.changes: dict[str, None] = {}  # ordered, one entry per (setting, module type)

    def __call__(self, module: Any, args: Any) -> None:
        now = numerics_state.snapshot(self.devices)
        for line in numerics_state.compare(self.before, now, ignore=[numerics_state.GRAD_MODE]):
            self.changes.setdefault(f"{line} (in {type(module).__name__}.forward)", None)

    def __enter__(self) -> _InsideForwards:
        from torch.nn.modules.module import register_module_forward_pre_hook

        self._handle = register_module_forward_pre_hook(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


@register("schedule_numerics")
def schedule_numerics(ctx: RankContext, params: dict) -> dict | None:
    """The `schedule` scenario with the rank's global numerics state compared before, during and after it."""
    where = f"on rank {ctx.rank} of {ctx.world_size}"
    api = f"{params['schedule']}.step"
    with numerics_state.guarded([ctx.device_type]) as state:  # the pool's next check on this rank starts clean too
        with _InsideForwards(state.before, state.devices) as inside:
            data = schedules.run_schedule(ctx, params)
        state.assert_unchanged(api, where, ctx.device_string)
        if inside.changes:
            raise AssertionError(f"{api}: ran modules under a changed global numerics state {where} on "
                                 f"{ctx.device_string}: " + "; ".join(inside.changes))
    return data
