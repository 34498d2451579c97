"""The graphs checks end to end: healthy they pass, and each fault in the split backward, DTensor stage boundaries,
checkpoint loading, receive ordering, plans or FSDP2 with many local stages (tests/support/graphs_faults.py, loaded
into the ranks) makes the checks of its property fail. Per-edge P2P communicators exist from torch 2.15 only: their
fault runs on the 2.15 interpreter where there is one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import suite_run
from graphs_faults import GRAPHS_FAULT_ENV as FAULT_ENV

PLUGIN = {"CONFORMANCE_RANK_PLUGINS": "graphs_faults"}

SPLIT_SHARED = {f"test_split_backward_schedule[shared-{s}-fp32]"
                for s in ("ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")}
SPLIT_MULTI = {n.replace("shared", "multi_output") for n in SPLIT_SHARED}

# fault -> (property, selection, the checks that must fail under it); each selection passes without the fault.
CASES = {
    "weight_first_output_only": (1, "test_split_backward and fp32",
                                 {"test_split_backward_helpers[multi_output-fp32]",
                                  "test_split_backward_helpers[lstm-fp32]"} | SPLIT_MULTI),
    "weight_double_count": (1, "test_split_backward and fp32",
                            {"test_split_backward_helpers[shared-fp32]"} | SPLIT_SHARED),
    "dtensor_recv_scaled": (2, "test_dtensor_activations",
                            {"test_dtensor_activations[static-world2]", "test_dtensor_activations[runtime-world2]",
                             "test_dtensor_activations[static-world4]", "test_dtensor_activations[runtime-world4]"}),
    "optimizer_state_not_loaded": (3, "test_checkpoint_relayout",
                                   {"test_checkpoint_relayout[pp2_to_pp4]", "test_checkpoint_relayout[looped_to_v]",
                                    "test_checkpoint_relayout[pp_to_unsplit]"}),
    "defer_recv_rescales": (4, "test_receive_order and Interleaved1F1B",
                            {"test_receive_order[defer_pp_recv-ScheduleInterleaved1F1B]"}),
    "csv_rows_swapped": (5, "test_plan_csv_round_trip or test_custom_action_handlers",
                         {"test_plan_csv_round_trip[ScheduleInterleaved1F1B]",
                          "test_plan_csv_round_trip[ScheduleZBVZeroBubble]"}),
    "custom_reduce_twice": (5, "test_plan_csv_round_trip or test_custom_action_handlers",
                            {"test_custom_action_handlers[ScheduleInterleaved1F1B]",
                             "test_custom_action_handlers[ScheduleZBVZeroBubble]"}),
    "compile_check_top_only": (5, "test_zero_bubble_refuses_compiled_stages",
                               {f"test_zero_bubble_refuses_compiled_stages[{s}-nested]"
                                for s in ("ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble",
                                          "ScheduleDualPipeV")}),
    "fsdp_third_stage_unreduced": (6, "test_fsdp_many_local_stages and (Interleaved1F1B or LoopedBFS)",
                                   {"test_fsdp_many_local_stages[ScheduleInterleaved1F1B-world2]",
                                    "test_fsdp_many_local_stages[ScheduleLoopedBFS-world2]"}),
}
# what the faults must leave alone: the same selection's other checks still pass
UNTOUCHED = {
    "weight_first_output_only": {"test_split_backward_helpers[shared-fp32]"} | SPLIT_SHARED,
    "compile_check_top_only": {"test_zero_bubble_refuses_compiled_stages[ScheduleZBVZeroBubble-top]"},
}
# Not listed: what a CSV fault leaves of the custom-handler cases. A step that raises on one rank only leaves the
# other waiting until the check timeout, and then every case of that rank-side run fails with it.


def run_suite(tmp_path, select: str, **env: str) -> suite_run.Outcomes:
    """`conformance run --device cpu` on a graphs selection, with a check timeout that fits world-4 runs."""
    return suite_run.run_suite(tmp_path, f"test_graphs and ({select})", check_timeout=90, **env)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """Every case's selection without a fault (the plugin loaded, idle)."""
    select = " or ".join(f"({sel})" for _, sel, _ in CASES.values())
    return run_suite(tmp_path_factory.mktemp("healthy"), select, **PLUGIN)


def test_every_property_has_a_fault():
    assert {prop for prop, _, _ in CASES.values()} == {1, 2, 3, 4, 5, 6}


def test_healthy_build_passes_every_selected_graphs_check(healthy):
    wanted = set().union(*(names for _, _, names in CASES.values()))
    assert wanted <= set(healthy), sorted(wanted - set(healthy))
    assert {n: v[0] for n, v in healthy.items() if n in wanted and v[0] != "passed"} == {}


@pytest.mark.parametrize("fault", sorted(CASES))
def test_fault_fails_the_graphs_checks(tmp_path, fault):
    _, select, must_fail = CASES[fault]
    res = run_suite(tmp_path, select, **PLUGIN, **{FAULT_ENV: fault})
    failed = {n for n, (outcome, *_) in res.items() if outcome == "failure"}
    assert must_fail <= failed, {n: res.get(n, ("missing", "", 0.0))[:2] for n in must_fail - failed}
    for name in UNTOUCHED.get(fault, ()):
        assert res[name][0] == "passed", (name, res[name][1][:1500])


TORCH_215 = Path(os.environ.get("CONFORMANCE_TEST_TORCH215_PYTHON", "/work/venv-t215/bin/python"))
PER_EDGE = {f"test_receive_order[per_edge_p2p-{s}]"
            for s in ("ScheduleInterleaved1F1B", "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble")}


def test_per_edge_p2p_fault_fails_the_receive_order_checks(tmp_path):
    """torch 2.15: the per-edge cases pass healthy, and fail with received activations corrupted only where the
    stages use their own communicators (each case compares against the default communicator's step)."""
    if not TORCH_215.exists():
        pytest.skip(f"no torch 2.15 interpreter at {TORCH_215} (set CONFORMANCE_TEST_TORCH215_PYTHON)")
    runs = {}
    for name, env in (("healthy", {}), ("fault", {FAULT_ENV: "p2p_comms_recv_scaled"})):
        runs[name] = suite_run.run_suite(tmp_path / name, "test_graphs and test_receive_order and per_edge_p2p",
                                         check_timeout=90, python=str(TORCH_215), **PLUGIN, **env)
    healthy, res = runs["healthy"], runs["fault"]
    assert {n: healthy.get(n, ("missing",))[0] for n in PER_EDGE} == dict.fromkeys(PER_EDGE, "passed"), healthy
    failed = {n for n, (outcome, *_) in res.items() if outcome == "failure"}
    assert PER_EDGE <= failed, {n: res.get(n, ("missing", "", 0.0))[:2] for n in PER_EDGE - failed}
