"""Step cost and timelines in the report: parsing the suite properties, tables, Chrome traces, step-time regressions,
and the timeline as headless Chromium draws it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conformance.protocol.stepcost import Trace
from conformance.report import baseline, html, jsonfmt, markdown, stepcost, timeline
from conformance.report import model as m
from conformance.report.matrix import build_matrix
from test_report_html import browse, screenshot

ROOT = Path(__file__).resolve().parents[1]

# A 2-rank 1F1B step with idle time on rank 1 at the start and on rank 0 at the end.
TRACE = {"schedule": "Schedule1F1B", "world": 2, "unit": "us", "ranks": {
    "0": [[0, "F", 0, 0, 1000], [0, "F", 1, 1000, 2000], [0, "B", 0, 4000, 6000], [0, "F", 2, 6000, 7000],
          [0, "B", 1, 8000, 10000], [0, "B", 2, 12000, 14000]],
    "1": [[1, "F", 0, 1100, 2100], [1, "B", 0, 2100, 4000], [1, "F", 1, 4000, 5000], [1, "B", 1, 5000, 8000],
          [1, "F", 2, 8000, 9000], [1, "B", 2, 9000, 12000]]}}
COST = {"schedule": "Schedule1F1B", "world": 2, "n_mb": 8, "steps": 7, "step_ms": 14.19, "ideal_ms": 12.0,
        "bubble": 0.15, "bubble_theory": 0.1111, "bubble_theory_source": "(p-1)/(m+p-1)",
        "peak_bytes": {"0": 1449551462, "1": 1481763225}, "base_bytes": {"0": 1, "1": 1}, "device": "NVIDIA H200"}


def env(name: str, step_ms: float = 14.19) -> m.EnvResult:
    props = {"env": name, "torch_version": "2.11.0",
             "stepcost:test_step_cost[Schedule1F1B-world2]": json.dumps({**COST, "step_ms": step_ms}),
             "trace:test_step_cost[Schedule1F1B-world2]": json.dumps(TRACE)}
    cells = [m.Cell("test_behaviour", "test_step_cost[Schedule1F1B-world2]", m.PASSED, 1.0)]
    return m.EnvResult(name, f"{name}.xml", cases=cells, properties=props)


def matrix(*envs: m.EnvResult) -> m.Matrix:
    return build_matrix(list(envs), [], [], generated_at="2026-01-01T00:00:00+00:00", generator="conformance 9")


def test_properties_become_tables_not_metadata():
    mat = matrix(env("cuda"))
    col = mat.envs[0]
    assert col.metadata == {"env": "cuda", "torch_version": "2.11.0"}
    assert col.build.torch_version == "2.11.0"
    assert [(check, cost.step_ms) for check, cost in col.costs] == [("test_step_cost[Schedule1F1B-world2]", 14.19)]
    data = json.loads(jsonfmt.render_json(mat))["envs"][0]
    assert data["properties"] == {"env": "cuda", "torch_version": "2.11.0"}
    assert data["stepcost"][0]["step_ms"] == 14.19
    assert data["traces"] == ["test_step_cost[Schedule1F1B-world2]"]
    md = markdown.render_markdown(mat)
    assert "### Step cost: cuda (NVIDIA H200)" in md
    assert "| Schedule1F1B | 2 | 14.19 | 12.00 | 15% | 11% | 1.35 / 1.38 |" in md


def test_envs_without_step_cost_render_as_before():
    plain = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_split", "test_a", m.PASSED, 0.1)],
                        properties={"env": "cpu"})
    mat = matrix(plain)
    assert 'id="stepcost"' not in html.render_html(mat)
    assert "Step cost" not in markdown.render_markdown(mat)
    assert set(json.loads(jsonfmt.render_json(mat))["envs"][0]) >= {"name", "properties"}
    assert "stepcost" not in json.loads(jsonfmt.render_json(mat))["envs"][0]


def test_timeline_lanes_kinds_and_idle():
    svg = timeline.svg(Trace.from_json(json.dumps(TRACE)))
    assert svg.count('class="idle"') == 2  # one lane per rank, its background is the idle colour
    assert svg.count('class="act k-F"') == 6
    assert svg.count('class="act k-B"') == 6
    assert "rank 1: idle" in svg
    assert "stage 0 forward of microbatch 0, 1.000 ms" in svg
    idle = timeline.idle_fraction(TRACE["ranks"]["0"], 0, 14000)
    assert idle == pytest.approx(1 - 9000 / 14000)
    assert len({timeline.COLOURS[k] for k in "FIWB"} | {timeline.IDLE}) == 5


def test_chrome_trace_files_beside_the_report(tmp_path):
    mat = matrix(env("cuda"))
    written = stepcost.write_chrome_traces(mat, tmp_path)
    assert [p.name for p in written] == ["cuda-test_step_cost_Schedule1F1B-world2.json"]
    data = json.loads(written[0].read_text())
    complete = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == 12
    assert {e["tid"] for e in complete} == {0, 1}
    first = min(complete, key=lambda e: (e["tid"], e["ts"]))
    assert (first["name"], first["ts"], first["dur"], first["cat"]) == ("F0 stage 0", 0, 1000, "F")


def test_step_time_regressions_against_a_baseline(tmp_path):
    base = tmp_path / "compatibility.json"
    base.write_text(jsonfmt.render_json(matrix(env("cuda", step_ms=10.0), env("rocm", step_ms=14.0))))
    now = matrix(env("cuda", step_ms=14.19), env("rocm", step_ms=14.19))  # +42 %, +1.4 % (under the threshold)
    regress = baseline.diff(now, baseline.load(str(base))).step_time
    assert [(r.env, r.schedule, r.world, r.before_ms) for r in regress] == [("cuda", "Schedule1F1B", 2, 10.0)]
    xml_base = tmp_path / "cuda.xml"
    xml_base.write_text('<testsuites><testsuite name="pytest" tests="0"><properties>'
                        '<property name="env" value="cuda"/><property name="stepcost:x" value="'
                        + json.dumps({**COST, "step_ms": 10.0}).replace('"', "&quot;") + '"/></properties>'
                        "</testsuite></testsuites>")
    assert baseline.load(str(xml_base)).step_ms == {"cuda": {("Schedule1F1B", 2): 10.0}}


def test_browser_draws_the_timeline(tmp_path):
    mat = matrix(env("cuda"))
    page = tmp_path / "compatibility.html"
    page.write_text(html.render_html(mat), encoding="utf-8")
    dom = browse(page)
    svgs = re.findall(r'<svg class="timeline".*?</svg>', dom, re.DOTALL)
    assert len(svgs) == 1
    assert svgs[0].count("<rect") == 14
    assert "Step cost and measured timelines" in dom
    assert "14.19" in dom
    shot = screenshot(page, tmp_path / "timeline.png", size="1100,500")
    assert shot.stat().st_size > 5000  # a drawn page, not a blank one


def test_report_command_lists_step_time_regressions(tmp_path, capsys):
    from conformance.report.engine import Options, run_report

    base = tmp_path / "base.json"
    base.write_text(jsonfmt.render_json(matrix(env("cuda", step_ms=10.0))))
    (tmp_path / "in").mkdir()
    xml = tmp_path / "in" / "cuda.xml"
    props = '<property name="env" value="cuda"/>'
    value = json.dumps({**COST, "step_ms": 14.19}).replace('"', "&quot;")
    xml.write_text(f'<testsuites><testsuite name="pytest" tests="1"><properties>{props}'
                   f'<property name="stepcost:test_step_cost[Schedule1F1B-world2]" value="{value}"/></properties>'
                   '<testcase classname="test_behaviour" name="test_step_cost[Schedule1F1B-world2]" time="1"/>'
                   "</testsuite></testsuites>")
    code = run_report(Options(inputs=[str(xml)], output_dir=str(tmp_path / "out"), formats=["md", "json"],
                              baseline=str(base), generator="conformance 9"))
    out = capsys.readouterr().out
    assert code == 0  # timings are listed, never an exit status
    assert "step time  cuda Schedule1F1B world 2: 10.00 -> 14.19 ms (+42%" in out
    assert "**Step-time regressions (1)**" in (tmp_path / "out" / "compatibility.md").read_text()
