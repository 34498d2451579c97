"""The activation-bound table and the behaviour rules on synthetic traces (no torch, no ranks)."""

from __future__ import annotations

import pytest

from conformance.suite import bounds, rules
from conformance.suite.ranks.schedules import SCHEDULES


def test_every_schedule_has_a_bound_and_a_bubble_with_a_source():
    for name in SCHEDULES:
        b = bounds.bound(name)
        assert "20" in b.source, name  # a paper with its year or arXiv id
        assert name in bounds.BUBBLE, name
    with pytest.raises(KeyError, match="add it to TABLE"):
        bounds.bound("ScheduleNew")


@pytest.mark.parametrize(("schedule", "m", "S", "p", "r", "expected"), [
    ("ScheduleGPipe", 8, 2, 2, 0, 8),
    ("Schedule1F1B", 8, 4, 4, 0, 4), ("Schedule1F1B", 8, 4, 4, 3, 1), ("Schedule1F1B", 2, 4, 4, 0, 2),
    ("ScheduleInterleaved1F1B", 8, 4, 2, 0, 5), ("ScheduleInterleaved1F1B", 8, 4, 2, 1, 3),  # DESIGN.md: 5 and 3
    ("ScheduleInterleaved1F1B", 16, 8, 4, 0, 11), ("ScheduleLoopedBFS", 8, 4, 2, 0, 16),
    ("ScheduleInterleavedZeroBubble", 8, 4, 2, 1, 4), ("ScheduleZBVZeroBubble", 8, 4, 2, 0, 4),
    ("ScheduleDualPipeV", 8, 4, 2, 0, 6),
])
def test_per_rank_bounds(schedule, m, S, p, r, expected):
    assert bounds.bound(schedule).per_rank(m, S, p, r) == expected


def test_breadth_first_exceeds_the_interleaved_bound():
    b = bounds.bound("ScheduleInterleaved1F1B")
    for p in (1, 2, 4):
        S = m = 2 * p  # what the behaviour runs use
        assert all(2 * m > b.per_rank(m, S, p, r) for r in range(p))


def rank(r: int, trace: list, **extra) -> dict:
    return {"rank": r, "host": "h", "stages": sorted({a[0] for a in trace}), "trace": trace, **extra}


def fb(stage: int, mbs: list[tuple[str, int]], t0: int = 0) -> list:
    """Actions of one stage back to back from t0, 10 ns each."""
    return [[stage, k, mb, t0 + 10 * i, t0 + 10 * i + 5] for i, (k, mb) in enumerate(mbs)]


# A healthy 2-stage 1F1B step with 2 microbatches: stage 1 starts after stage 0's forwards are done.
HEALTHY = [rank(0, fb(0, [("F", 0), ("F", 1)]) + fb(0, [("B", 0), ("B", 1)], t0=1000)),
           rank(1, fb(1, [("F", 0), ("B", 0), ("F", 1), ("B", 1)], t0=100))]


def test_healthy_trace_meets_every_rule():
    assert rules.dependencies("Schedule1F1B", HEALTHY, 2, 2) is None
    assert rules.activation_bound("Schedule1F1B", HEALTHY, 2, 2, 2) is None


def test_forward_before_the_previous_stage_finished_is_named():
    early = [HEALTHY[0], rank(1, fb(1, [("F", 0), ("B", 0), ("F", 1), ("B", 1)], t0=1))]
    msg = rules.dependencies("Schedule1F1B", early, 2, 2)
    assert msg.startswith("Schedule1F1B: rank 1, stage 1: action 1F0 started before 0F0 (on rank 0) finished")
    assert "rule: a microbatch's F on stage s comes after its F on stage s-1" in msg


def test_backward_before_the_next_stage_and_w_before_i_are_named():
    b_first = [rank(0, fb(0, [("F", 0), ("F", 1), ("B", 0), ("B", 1)])), HEALTHY[1]]
    assert "comes after B or I of the same microbatch on stage s+1" in rules.dependencies(
        "Schedule1F1B", b_first, 2, 2)
    w_first = [rank(0, fb(0, [("F", 0), ("W", 0), ("I", 0)]))]
    assert "action 0W0 started before 0I0" in rules.dependencies("ScheduleZBVZeroBubble", w_first, 1, 1)


def test_twice_or_never_is_named():
    twice = [rank(0, fb(0, [("F", 0), ("F", 0), ("B", 0)]))]
    assert "action 0F0 ran 2 times" in rules.dependencies("ScheduleGPipe", twice, 1, 1)
    never = [rank(0, fb(0, [("F", 0)]))]
    assert "stage 0, microbatch 0: ran F; rule: every" in rules.dependencies("ScheduleGPipe", never, 1, 1)
    both = [rank(0, fb(0, [("F", 0), ("I", 0), ("W", 0), ("B", 0)]))]
    assert "ran B, F, I, W" in rules.dependencies("ScheduleGPipe", both, 1, 1)


def test_activation_bound_names_the_first_action_over_it():
    gpipe_order = [rank(0, fb(0, [("F", 0), ("F", 1), ("F", 2), ("B", 0), ("B", 1), ("B", 2)]))]
    msg = rules.activation_bound("Schedule1F1B", gpipe_order, 2, 2, 3)
    assert msg.startswith("Schedule1F1B: rank 0, stage 0: action 0F2 puts 3 microbatches in flight on the stage")
    assert "at most 2 = min(m, S - s)" in msg
    # W (not I) ends a microbatch's stay: a W deferred past the bound counts.
    deferred = [rank(0, fb(0, [("F", 0), ("I", 0), ("F", 1), ("I", 1), ("F", 2), ("W", 0), ("W", 1), ("W", 2)]))]
    assert "puts 3 microbatches in flight" in rules.activation_bound("Schedule1F1B", deferred, 2, 2, 3)


def test_declared_plan_mismatch_and_length():
    data = [rank(0, fb(0, [("F", 0), ("B", 0)]), plan=[[0, "F", 0], [0, "B", 0]])]
    assert rules.declared_plan("ScheduleGPipe", data) is None
    data[0]["plan"] = [[0, "F", 1], [0, "B", 0]]
    assert "action 0F0 ran as compute action #0, the plan declares 0F1" in rules.declared_plan("ScheduleGPipe", data)
    data[0]["plan"] = [[0, "F", 0], [0, "B", 0], [0, "F", 1]]
    assert "0F1 was planned but never ran" in rules.declared_plan("ScheduleGPipe", data)


def test_zero_bubble_split_and_no_growth():
    ok = [rank(0, [], split={"violations": [], "seen": {"I": 2, "W": 2}})]
    assert rules.zero_bubble_split("ScheduleZBVZeroBubble", ok) is None
    bad = [rank(0, [], split={"violations": [{"stage": 1, "action": "1I0", "what": "the I step wrote weight "
                                              "gradients (w)"}], "seen": {"I": 1, "W": 1}})]
    assert "rank 0, stage 1: action 1I0: the I step wrote" in rules.zero_bubble_split("ScheduleZBVZeroBubble", bad)
    none = [rank(0, [], split={"violations": [], "seen": {"I": 0, "W": 0}})]
    assert "no rank ran an I" in rules.zero_bubble_split("ScheduleZBVZeroBubble", none)
    live = [rank(0, [], live={"train": {"values": [9, 8, 8, 8]}}, live_unit="live tensors")]
    assert rules.no_growth("Schedule1F1B", live, "train") is None  # step 1 may differ (lazy init)
    live[0]["live"]["train"]["values"] = [8, 8, 9, 10]
    assert "after step 3 9 live tensors, after step 2 8" in rules.no_growth("Schedule1F1B", live, "train")
