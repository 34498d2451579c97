"""The rank pool on real processes (world size 2, gloo): structured results, hangs, deaths, restarts, isolate."""

from __future__ import annotations

import os
import time

import pytest

from conformance.pool import pools
from conformance.pool.local import LocalPool
from conformance.torchenv import profiles

TIMEOUT_S = 6.0


@pytest.fixture(scope="module")
def faults_on():
    """The test-only fault scenarios (tests/support/pool_faults.py) as a rank plugin, inherited by the ranks."""
    old = os.environ.get("CONFORMANCE_RANK_PLUGINS")
    os.environ["CONFORMANCE_RANK_PLUGINS"] = "pool_faults"
    yield
    if old is None:
        os.environ.pop("CONFORMANCE_RANK_PLUGINS", None)
    else:
        os.environ["CONFORMANCE_RANK_PLUGINS"] = old


@pytest.fixture(scope="module")
def pool(faults_on):
    p = LocalPool(2, profiles.CPU, "gloo", timeout_s=TIMEOUT_S)
    yield p
    p.close()


def pids(report):
    return [r.data["pid"] for r in report.results]


def test_results_are_structured_and_ranks_persist(pool):
    a = pool.run("ping-a", "ping", {})
    b = pool.run("ping-b", "ping", {})
    assert [(r.rank, r.outcome) for r in a.results] == [(0, "passed"), (1, "passed")]
    assert all(r.seq == a.results[0].seq for r in a.results) and b.results[0].seq > a.results[0].seq
    assert a.results[0].data["world_size"] == 2
    assert pids(a) == pids(b), "a persistent pool runs the next check on the same processes"
    assert pool.starts == 1


def test_ranks_share_the_cores_for_intra_op_threads(pool):
    # 2 ranks on this host: each gets half the cores (at least one), unless OMP_NUM_THREADS was set for the pool.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    expected = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else max(1, cores // 2)
    assert [r.data["threads"] for r in pool.run("threads", "ping", {}).results] == [expected, expected]


def test_hang_times_out_with_every_ranks_stack_then_recovers(pool):
    before = pids(pool.run("ping", "ping", {}))
    t0 = time.monotonic()
    rep = pool.run("hang", "fault_hang", {})
    elapsed = time.monotonic() - t0
    assert rep.timed_out and rep.restarted
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 10
    for r in rep.results:
        assert r.outcome == "error" and f"rank {r.rank} timed out after" in r.message
        assert f"Python stacks of rank {r.rank}" in r.traceback
        assert "hang_here_forever" in r.traceback and "fault_hang" not in r.message
    after = pool.run("ping", "ping", {})
    assert [r.outcome for r in after.results] == ["passed", "passed"]
    assert set(pids(after)).isdisjoint(before), "the hung ranks were replaced"


def test_one_rank_hangs_others_fail_fast(pool):
    """Rank 1 sleeps while rank 0 waits in a barrier: rank 0's collective gives up first, rank 1 is dumped."""
    rep = pool.run("hang1", "fault_hang", {"ranks": [1]})
    by = {r.rank: r for r in rep.results}
    assert by[1].outcome == "error" and "hang_here_forever" in by[1].traceback
    assert by[0].outcome in ("failed", "error")
    assert rep.restarted
    assert [r.outcome for r in pool.run("ping", "ping", {}).results] == ["passed", "passed"]


@pytest.mark.parametrize("scenario,params,expected", [
    ("fault_die", {"ranks": [1], "code": 3}, "rank 1 exited with code 3"),
    ("fault_signal", {"ranks": [1], "signal": "SIGSEGV"}, "rank 1 died with signal SIGSEGV (exit code -11)"),
])
def test_dead_rank_is_named_with_its_exit(pool, scenario, params, expected):
    rep = pool.run(scenario, scenario, params)
    assert rep.died and rep.restarted
    bad = [r for r in rep.results if r.rank == 1][0]
    assert bad.outcome == "error" and bad.message == expected
    assert [r.outcome for r in pool.run("ping", "ping", {}).results] == ["passed", "passed"]


def test_skip_and_failure_are_results(pool):
    skip = pool.run("skip", "fault_skip", {"reason": "not applicable: because"})
    assert [(r.outcome, r.message) for r in skip.results] == [("skipped", "not applicable: because")] * 2
    fail = pool.run("fail", "fault_fail", {"ranks": [1], "message": "nope"})
    assert [r.outcome for r in fail.results] == ["passed", "failed"]
    assert "AssertionError: nope" in fail.results[1].message and "Traceback" in fail.results[1].traceback
    assert not fail.restarted, "a plain failure keeps a healthy pool"


# As torch words some errors (export, collectives): the cause after a newline, then an indented block.
NEWLINE_FIRST = ("\n\n  The size of tensor a (4) must match the size of tensor b (8) at non-singleton dimension 1"
                 "\n    more")
CAUSE = "RuntimeError: The size of tensor a (4) must match the size of tensor b (8) at non-singleton dimension 1"


def test_first_line_of_a_rank_failure_carries_the_cause(pool):
    from conformance.suite import outcome

    rep = pool.run("nl", "fault_fail", {"ranks": [0], "error": "RuntimeError", "message": NEWLINE_FIRST})
    bad = rep.results[0]
    assert bad.outcome == "failed" and bad.message.splitlines()[0] == CAUSE, bad.message
    assert "    more" in bad.message and "more" in bad.traceback, "the long text keeps every line"
    assert outcome.message(rep).splitlines()[0] == f"rank 0: {CAUSE}"
    with pytest.raises(pytest.fail.Exception) as failed:
        outcome.settle(rep)
    assert str(failed.value).splitlines()[0] == f"rank 0: {CAUSE}"


def test_first_line_carries_the_cause_in_process_and_for_skips(faults_on):
    import pool_faults  # noqa: F401 - registers the fault scenarios in this process (world 1 runs here)
    from conformance.pool import inprocess
    from conformance.protocol.tasks import Task
    from conformance.suite import outcome

    rep = inprocess.run(Task(1, "nl", "fault_fail", {"ranks": [0], "error": "RuntimeError",
                                                     "message": NEWLINE_FIRST}), profiles.CPU, "gloo")
    assert outcome.message(rep).splitlines()[0] == f"rank 0: {CAUSE}"
    skip = inprocess.run(Task(2, "sk", "fault_skip", {"reason": "\nunavailable: needs 4 cuda devices"}),
                         profiles.CPU, "gloo")
    assert skip.results[0].message == "unavailable: needs 4 cuda devices", "a skip's reason decides its category"


def test_isolate_mode_starts_fresh_ranks_per_check(faults_on):
    p = pools.Pools(profiles.CPU, "gloo", 1, mode="isolate", timeout_s=TIMEOUT_S)
    try:
        a = p.run(2, "a", "ping")
        b = p.run(2, "b", "ping")
        starts = p.stats()[2]["starts"]
    finally:
        p.close()
    assert set(pids(a)).isdisjoint(pids(b))
    assert starts == 2


def test_too_few_devices_is_unavailable():
    p = pools.Pools(profiles.CUDA, "nccl", 2)
    with pytest.raises(pools.Unavailable, match="needs 4 cuda devices, found 2"):
        p.run(4, "x", "ping")


def test_unknown_scenario_fails_on_every_rank(pool):
    rep = pool.run("x", "no_such_scenario", {})
    assert all(r.outcome == "failed" and "no scenario 'no_such_scenario'" in r.message for r in rep.results)
