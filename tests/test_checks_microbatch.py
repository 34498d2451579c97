"""Fault injection for area C (microbatch utilities): each injected pipelining fault fails its check, and only then."""

import pytest

import checkfaults

pytest.importorskip("torch")  # the checks under test run torch; without it there is nothing to break


@pytest.mark.parametrize("case", checkfaults.cases("microbatch"))
def test_fault_is_caught(case, tmp_path_factory):
    checkfaults.assert_caught(case, tmp_path_factory)


@pytest.mark.parametrize("case", checkfaults.cases("microbatch"))
def test_passes_without_fault(case, tmp_path_factory):
    checkfaults.assert_clean(case, tmp_path_factory)
