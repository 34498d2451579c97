"""Unit tests of how per-rank results become one pytest outcome (no processes started)."""

import pytest

from conformance.pool.local import RunReport, describe_exit
from conformance.protocol.tasks import Result
from conformance.suite.outcome import settle


def report(*results, **kw):
    return RunReport(list(results), 0.1, **kw)


def test_all_passed_returns_data_in_rank_order():
    data = settle(report(Result(1, 1, "passed", data={"r": 1}), Result(1, 0, "passed", data={"r": 0})))
    assert data == [{"r": 0}, {"r": 1}]


def test_failure_names_rank_and_carries_traceback():
    with pytest.raises(pytest.fail.Exception) as exc:
        settle(report(Result(1, 0, "passed"), Result(1, 1, "failed", "AssertionError: bad grad", "Traceback...here")))
    text = str(exc.value)
    assert text.startswith("rank 1: AssertionError: bad grad")
    assert "===== rank 1 (failed) =====" in text and "Traceback...here" in text


def test_error_mentions_restart():
    with pytest.raises(pytest.fail.Exception, match="torn down"):
        settle(report(Result(1, 0, "error", "rank 0 died with signal SIGSEGV (exit code -11)"), restarted=True))


def test_unanimous_skip_is_a_skip():
    with pytest.raises(pytest.skip.Exception, match="^not applicable: x"):
        settle(report(Result(1, 0, "skipped", "not applicable: x"), Result(1, 1, "skipped", "not applicable: x")))


def test_partial_skip_is_a_failure_not_a_pass():
    with pytest.raises(pytest.fail.Exception, match="ranks disagree: rank 1 skipped"):
        settle(report(Result(1, 0, "passed"), Result(1, 1, "skipped", "not applicable: x")))


def test_failure_wins_over_skip():
    with pytest.raises(pytest.fail.Exception):
        settle(report(Result(1, 0, "skipped", "s"), Result(1, 1, "failed", "boom")))


def test_no_results_is_a_failure():
    with pytest.raises(pytest.fail.Exception):
        settle(report())


def test_describe_exit():
    assert describe_exit(-11) == "died with signal SIGSEGV (exit code -11)"
    assert describe_exit(3) == "exited with code 3"
