"""End to end: `conformance run` with the test-only fault checks, outcomes read back from its JUnit."""

from __future__ import annotations

from pathlib import Path

import pytest

import suite_run

TIMEOUT_S = 10


FAULT_CHECKS = str(Path(__file__).parent / "support" / "pool_fault_checks.py")
WITH_FAULTS = {"CONFORMANCE_RANK_PLUGINS": "pool_faults"}


def run_suite(tmp_path, select: str, *extra: str, **env) -> suite_run.Outcomes:
    """Run the suite on cpu with this module's short check timeout."""
    return suite_run.run_suite(tmp_path, select, *extra, check_timeout=TIMEOUT_S, **env)


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("faults"), "test_fault", FAULT_CHECKS, **WITH_FAULTS)


def test_hanging_schedule_fails_within_timeout_with_every_ranks_stack(faults_run):
    outcome, text, seconds = faults_run["test_fault_hang_schedule"]
    assert outcome == "failure"
    assert seconds < TIMEOUT_S + 15
    for rank in (0, 1):
        assert f"rank {rank} timed out after {TIMEOUT_S} s" in text
        assert f"Python stacks of rank {rank}" in text
    assert text.count("hang_here_forever") >= 2 and "step_hanging" in text


def test_checks_after_a_fault_still_pass(faults_run):
    for name in ("test_fault_after_hang", "test_fault_after_die", "test_fault_after_segfault", "test_fault_last"):
        assert faults_run[name][0] == "passed", faults_run[name]


def test_dying_rank_is_an_error_naming_rank_and_exit(faults_run):
    outcome, text, _ = faults_run["test_fault_die"]
    assert outcome == "failure" and "rank 1 exited with code 3" in text
    outcome, text, _ = faults_run["test_fault_segfault"]
    assert outcome == "failure" and "rank 1 died with signal SIGSEGV (exit code -11)" in text


def test_skip_stays_a_skip_and_half_skip_fails(faults_run):
    outcome, text, _ = faults_run["test_fault_skip"]
    assert outcome == "skipped" and "not applicable: skipping on purpose" in text
    assert faults_run["test_fault_half_skip"][0] == "failure"


def test_failing_rank_is_named(faults_run):
    outcome, text, _ = faults_run["test_fault_fail"]
    assert outcome == "failure" and "rank 1: AssertionError: rank one is wrong on purpose" in text


def test_broken_schedules_fail(faults_run):
    outcome, text, _ = faults_run["test_fault_drop_microbatch"]
    assert outcome == "failure" and "number of microbatch losses" in text and "expected 4, got 3" in text
    outcome, text, _ = faults_run["test_fault_corrupt_grad"]
    assert outcome == "failure" and "gradient of layers." in text


def test_normal_runs_have_no_fault_checks_or_scenarios(tmp_path):
    """Without the test plugin, fault checks do not exist and fault scenario names are unknown to the ranks."""
    res = run_suite(tmp_path, "test_fault or ScheduleGPipe-world2-fp32")
    assert list(res) == ["test_schedule[ScheduleGPipe-world2-fp32]"] and res[next(iter(res))][0] == "passed"
    res = run_suite(tmp_path, "test_fault_fail", FAULT_CHECKS)
    assert res["test_fault_fail"][0] == "failure" and "no scenario 'fault_fail'" in res["test_fault_fail"][1]


def test_fault_hook_in_pipelining_fails_the_real_schedule_checks(tmp_path):
    """The rank plugin corrupts gradients inside every schedule's step; the ordinary checks must notice."""
    res = run_suite(tmp_path, "test_schedule and world2-fp32 and (GPipe or ZBV)", **WITH_FAULTS,
                    CONFORMANCE_TEST_SCHEDULE_FAULT="corrupt_grad")
    assert set(res) == {"test_schedule[ScheduleGPipe-world2-fp32]", "test_schedule[ScheduleZBVZeroBubble-world2-fp32]"}
    assert all(v[0] == "failure" and "gradient of" in v[1] for v in res.values()), res
