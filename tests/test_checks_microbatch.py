"""Fault injection for area C (microbatch utilities): each injected pipelining fault makes its check fail, and only then."""

import pytest

import checkfaults

pytest.importorskip("torch")  # the checks under test run torch; without it there is nothing to break


@pytest.mark.parametrize("case", checkfaults.cases("microbatch"))
def test_fault_is_caught(case, tmp_path_factory):
    outcomes, output = checkfaults.batch(tmp_path_factory, faulted=True)
    got = outcomes.get(case.check)
    assert got is not None, f"{case.check} did not run:\n{output[-3000:]}"
    assert got.outcome == case.expect, f"{case.check} under fault {case.fault}: {got.outcome}\n{got.message[-2000:]}"
    for fragment in case.says:
        assert fragment in got.message, f"{case.check} message lacks {fragment!r}:\n{got.message[-2000:]}"


@pytest.mark.parametrize("case", checkfaults.cases("microbatch"))
def test_passes_without_fault(case, tmp_path_factory):
    outcomes, output = checkfaults.batch(tmp_path_factory, faulted=False)
    got = outcomes.get(case.check)
    assert got is not None, f"{case.check} did not run:\n{output[-3000:]}"
    assert got.outcome == "passed", f"{case.check} without a fault: {got.outcome}\n{got.message[-2000:]}"
