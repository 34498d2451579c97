"""Realistic step-cost tier: every schedule at world 2 and 4 on transformer-block stages whose actions cost ms.

Accelerators only (`conformance.suite.ranks.tier`): hidden 4096, bf16, SDPA attention, m = 16 microbatches. Each
check records its step cost and the trace of its median step as suite properties (`conformance.protocol.stepcost`);
the report decomposes the trace, replays its plan and ranks the schedules against 1F1B
(`conformance.report.decompose`). Never time-gated: the check fails only when the run itself does, or when fewer
steps were timed than the tier asks for. On CPU it is not applicable without building anything.
"""

from __future__ import annotations

import dataclasses

import pytest

from conformance.protocol import outcomes
from conformance.suite.applicable import require
from conformance.suite.checks.test_behaviour import Cache, measured_trace, median_step, summarize_cost
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.schedules import SCHEDULES

WORLDS = [2, 4]
TIER = "step_tier"
MIN_STEPS = 5


@pytest.fixture(scope="session")
def tier_cache() -> Cache:
    return Cache()


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_step_tier(on_ranks, tier_cache, record_testsuite_property, conformance, schedule, world):
    """Accelerators: step time, bubble, peak memory per rank and the median step's trace on transformer-block
    stages (hidden 4096, bf16, m = 16); recorded as step-cost and trace suite properties for the report."""
    require(schedule)
    if conformance.dev.name == "cpu":
        pytest.skip(outcomes.not_applicable("the realistic step-cost tier (hidden 4096, bf16 transformer blocks) "
                                            "runs on accelerators only; on CPU one step would take minutes and say "
                                            "nothing about a device"))
    data = tier_cache.get((TIER, schedule, world), lambda: on_ranks(world, TIER, schedule=schedule))
    cost = dataclasses.replace(summarize_cost(schedule, world, data), model=data[0].get("model", ""))
    name = f"test_step_tier[{schedule}-{world_id(world)}]"
    record_testsuite_property(*cost.property(name))
    record_testsuite_property(*measured_trace(schedule, world, median_step(data)[1]).property(name))
    assert cost.steps >= MIN_STEPS, f"{schedule}: {cost.steps} timed steps, expected at least {MIN_STEPS}"
