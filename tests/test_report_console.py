"""Tests of the stdout summary: one line per env with its denominator, absent envs, incomplete envs."""

from __future__ import annotations

import pytest

from conformance.report import model as m
from conformance.report.console import safe_line, summary_lines, warning_line
from conformance.report.matrix import build_matrix


def test_summary_lines():
    cpu = m.EnvResult("cpu", "cpu.xml", properties={"torch_version": "2.13.0+cpu", "backend": "gloo"},
                      cases=[m.Cell("test_x", "a", m.PASSED), m.Cell("test_x", "b", m.UNAVAILABLE)])
    cuda = m.EnvResult("cuda", "cuda.xml", incomplete="incomplete: XML ends early at line 3",
                       cases=[m.Cell("test_x", "a", m.CRASHED)])
    lines = summary_lines(build_matrix([cpu, cuda], expect=["cpu", "cuda", "xpu"]))
    assert lines == [
        "conformance report: 2 checks x 2 envs: 1 divergent, problems in cuda",
        "  cpu   ok    1/2 passed, 1 unavailable  (2.13.0+cpu gloo)",
        "  cuda  FAIL  0/1 passed, 1 crashed, 1 missing [incomplete: incomplete: XML ends early at line 3]",
        "  xpu   MISSING  expected, but no results file",
    ]


def test_incomplete_env_without_failures_says_so():
    env = m.EnvResult("xpu", "xpu.xml.partial", incomplete="run did not finish", cases=[m.Cell("test_x", "a",
                                                                                                m.PASSED)])
    assert summary_lines(build_matrix([env]))[1] == "  xpu  INCOMPLETE  1/1 passed [run did not finish]"


@pytest.mark.parametrize(
    ("text", "shown"),
    [("cuda\n::error file=a.py::forged", "cuda\\n::error file=a.py::forged"),
     ("::error::forged", "\\x3a:error::forged"),
     ("  ::warning::forged", "  \\x3a:warning::forged"),
     ("x ##vso[task.complete result=Succeeded] y", "x \\x23#vso[task.complete result=Succeeded] y"),
     ("##[error]x and ##teamcity[buildStatus]", "\\x23#[error]x and \\x23#teamcity[buildStatus]"),
     ("red\x1b[31m bell\x07 cr\r nul\x00 del\x7f", "red\\x1b[31m bell\\x07 cr\\r nul\\x00 del\\x7f"),
     ("line\u2028sep bidi\u202eevil zw\u200b", "line\\u2028sep bidi\\u202eevil zw\\u200b"),
     ("test_x::test_y[a-b] é 💥", "test_x::test_y[a-b] é 💥")],
)
def test_safe_line_neutralises_controls_and_ci_commands(text, shown):
    assert safe_line(text) == shown


def test_every_summary_and_warning_line_is_inert():
    evil = "cpu\n::error::forged"
    env = m.EnvResult(evil, "x.xml", properties={"torch_version": "1\r::warning::x"},
                      cases=[m.Cell("test_x", "a", m.FAILED)])
    matrix = build_matrix([env], [m.InputWarning("::notice::f.xml", "bad\n::error::x", slug=m.W_MALFORMED)],
                          expect=["::group::x"])
    lines = summary_lines(matrix) + [warning_line(w) for w in matrix.warnings]
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert not any(line.lstrip().startswith("::") for line in lines)
    assert warning_line(matrix.warnings[0]) == "warning[malformed]: ::notice::f.xml: bad\\n::error::x"
