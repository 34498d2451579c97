"""Tests of the matrix build: union of checks, missing cells, divergence, ordering, areas and env order."""

from __future__ import annotations

import pytest

from conformance.report import model as m
from conformance.report.matrix import area_of, build_matrix


def env(name, *cases):
    result = m.EnvResult(name, f"{name}.xml")
    for classname, test, outcome in cases:
        result.cases.append(m.Cell(classname, test, outcome))
    return result


@pytest.mark.parametrize(
    ("classname", "area"),
    [("test_split", "split"), ("conformance.checks.test_schedules", "schedules"),
     ("conformance.checks.test_stage.TestStage", "stage"), ("pkg.backward_test", "backward"),
     ("mymodule.Class", "mymodule"), ("", "(none)")],
)
def test_area_of(classname, area):
    assert area_of(classname) == area


def test_rows_divergent_first_then_area_then_file_order():
    cpu = env("cpu", ("test_split", "b", m.PASSED), ("test_split", "a", m.PASSED), ("test_backward", "z", m.PASSED),
              ("test_stage", "s", m.PASSED))
    cuda = env("cuda", ("test_split", "b", m.PASSED), ("test_split", "a", m.FAILED), ("test_backward", "z", m.PASSED))
    matrix = build_matrix([cuda, cpu])
    assert [c.name for c in matrix.envs] == ["cpu", "cuda"]
    assert [(r.key, r.divergent) for r in matrix.rows] == [
        ("test_split::a", True), ("test_stage::s", True),  # s is missing on cuda: divergent
        ("test_backward::z", False), ("test_split::b", False)]
    stage = matrix.rows[1]
    assert stage.outcome(0) == m.PASSED and stage.outcome(1) == m.MISSING and stage.cells[1] is None
    assert matrix.envs[1].counts == m.Counts(passed=2, failed=1, missing=1)
    assert matrix.totals == m.Counts(passed=6, failed=1, missing=1)
    assert matrix.failed_envs == ["cuda"]
    assert matrix.divergent == 2
    assert matrix.areas == ["backward", "split", "stage"]


def test_expect_orders_columns_and_reports_absent_envs():
    matrix = build_matrix([env("a", ("test_x", "t", m.PASSED)), env("cuda", ("test_x", "t", m.PASSED)),
                           env("cpu", ("test_x", "t", m.PASSED))], expect=["cuda", "cpu", "xpu"])
    assert [c.name for c in matrix.envs] == ["cuda", "cpu", "a"]
    assert matrix.absent_envs == ["xpu"]
    assert [w.problem for w in matrix.warnings] == [
        "env 'xpu' was expected (--expect) but has no results file"]


def test_duplicate_id_in_one_env_warns_and_first_result_is_shown():
    dup = env("cpu", ("test_x", "t", m.FAILED), ("test_x", "t", m.PASSED))
    matrix = build_matrix([dup])
    assert matrix.rows[0].outcome(0) == m.FAILED
    assert "1 check ids appear more than once (test_x::t)" in matrix.warnings[0].problem


def test_unavailable_alone_does_not_make_a_row_divergent():
    matrix = build_matrix([env("cpu", ("test_x", "t", m.PASSED), ("test_x", "u", m.NOT_APPLICABLE)),
                           env("hpu", ("test_x", "t", m.UNAVAILABLE), ("test_x", "u", m.UNAVAILABLE))])
    assert [(r.key, r.divergent, r.consensus) for r in matrix.rows] == [
        ("test_x::t", False, m.PASSED), ("test_x::u", False, m.NOT_APPLICABLE)]
    only_hpu = build_matrix([env("hpu", ("test_x", "t", m.UNAVAILABLE))])
    assert only_hpu.rows[0].consensus == m.UNAVAILABLE


def test_expect_matches_an_env_renamed_for_a_clash():
    a, b = env("run1/cuda", ("test_x", "t", m.PASSED)), env("run2/cuda", ("test_x", "t", m.PASSED))
    a.claimed = b.claimed = "cuda"
    matrix = build_matrix([b, a, env("cpu", ("test_x", "t", m.PASSED))], expect=["cuda", "cpu"])
    assert matrix.absent_envs == []
    assert [c.name for c in matrix.envs] == ["run1/cuda", "run2/cuda", "cpu"]


PRODUCERS = __import__("pathlib").Path(__file__).parent / "data" / "junit" / "producers"


def test_go_count2_failed_run_is_kept_and_fails_the_env():
    from conformance.report.inputs import read_inputs

    envs, warnings = read_inputs([PRODUCERS / "gotestsum-count2.xml"])
    matrix = build_matrix(envs, warnings)
    rows = {r.key: r for r in matrix.rows}
    cell = rows["example.com/ppconf/sched::Test1F1B"].cells[0]
    assert cell.outcome == m.FAILED and cell.runs == (m.FAILED, m.PASSED)
    assert cell.message == "flaky: failed then passed; Failed"
    assert rows["example.com/ppconf/sched::TestGPipe"].cells[0].message == "passed then passed"
    assert matrix.envs[0].counts == m.Counts(passed=1, failed=1, skipped=1)
    assert matrix.failed_envs == ["gotestsum-count2"]
    assert [w.slug for w in matrix.warnings] == [m.W_DUPLICATE]


def test_ids_that_differ_only_in_where_the_separator_falls_keep_both_outcomes():
    from conformance.report.inputs import read_inputs

    envs, warnings = read_inputs([PRODUCERS / "nextest.xml"])
    matrix = build_matrix(envs, warnings)
    row = next(r for r in matrix.rows if r.key == "pp-sched::integration::gpipe")
    assert row.cells[0].runs == (m.PASSED, m.FAILED) and row.outcome(0) == m.FAILED
    assert matrix.failed_envs == ["nextest"]


def test_many_runs_are_counted_not_listed():
    cpu = env("cpu", *[("test_x", "t", m.FAILED if i % 3 == 0 else m.PASSED) for i in range(10)])
    cell = build_matrix([cpu]).rows[0].cells[0]
    assert cell.outcome == m.FAILED
    assert cell.message == "flaky: ran 10 times: 6 passed, 4 failed"


def test_rows_are_sparse():
    cpu = env("cpu", ("test_x", "a", m.PASSED))
    cuda = env("cuda", ("test_x", "b", m.FAILED))
    rows = {r.key: r for r in build_matrix([cpu, cuda]).rows}
    assert dict(rows["test_x::a"].cells).keys() == {0} and dict(rows["test_x::b"].cells).keys() == {1}
    assert rows["test_x::b"].codes == "MF" and rows["test_x::b"].outcomes == (m.MISSING, m.FAILED)
    assert rows["test_x::b"].times == (None, 0.0)
