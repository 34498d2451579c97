"""The composition checks end to end: healthy they pass, and each fault in how pipelining meets FSDP2, DDP, TP or
activation checkpointing (tests/support/composition_faults.py, loaded into the ranks) makes them fail."""

from __future__ import annotations

import pytest

import suite_run

FAULT_ENV = "CONFORMANCE_TEST_COMPOSITION_FAULT"
PLUGIN = {"CONFORMANCE_RANK_PLUGINS": "composition_faults"}

# fault -> (selection, the checks that must fail under it); each selection passes without the fault.
CASES = {
    "fsdp_no_reduce": ("test_fully_shard and GPipe and world2",
                       {"test_fully_shard[ScheduleGPipe-reshard-world2]",
                        "test_fully_shard[ScheduleGPipe-no_reshard-world2]",
                        "test_fully_shard_mixed_precision[ScheduleGPipe-world2]"}),
    "ddp_no_sync": ("test_distributed_data_parallel and 1F1B and world4",
                    {"test_distributed_data_parallel[Schedule1F1B-world4]"}),
    "tp_unredistributed": ("test_tensor_parallel and world4 and (GPipe or ZBV)",
                           {"test_tensor_parallel[ScheduleGPipe-world4]",
                            "test_tensor_parallel[ScheduleZBVZeroBubble-world4]"}),
    "checkpoint_rng": ("test_checkpoint and world2 and (GPipe or ZBV)",
                       {"test_checkpoint[ScheduleGPipe-world2]", "test_checkpoint[ScheduleZBVZeroBubble-world2]"}),
}


def run_suite(tmp_path, select: str, **env: str) -> suite_run.Outcomes:
    """`conformance run --device cpu` on a selection, with a check timeout that fits world-4 compositions."""
    return suite_run.run_suite(tmp_path, select, check_timeout=60, **env)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """Every case's selection plus the distributed checkpoint, without a fault (the plugin loaded, idle)."""
    select = " or ".join(f"({sel})" for sel, _ in CASES.values()) + " or test_distributed_checkpoint"
    return run_suite(tmp_path_factory.mktemp("healthy"), select, **PLUGIN)


def test_healthy_build_passes_every_selected_composition_check(healthy):
    wanted = set().union(*(names for _, names in CASES.values()))
    wanted |= {"test_distributed_checkpoint[world2]", "test_distributed_checkpoint[world4]"}
    assert wanted <= set(healthy), sorted(wanted - set(healthy))
    assert {n: v[0] for n, v in healthy.items() if v[0] != "passed"} == {}


@pytest.mark.parametrize("fault", sorted(CASES))
def test_fault_fails_the_composition_checks(tmp_path, fault):
    select, must_fail = CASES[fault]
    res = run_suite(tmp_path, select, **PLUGIN, **{FAULT_ENV: fault})
    failed = {n for n, (outcome, *_) in res.items() if outcome == "failure"}
    assert must_fail <= failed, {n: res.get(n, ("missing", "", 0.0))[0] for n in must_fail}
    for name in must_fail:
        # the failure says what differed from the unsplit model (or that a gradient never arrived)
        assert "unsplit model" in res[name][1] or "no gradient" in res[name][1], res[name][1][:2000]


def test_compile_without_a_compiler_is_not_applicable(tmp_path):
    """No C++ compiler on PATH: the compile checks are skipped as not applicable, quickly, never hung or failed."""
    empty = tmp_path / "bin"
    empty.mkdir()
    res = run_suite(tmp_path, "test_compile and GPipe", PATH=str(empty), CXX="")
    assert {n: v[0] for n, v in res.items()} == {"test_compile[ScheduleGPipe-world2]": "skipped"}, res
    assert "not applicable: inductor on cpu needs a C++ compiler" in res["test_compile[ScheduleGPipe-world2]"][1]
