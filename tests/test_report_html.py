"""Tests of compatibility.html: gold file, self-containment, safe data embedding, and the page in real Chromium."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from html import unescape
from pathlib import Path

import pytest

from conformance.report import html
from conformance.report import model as m
from conformance.report.matrix import build_matrix
from report_gold import check_gold, fixture_matrix, scrub

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def embedded(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="matrix-data">(.*?)</script>', text, re.DOTALL)
    assert match, "no embedded matrix data"
    return json.loads(match.group(1))


def test_html_gold(monkeypatch):
    matrix = fixture_matrix(monkeypatch)
    check_gold("compatibility.html", scrub(html.render_html(matrix), matrix))


def test_self_contained_and_metadata_in_header(monkeypatch):
    text = html.render_html(fixture_matrix(monkeypatch))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page must not load anything"
    assert "<style>" in text
    assert "<script>" in text
    for shown in ("2.13.0+cu130", "cu130 pinned", "cuda 13.0", "580.65.06", "NVIDIA H100 80GB HBM3", "nccl",
                  "gpu-node-7", "hpu unavailable: habana_frameworks not importable", ("expected (--expect), but no "
                  "results file"), '<td class="num">15/18<div class="bar">', "1 failed, 1 error, 1 xpass (strict)",
                  "python: 3.11.7\nstarted: 2026-01-05T10:00:02+00:00"):
        assert shown in text, shown


def test_embedded_data_matches_matrix(monkeypatch):
    matrix = fixture_matrix(monkeypatch)
    data = embedded(html.render_html(matrix))
    assert data["envs"] == ["cpu", "cuda", "xpu", "hpu"]
    assert len(data["rows"]) == len(matrix.rows) == 18
    assert all(len(r) == 3 for r in data["rows"])  # four envs, cells in most: every row dense
    assert [r[0] for r in data["rows"]] == [r.key for r in matrix.rows]
    rows = {r[0]: (i, r) for i, r in enumerate(data["rows"])}
    i, row = rows["test_backward::test_loss_kwargs"]
    assert row[2] == "NPPM"
    times = data["times"][i].split(",")
    assert len(times) == 4
    assert times[3] == ""
    assert float(times[1]) > 0
    i, row = rows["test_schedules::test_schedule_matches_reference[ScheduleInterleaved1F1B-world2]"]
    assert row[2][2] == "C"
    assert data["msgs"][f"{i}:2"].startswith("crashed: rank 1 exited with signal 6")
    assert "faulthandler stacks" in data["msgs"][f"{i}:2"]


def test_script_end_tag_in_a_message_cannot_break_out():
    env = m.EnvResult("cpu", "x.xml", cases=[m.Cell("test_x", "t", m.FAILED, 0.0, "</script><b>x", "<!-- y")])
    text = html.render_html(build_matrix([env]))
    assert text.count("</script>") == 2  # the data block and the code block, nothing from the message
    assert embedded(text)["msgs"]["0:0"] == "</script><b>x\n\n<!-- y"


def browse(page: Path, fragment: str = "", *, size: str = "1200,900") -> str:
    if CHROMIUM is None:
        reason = "chromium is not installed (apt-get install -y chromium): the real-browser test cannot run"
        if os.environ.get("CONFORMANCE_REQUIRE_E2E") == "1":  # set by .ci/run: CI must not pass by skipping
            pytest.fail(reason)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={size}", "--dump-dom", page.as_uri() + fragment],
            check=False, capture_output=True, text=True, timeout=60)
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
    tbody = re.search(r'<table id="matrix"[^>]*>.*?<tbody>(.*?)</tbody>', dom, re.DOTALL)
    assert tbody, "matrix table not in the DOM"
    return re.findall(r"<tr data-r=.*?</tr>", tbody.group(1), re.DOTALL)


def test_browser_renders_every_row(page):
    dom = browse(page)
    assert 'data-js="ready"' in dom, "the inline script did not finish"
    rows = body_rows(dom)
    assert len(rows) == 18
    assert 'data-rendered="18"' in dom
    assert "showing 18 of 18 matching checks (18 in all)" in dom
    groups = re.findall(r'<tr class="grp([^"]*)"><th colspan="5" scope="colgroup">([^<]*)</th>', dom)
    # failures first (identity, microbatch, schedules, stage), then the divergent rows without one, by area
    assert groups[:4] == [(" fail", f"failures · {a}") for a in ("identity", "microbatch", "schedules", "stage")]
    assert [g for g in groups if g[0] == " div"] == [(" div", "divergent · backward"),
                                                     (" div", "divergent · schedules")]


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
                      re.DOTALL)
    assert match, "the message row did not open"
    assert "NCCL error: unhandled system error" in match.group(1)


def test_unknown_properties_are_shown_in_the_env_tooltip():
    env = m.EnvResult("cpu", "x.xml", properties={"torch_version": "2.13.0", "platform": "Linux-6.8-x86_64",
                                                 "torch_pinned": "2.13.0"}, cases=[m.Cell("test_x", "t", m.PASSED)])
    title = embedded(html.render_html(build_matrix([env])))["envTitles"][0]
    assert title.splitlines() == ["torch: 2.13.0", "platform: Linux-6.8-x86_64", "torch_pinned: 2.13.0",
                                  "file: x.xml (0.0 s of checks)"]


def browse_probe(page: Path, fragment: str, probe: str, *, size: str = "1200,900") -> dict:
    """Open a copy of `page` with `probe` (a JS function body returning JSON-able data) run after the page's own
    script, in a window of `size` pixels; return what it returned."""
    text = page.read_text(encoding="utf-8")
    script = ("<script>(function(){var out;try{out=(function(){" + probe + "})();}catch(e){out={error:String(e)};}"
              "document.documentElement.setAttribute('data-probe',JSON.stringify(out));})();</script>")
    probed = page.with_name(page.stem + "-probe.html")
    probed.write_text(text.replace("</body></html>", script + "</body></html>"), encoding="utf-8")
    dom = browse(probed, fragment, size=size)
    match = re.search(r'data-probe="([^"]*)"', dom)
    assert match, "the probe did not run"
    return json.loads(unescape(match.group(1)))


def env(name: str, outcomes: dict[str, str]) -> m.EnvResult:
    """An env whose checks `test_<area>::<check>` have the given outcomes (failures carry a message)."""
    cases = [m.Cell(f"test_{key.split('::')[0]}", key.split("::")[1], outcome, 0.5,
                    "boom" if outcome == m.FAILED else "") for key, outcome in outcomes.items()]
    return m.EnvResult(name, f"{name}.xml", cases=cases)


def write_page(folder: Path, matrix: m.Matrix, name: str = "compatibility.html") -> Path:
    path = folder / name
    path.write_text(html.render_html(matrix), encoding="utf-8")
    return path


# Two envs that agree (an unavailable cell aside) and a third that differs on two checks.
AGREE = {"split::a": m.PASSED, "split::b": m.PASSED, "stage::c": m.FAILED, "stage::d": m.SKIPPED,
         "backward::e": m.UNAVAILABLE}
AGREE_TOO = {**AGREE, "backward::e": m.PASSED}
DIFFERS = {**AGREE, "split::b": m.FAILED, "stage::d": m.PASSED}
ROWS_JS = ("return {rows: Array.from(document.querySelectorAll('#matrix tbody tr[data-r]')).map(function (tr) {"
           "return tr.querySelector('.id').title; }), groups: Array.from(document.querySelectorAll("
           "'#matrix tr.grp th')).map(function (th) { return th.textContent; }), ndiv: "
           "(document.getElementById('ndiv') || {}).textContent, heads: Array.from(document.querySelectorAll("
           "'#matrix thead th span.env')).map(function (s) { return s.textContent; }), counts: Array.from("
           "document.querySelectorAll('#filters .n')).map(function (n) { return n.textContent; }), hash: "
           "location.hash, ready: document.documentElement.getAttribute('data-js')};")


@pytest.fixture(scope="module")
def agree_page(tmp_path_factory):
    matrix = build_matrix([env("a", AGREE), env("b", AGREE_TOO), env("c", DIFFERS)])
    assert matrix.divergent == 2  # over all three envs: split::b and stage::d
    return write_page(tmp_path_factory.mktemp("agree"), matrix)


def test_browser_two_envs_that_agree_have_no_divergent_row(agree_page):
    shown = browse_probe(agree_page, "#envs=a,b&div=1", ROWS_JS)
    assert shown["ready"] == "ready"
    assert shown["heads"] == ["a", "b"]
    assert shown["rows"] == []
    assert shown["ndiv"] == "0"
    everything = browse_probe(agree_page, "#envs=a,b", ROWS_JS)
    assert len(everything["rows"]) == 5
    assert not any(g.startswith("divergent") for g in everything["groups"]), everything["groups"]
    # The outcome counts in the filter legend are those of the two envs: 5 passed, 2 failed, 2 skipped, 1 U.
    assert everything["counts"][:3] == ["5", "2", "0"]
    assert everything["counts"][6:8] == ["2", "1"]


def test_browser_divergence_and_order_follow_the_envs_shown(agree_page):
    full = browse_probe(agree_page, "", ROWS_JS)
    assert full["ndiv"] == "2"
    # Rows with a failure in a shown env first (divergent ones first among them), then the other divergent rows.
    assert full["rows"][:3] == ["test_split::b", "test_stage::c", "test_stage::d"]
    assert full["groups"][:3] == ["failures · split", "failures · stage", "divergent · stage"]
    # Without c, the rows it made divergent go back to their area, in first-seen order; failures still first.
    view = browse_probe(agree_page, "#envs=a,b", ROWS_JS)
    assert view["rows"] == ["test_stage::c", "test_backward::e", "test_split::a", "test_split::b", "test_stage::d"]
    # b passed backward::e where c had no device: unavailable alone is no divergence, in a view as in the matrix.
    pair = browse_probe(agree_page, "#envs=b,c&div=1", ROWS_JS)
    assert pair["rows"] == ["test_split::b", "test_stage::d"]
    assert pair["ndiv"] == "2"


def test_browser_hash_keeps_the_selection(agree_page):
    probe = ("var form = document.getElementById('filters');"
             "form.querySelector('input[name=env][value=\\'2\\']').checked = false;"
             "form.dispatchEvent(new Event('input'));"
             "form.divergent.checked = true; form.dispatchEvent(new Event('input'));" + ROWS_JS)
    after = browse_probe(agree_page, "", probe)
    assert after["hash"] == "#div=1&envs=a,b"
    assert after["rows"] == []
    assert after["ndiv"] == "0"


def test_browser_survives_a_bad_percent_escape_in_the_link(agree_page):
    shown = browse_probe(agree_page, "#q=%E0%A4%A&area=%zz&envs=a,b%", ROWS_JS)
    assert shown["ready"] == "ready", "the page script stopped on the link"
    # The good parts of the link still apply; the broken ones are kept as typed.
    assert shown["heads"] == ["a"]
    assert shown["rows"] == []
    assert browse_probe(agree_page, "#q=b%", ROWS_JS)["rows"] == []  # "b%" matches no id, and nothing throws
    assert browse_probe(agree_page, "#q=%E0%A4%A", ROWS_JS)["ready"] == "ready"


def test_browser_a_100kb_check_id_keeps_the_cells_on_screen(tmp_path):
    huge = "test_split::test_" + "x" * 100_000
    cpu = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_split", huge.split("::")[1], m.FAILED, 0.1, "boom"),
                                               m.Cell("test_split", "test_small", m.PASSED)])
    cuda = m.EnvResult("cuda", "cuda.xml", cases=[m.Cell("test_split", huge.split("::")[1], m.PASSED),
                                                  m.Cell("test_split", "test_small", m.PASSED)])
    page = write_page(tmp_path, build_matrix([cpu, cuda]))
    probe = ("var td = document.querySelector('#matrix .id[title]'), cell = document.querySelector('#matrix td.c');"
             "return {id: td.getBoundingClientRect().width, title: td.title.length, "
             "cell: cell.getBoundingClientRect().right, view: window.innerWidth, "
             "table: document.getElementById('matrix').getBoundingClientRect().width};")
    seen = browse_probe(page, "", probe)
    assert seen["title"] == len(huge), "the tooltip must hold the whole id"
    assert seen["cell"] < seen["view"], f"the first cell is off screen: {seen}"
    assert seen["id"] < 600, seen
    assert seen["table"] < seen["view"], seen
    opened = browse_probe(page, "#open=0:0", "return {table: document.getElementById('matrix')"
                                             ".getBoundingClientRect().width, view: window.innerWidth};")
    assert opened["table"] < opened["view"], f"the opened message widened the table: {opened}"


HEADER_NAMES = ["h100x2/cuda", "h100x4/cuda", "cpu-torch2.11", "cpu-torch2.14", "xpu.nightly-20260105",
                "gaudi3/hpu-torch2.7.1-synapse1.21.0/driver-1.21", "cpu"]
# Each header line as laid out: the characters of the name grouped by the top of their box.
LINES_JS = """
return Array.from(document.querySelectorAll('#matrix thead th:not(.id)')).map(function (th) {
  var lines = [], top = null, range = document.createRange();
  var walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT, {acceptNode: function (node) {
    return node.parentNode.closest('small, button') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT; }});
  for (var node = walker.nextNode(); node; node = walker.nextNode()) {
    for (var i = 0; i < node.length; i++) {
      range.setStart(node, i); range.setEnd(node, i + 1);
      var t = Math.round(range.getBoundingClientRect().top);
      if (top === null || t > top + 2) { lines.push(""); top = t; }
      lines[lines.length - 1] += node.data.charAt(i);
    }
  }
  return {lines: lines, title: th.title.split('\\n')[0]};
});"""


def test_browser_env_headers_wrap_at_boundaries_with_a_tooltip(tmp_path):
    envs = [env(name, {"split::a": m.PASSED, "split::b": m.FAILED if i % 2 else m.PASSED})
            for i, name in enumerate(HEADER_NAMES)]
    page = write_page(tmp_path, build_matrix(envs))
    heads = browse_probe(page, "", LINES_JS)
    by_name = {name: h["lines"] for name, h in zip(sorted(HEADER_NAMES), heads, strict=True)}  # columns in name order
    assert by_name["h100x2/cuda"] == ["h100x2/", "cuda"], by_name
    assert by_name["cpu-torch2.11"] in (["cpu-torch2.11"], ["cpu-", "torch2.11"]), by_name
    for name, lines in by_name.items():
        for line, rest in itertools.pairwise(lines):
            assert line[-1] in "/-.…", f"{name!r} breaks mid-word: {lines}"
            assert not (line[-1] == "." and rest[0].isdigit()), f"{name!r} breaks inside a version: {lines}"
    assert [h["title"] for h in heads] == sorted(HEADER_NAMES), "every header's tooltip starts with its full name"
    long = by_name[HEADER_NAMES[5]]
    assert "…" in "".join(long), "a long name is shortened; the tooltip has it whole"
    assert len("".join(long)) <= 40
    shot = screenshot(page, tmp_path / "headers.png")
    assert shot.stat().st_size > 5_000


def screenshot(page: Path, out: Path, size: str = "1200,700") -> Path:
    """A PNG of the page as Chromium draws it (kept beside the test's files, for a look when the test fails)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={out}",
                               page.as_uri()], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.exists(), proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return out


def sparse_matrix(envs: int, per_env: int) -> m.Matrix:
    """One file per test class, as Maven Surefire writes them: each env has its own checks, plus one shared."""
    results = []
    for e in range(envs):
        cases = [m.Cell(f"test_area{e % 5}", f"test_{e}_{k}", m.FAILED if k == 0 else m.PASSED, 0.25, "boom")
                 for k in range(per_env)]
        cases.append(m.Cell("test_identity", "test_build_identity", m.PASSED, 0.5))
        results.append(m.EnvResult(f"env{e:04d}", f"env{e:04d}.xml", cases=cases))
    return build_matrix(results)


def test_html_embeds_data_in_proportion_to_the_cells():
    matrix = sparse_matrix(400, 5)
    cells = 400 * 6
    text = html.render_html(matrix)
    data = embedded(text)
    assert len(data["rows"]) == 2001
    # A dense embedding is one letter and one time slot per env per row: 2001 x 400 = 800k of each.
    size = len(text.encode("utf-8"))
    assert size < 150 * cells + 200_000, f"{size:,} bytes for {cells:,} cells"
    shared = next(r for r in data["rows"] if r[0] == "test_identity::test_build_identity")
    assert shared[2] == "P" * 400
    assert len(shared) == 3
    one = next(r for r in data["rows"] if r[0] == "test_area3::test_3_0")
    assert one[2:] == ["F", [3]]
    assert data["times"][data["rows"].index(one)] == "0.25"
    assert data["msgs"][f"{data['rows'].index(one)}:3"] == "boom"


def test_browser_pages_env_columns(tmp_path):
    page = write_page(tmp_path, sparse_matrix(120, 2))
    probe = ROWS_JS.replace("return {", "return {pager: document.getElementById('colinfo').textContent, "
                                        "cells: document.querySelectorAll('#matrix tbody tr[data-r]')[0]"
                                        ".querySelectorAll('td.c').length, ")
    first = browse_probe(page, "", probe)
    assert first["heads"][:2] == ["env0000", "env0001"]
    assert len(first["heads"]) == 50
    assert first["pager"] == "envs 1\u201350 of 120"
    assert first["cells"] == 50
    third = browse_probe(page, "#cp=3&q=test_101_", probe)
    assert third["heads"][0] == "env0100"
    assert len(third["heads"]) == 20
    assert third["pager"] == "envs 101\u2013120 of 120"
    assert third["rows"] == ["test_area1::test_101_0", "test_area1::test_101_1"]
    assert third["ndiv"] == "240"  # every per-class check is missing from 119 envs: divergent
