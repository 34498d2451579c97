"""Unit tests of the schedule checks' layout rules (stage placement, microbatch counts); no torch needed."""

import pytest

from conformance.suite.ranks.schedules import (
    LOOPED,
    SCHEDULES,
    SINGLE,
    V_SHAPED,
    default_microbatches,
    num_stages,
    stage_ids,
)


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_stage_once(schedule, world):
    held = sorted(s for r in range(world) for s in stage_ids(schedule, r, world))
    assert held == list(range(num_stages(schedule, world)))


def test_v_layout():
    assert [stage_ids("ScheduleZBVZeroBubble", r, 4) for r in range(4)] == [[0, 7], [1, 6], [2, 5], [3, 4]]


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_microbatches_meet_schedule_rules(schedule, world):
    n, st = default_microbatches(schedule, world), num_stages(schedule, world)
    assert n >= st  # 1F1B, DualPipeV
    if schedule in LOOPED:
        assert n % max(1, n // world) == 0
    assert schedule in SINGLE + LOOPED + V_SHAPED
