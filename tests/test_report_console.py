"""Tests of the stdout summary: one line per env with its denominator, absent envs, incomplete envs."""

from __future__ import annotations

from conformance.report import model as m
from conformance.report.console import summary_lines
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
