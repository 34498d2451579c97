"""The behaviour checks fail on pipelining that breaks a rule with every number right, and pass on the healthy build.

Each fault (tests/support/behaviour_faults.py, a rank plugin) runs `conformance run --device cpu` on a narrow
selection at world 2; the check of the broken rule must fail naming schedule, rank, stage, action and rule.
"""

from __future__ import annotations

import pytest

from test_pool_e2e import run_suite

PLUGIN = {"CONFORMANCE_RANK_PLUGINS": "behaviour_faults"}


def with_fault(tmp_path_factory, fault: str, select: str) -> dict[str, tuple[str, str, float]]:
    return run_suite(tmp_path_factory.mktemp(fault), select, **PLUGIN, CONFORMANCE_TEST_BEHAVIOUR_FAULT=fault)


def failed(res: dict, name: str, *words: str) -> None:
    outcome, text, _ = res[name]
    assert outcome == "failure", (name, outcome, text[:2000])
    for w in words:
        assert w in text, (name, w, text[:2000])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """The schedules and rules the faults below break, without any fault (plugin loaded, nothing patched)."""
    select = ("world2 and test_behaviour and (Schedule1F1B or ScheduleInterleaved1F1B or ScheduleGPipe or "
              "ScheduleZBVZeroBubble) and not (ScheduleZBVZeroBubble and eval)")
    return run_suite(tmp_path_factory.mktemp("healthy"), select, **PLUGIN)


def test_healthy_build_passes(healthy):
    xfail = {"test_behaviour_declared_plan[Schedule1F1B-world2]"}  # upstream plan bug (expectations/all.txt)
    assert len(healthy) >= 24, sorted(healthy)
    for name, (outcome, text, _) in healthy.items():
        if name in xfail:
            assert outcome == "skipped", (name, outcome, text[:2000])
        elif ("zero_bubble_split" in name and "ZBV" not in name) or "memory_order" in name or "step_cost" in name:
            assert outcome == "skipped", (name, outcome, text[:500])
            assert "not applicable" in text, (name, text[:500])
        else:
            assert outcome == "passed", (name, outcome, text[:2000])


def test_1f1b_running_gpipe_order_breaks_the_activation_bound(tmp_path_factory):
    res = with_fault(tmp_path_factory, "single_runs_gpipe",
                     "world2 and Schedule1F1B and (activation_bound or dependencies)")
    failed(res, "test_behaviour_activation_bound[Schedule1F1B-world2]", "Schedule1F1B: rank 0, stage 0: action 0F2",
           "at most 2 = min(m, S - s)", "rule:")
    assert res["test_behaviour_dependencies[Schedule1F1B-world2]"][0] == "passed"  # the numbers and order are legal


def test_interleaved_running_bfs_order_breaks_its_declared_plan(tmp_path_factory):
    res = with_fault(tmp_path_factory, "interleaved_runs_bfs",
                     "world2 and ScheduleInterleaved1F1B and (declared_plan or activation_bound or dependencies)")
    failed(res, "test_behaviour_declared_plan[ScheduleInterleaved1F1B-world2]", "rank 0, stage", "the plan declares",
           "rule: a rank executes its declared plan")
    failed(res, "test_behaviour_activation_bound[ScheduleInterleaved1F1B-world2]", "in flight on the rank")
    assert res["test_behaviour_dependencies[ScheduleInterleaved1F1B-world2]"][0] == "passed"


def test_breadth_first_plan_fails_the_documented_bound_though_executed_as_declared(tmp_path_factory):
    res = with_fault(tmp_path_factory, "bfs_plan", "world2 and ScheduleInterleaved1F1B and (declared_plan or "
                     "activation_bound)")
    failed(res, "test_behaviour_activation_bound[ScheduleInterleaved1F1B-world2]", "ScheduleInterleaved1F1B: rank",
           "(v-1)p + 2(p-1-r) + 1", "Narayanan")
    assert res["test_behaviour_declared_plan[ScheduleInterleaved1F1B-world2]"][0] == "passed"


def test_activations_kept_alive_fail_no_growth(tmp_path_factory):
    res = with_fault(tmp_path_factory, "keep_activations", "world2 and Schedule1F1B and no_growth")
    for mode in ("train", "return_outputs_false", "eval"):
        failed(res, f"test_behaviour_no_growth[Schedule1F1B-world2-{mode}]", f"Schedule1F1B ({mode}): rank",
               "live tensors", "rule: no state grows across steps")


def test_weight_gradients_in_input_step_fail_the_split(tmp_path_factory):
    res = with_fault(tmp_path_factory, "weights_in_input_step", "world2 and ScheduleZBVZeroBubble and "
                     "(zero_bubble_split or dependencies)")
    failed(res, "test_behaviour_zero_bubble_split[ScheduleZBVZeroBubble-world2]", "the I step wrote weight gradients",
           "rule: an I step computes input gradients only")
    assert res["test_behaviour_dependencies[ScheduleZBVZeroBubble-world2]"][0] == "passed"


def test_duplicate_forward_fails_dependencies(tmp_path_factory):
    res = with_fault(tmp_path_factory, "duplicate_forward", "world2 and ScheduleGPipe and dependencies")
    failed(res, "test_behaviour_dependencies[ScheduleGPipe-world2]", "rank 0, stage 0: action 0F0 ran 2 times",
           "exactly once per kind")
