"""conformance.torchenv.api and conformance.suite.applicable: the API -> first-release table and `require()`'s
not-applicable skips."""

import pytest

import checkfaults
from conformance.suite.applicable import require
from conformance.torchenv import api


@pytest.mark.parametrize("version,want", [
    ("2.6.0", (2, 6)), ("2.13.0+cpu", (2, 13)), ("2.9.0a0+git1234", (2, 9)), ("2.10.1+cu128", (2, 10)),
    ("2.14.0.dev20260101+xpu", (2, 14)), ("", None), ("nightly", None),
])
def test_parse_version(version, want):
    assert api.parse_version(version) == want


def test_reason_names_api_and_versions():
    assert api.missing_reason("ScheduleDualPipeV", "2.6.0") == \
        "not applicable: ScheduleDualPipeV needs torch >= 2.9 (this build 2.6.0)"
    assert api.missing_reason("ScheduleDualPipeV", "2.9.0") is None
    # minor versions compare as numbers, not strings: 2.10 is newer than 2.9
    assert api.missing_reason("ScheduleDualPipeV", "2.10.0+cpu") is None
    assert api.missing_reason("ScheduleDualPipeV", "2.9.0a0+git") is None  # a 2.9 pre-release has 2.9's API


def test_require_skips_as_not_applicable():
    with pytest.raises(pytest.skip.Exception) as info:
        require("pipeline", "loss_kwargs", version="2.12.1")
    assert str(info.value.msg) == "not applicable: loss_kwargs needs torch >= 2.13 (this build 2.12.1)"
    require("pipeline", "loss_kwargs", version="2.13.0")  # no skip


def test_unknown_api_is_an_error_not_a_skip():
    with pytest.raises(KeyError, match="no first version recorded for 'ScheduleMadeUp'"):
        require("ScheduleMadeUp", version="2.13.0")


def test_table_covers_design_versions():
    """The versions DESIGN.md lists, spot-checked, so a table edit that breaks them shows here."""
    want = {"pipeline": (2, 4), "PipelineStage": (2, 4), "ScheduleLoopedBFS": (2, 4),
            "ScheduleInterleavedZeroBubble": (2, 5), "get_schedule_class": (2, 5), "ScheduleZBVZeroBubble": (2, 6),
            "scale_grads": (2, 7), "ScheduleDualPipeV": (2, 9), "eval": (2, 9), "return_outputs": (2, 10),
            "loss_kwargs": (2, 13), "arg_mbs": (2, 14)}
    assert {k: api.SINCE[k] for k in want} == want


@pytest.mark.parametrize("case", checkfaults.cases("api"))
def test_check_under_old_torch(case, tmp_path_factory):
    """Inside the suite, a check needing a newer API is skipped with the reason; one that does not still runs."""
    pytest.importorskip("torch")
    outcomes, output = checkfaults.batch(tmp_path_factory, faulted=True)
    got = outcomes.get(case.check)
    assert got is not None, f"{case.check} did not run:\n{output[-3000:]}"
    assert got.outcome == case.expect, f"{case.check}: {got.outcome}\n{got.message[-2000:]}"
    for fragment in case.says:
        assert fragment in got.message
