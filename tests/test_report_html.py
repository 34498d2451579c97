"""Tests of compatibility.html: gold file, self-containment, safe data embedding, and the page in real Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conformance.report import html
from conformance.report import model as m
from conformance.report.inputs import read_inputs
from conformance.report.matrix import build_matrix

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "gold"
MATRIX = sorted((ROOT / "tests" / "data" / "junit" / "matrix").glob("*.xml"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def fixture_matrix(monkeypatch) -> m.Matrix:
    monkeypatch.chdir(ROOT)
    envs, warnings = read_inputs(MATRIX)
    return build_matrix(envs, warnings, ["cpu", "cuda", "xpu", "hpu", "rocm"],
                        generated_at="2026-01-05T12:00:00+00:00", generator="conformance 9.9.9")


def scrub(text: str, matrix: m.Matrix) -> str:
    return text.replace(matrix.generated_at, "<TIMESTAMP>").replace(matrix.generator, "conformance <VERSION>")


def embedded(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="matrix-data">(.*?)</script>', text, re.S)
    assert match, "no embedded matrix data"
    return json.loads(match.group(1))


def test_html_gold(monkeypatch):
    matrix = fixture_matrix(monkeypatch)
    text = scrub(html.render_html(matrix), matrix)
    path = GOLD / "compatibility.html"
    if os.environ.get("UPDATE_GOLD") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLD=1 to create it"
    assert text == path.read_text(encoding="utf-8"), "compatibility.html differs from its gold file (UPDATE_GOLD=1)"


def test_self_contained_and_metadata_in_header(monkeypatch):
    text = html.render_html(fixture_matrix(monkeypatch))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page must not load anything"
    assert "<style>" in text and "<script>" in text
    for shown in ("2.13.0+cu130", "cu130 pinned", "cuda 13.0", "580.65.06", "NVIDIA H100 80GB HBM3", "nccl",
                  "gpu-node-7", "hpu unavailable: habana_frameworks not importable", "expected (--expect), but no "
                  "results file", '<td class="num">15/18<div class="bar">', "1 failed, 1 error, 1 xpass (strict)",
                  "python: 3.11.7\nstarted: 2026-01-05T10:00:02+00:00"):
        assert shown in text, shown


def test_embedded_data_matches_matrix(monkeypatch):
    matrix = fixture_matrix(monkeypatch)
    data = embedded(html.render_html(matrix))
    assert data["envs"] == ["cpu", "cuda", "xpu", "hpu"]
    assert len(data["rows"]) == len(matrix.rows) == 18
    key, area, codes, divergent = data["rows"][0]
    assert divergent == 1 and sum(r[3] for r in data["rows"]) == matrix.divergent
    rows = {r[0]: (i, r) for i, r in enumerate(data["rows"])}
    i, row = rows["test_backward::test_loss_kwargs"]
    assert row[2] == "NPPM"
    times = data["times"][i].split(",")
    assert len(times) == 4 and times[3] == "" and float(times[1]) > 0
    i, row = rows["test_schedules::test_schedule_matches_reference[ScheduleInterleaved1F1B-world2]"]
    assert row[2][2] == "C"
    assert data["msgs"][f"{i}:2"].startswith("crashed: rank 1 exited with signal 6")
    assert "faulthandler stacks" in data["msgs"][f"{i}:2"]


def test_script_end_tag_in_a_message_cannot_break_out():
    env = m.EnvResult("cpu", "x.xml", cases=[m.Cell("test_x", "t", m.FAILED, 0.0, "</script><b>x", "<!-- y")])
    text = html.render_html(build_matrix([env]))
    assert text.count("</script>") == 2  # the data block and the code block, nothing from the message
    assert embedded(text)["msgs"]["0:0"] == "</script><b>x\n\n<!-- y"


def browse(page: Path, fragment: str = "") -> str:
    if CHROMIUM is None:
        reason = "chromium is not installed (apt-get install -y chromium): the real-browser test cannot run"
        if os.environ.get("CONFORMANCE_REQUIRE_E2E") == "1":  # set by .ci/run: CI must not pass by skipping
            pytest.fail(reason)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri() + fragment],
            capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        matrix = fixture_matrix(mp)
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("html") / "compatibility.html"
    path.write_text(html.render_html(matrix), encoding="utf-8")
    return path


def body_rows(dom: str) -> list[str]:
    tbody = re.search(r'<table id="matrix"[^>]*>.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert tbody, "matrix table not in the DOM"
    return re.findall(r"<tr data-r=.*?</tr>", tbody.group(1), re.S)


def test_browser_renders_every_row(page):
    dom = browse(page)
    assert 'data-js="ready"' in dom, "the inline script did not finish"
    rows = body_rows(dom)
    assert len(rows) == 18
    assert 'data-rendered="18"' in dom
    assert "showing 18 of 18 matching checks (18 in all)" in dom
    assert dom.count('class="grp div"') == 5  # backward, identity, microbatch, schedules, stage


def test_browser_filters_from_the_link(page):
    dom = browse(page, "#div=1&envs=cpu,cuda&outcomes=FEX")
    rows = body_rows(dom)
    assert [re.search(r'title="([^"]+)"', r).group(1) for r in rows] == [
        "test_microbatch::test_chunk_spec[bf16]", "test_schedules::test_schedule_eval[ScheduleZBVZeroBubble-world2]",
        "test_stage::test_build_stage[world2]"]
    assert all(r.count('class="c ') == 2 for r in rows)  # only the cpu and cuda columns
    assert "showing 3 of 3 matching checks" in dom


def test_browser_opens_a_message_on_demand(page):
    data = embedded(page.read_text(encoding="utf-8"))
    r = next(i for i, row in enumerate(data["rows"]) if row[0] == "test_stage::test_build_stage[world2]")
    dom = browse(page, f"#open={r}:1")
    match = re.search(r'<tr class="msg" data-k="[0-9:]+"><td colspan="5"><b>cuda</b> · error.*?<pre>(.*?)</pre>', dom,
                      re.S)
    assert match, "the message row did not open"
    assert "NCCL error: unhandled system error" in match.group(1)


def test_unknown_properties_are_shown_in_the_env_tooltip():
    env = m.EnvResult("cpu", "x.xml", properties={"torch_version": "2.13.0", "platform": "Linux-6.8-x86_64",
                                                 "torch_pinned": "2.13.0"}, cases=[m.Cell("test_x", "t", m.PASSED)])
    title = embedded(html.render_html(build_matrix([env])))["envTitles"][0]
    assert title.splitlines() == ["torch: 2.13.0", "platform: Linux-6.8-x86_64", "torch_pinned: 2.13.0",
                                  "file: x.xml (0.0 s of checks)"]
