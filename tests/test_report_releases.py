"""Tests of the release delta and the device-vs-version view: synthetic version-axis runs through the whole report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conformance.report import model as m
from conformance.report import releases
from conformance.report.engine import Options, run_report
from conformance.report.junit_in import parse_bytes
from conformance.report.matrix import build_matrix

P, F, X, XP, U, GONE = "passed", "failed", "xfail", "xpass", "unavailable", None
_RESULT = {
    F: '<failure message="{msg}">Traceback\n{msg}</failure>',
    X: '<skipped type="pytest.xfail" message="expectations/all.txt:3: known bug: https://example.org/1"/>',
    XP: '<failure message="[XPASS(strict)] expectations/all.txt:3: known bug"/>',
    U: '<skipped message="unavailable: cpu device absent"/>',
    P: "",
}


def junit(env: str, torch: str, cases: dict[str, str | list[str] | None], device: str = "cpu",
          source: str = "pinned", classname: str = "test_sched") -> bytes:
    """One env's JUnit file; a list of outcomes writes the id once per run (reruns), None leaves it out."""
    props = {"env": env, "device": device, "device_count": "1", "torch_version": torch, "torch_source": source}
    head = "".join(f'<property name="{k}" value="{v}"/>' for k, v in props.items())
    body = []
    for name, outcome in cases.items():
        for run in ([outcome] if isinstance(outcome, str) else outcome or []):
            msg = f"RuntimeError: {name} broke at 0x{len(env) * 97:x}"
            body.append(f'<testcase classname="{classname}" name="{name}">{_RESULT[run].format(msg=msg)}</testcase>')
    return (f'<testsuites><testsuite name="pytest"><properties>{head}</properties>{"".join(body)}'
            "</testsuite></testsuites>").encode()


# One axis, three releases: a check that starts failing in 2.14, one fixed in 2.15 (strict XPASS of its xfail
# entry), one flaky in 2.14 (failed then passed), one flaky then failing, new and removed checks, one unchanged, one
# whose device was absent in 2.14 (no information, no change).
AXIS: dict[str, tuple[str, dict[str, str | list[str] | None]]] = {
    "cpu-torch2.13": ("2.13.0+cpu", {"starts": P, "fixed": X, "flaky": P, "flaky_then": P, "same": P, "new": GONE,
                                     "removed": P, "absent": P}),
    "cpu-torch2.14": ("2.14.1+cpu", {"starts": F, "fixed": X, "flaky": [F, P], "flaky_then": [P, F], "same": P,
                                     "new": GONE, "removed": GONE, "absent": U}),
    "cpu-torch2.15": ("2.15.0+cpu", {"starts": F, "fixed": XP, "flaky": P, "flaky_then": F, "same": P, "new": P,
                                     "removed": GONE, "absent": P}),
}


def write_axis(folder: Path, axis: dict[str, tuple[str, dict[str, str | list[str] | None]]] = AXIS) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for env, (torch, cases) in axis.items():
        path = folder / f"{env}.xml"
        path.write_bytes(junit(env, torch, cases))
        paths.append(str(path))
    return paths


def matrix_of(files: dict[str, bytes]) -> m.Matrix:
    envs = []
    for name, data in files.items():
        envs += parse_bytes(data, f"{name}.xml", name).envs
    matrix = build_matrix(envs)
    releases.attach(matrix)
    return matrix


@pytest.fixture
def report(tmp_path):
    inputs = write_axis(tmp_path / "in")
    code = run_report(Options(inputs=inputs, output_dir=str(tmp_path / "out"), formats=["md", "html", "json"],
                              generator="conformance test"))
    out = tmp_path / "out"
    return code, json.loads((out / "compatibility.json").read_text()), (out / "compatibility.md").read_text(), \
        (out / "compatibility.html").read_text()


def test_json_lists_each_changed_check_with_its_first_release(report):
    code, data, _md, _html = report
    assert code == 1  # 2.15 fails a check: the report still fails on it
    assert data["format"] == 3
    (axis,) = data["releases"]["axes"]
    assert (axis["device"], [r["release"] for r in axis["releases"]]) == ("cpu", ["2.13", "2.14", "2.15"])
    got = {c["id"].split("::")[1]: (c["status"], c["first_changed"]) for c in axis["checks"]}
    assert got == {"starts": ("newly_failing", "2.14"), "fixed": ("fixed", "2.15"), "flaky": ("flaky", None),
                   "flaky_then": ("newly_failing", None), "new": ("new", "2.15"), "removed": ("removed", "2.14")}
    by_id = {c["id"].split("::")[1]: c for c in axis["checks"]}
    assert by_id["flaky"]["outcomes"] == {"2.13": "passed", "2.14": "flaky", "2.15": "passed"}
    assert by_id["flaky"]["runs"] == {"2.14": ["failed", "passed"]}
    assert by_id["flaky_then"]["uncertain"].startswith("flaky at 2.14")
    assert by_id["starts"]["type"] == "RuntimeError"
    assert by_id["starts"]["first_line"].startswith("RuntimeError: starts broke at")
    assert "repro" not in by_id["starts"]  # test_sched::starts is no check `conformance repro` covers
    assert "repro" not in by_id["fixed"]
    assert axis["counts"] == {"newly_failing": 2, "fixed": 1, "still_present": 0, "flaky": 1, "new": 1,
                              "removed": 1, "other": 0}
    assert data["releases"]["mixed"] is None  # one device: no device-vs-version question


def test_markdown_delta_is_a_tracking_issue_section(report):
    _code, _data, md, _html = report
    assert "### Release delta: cpu: torch 2.13 -\\> 2.14 -\\> 2.15" in md
    assert "**[Release/2.15] cpu: 2 newly failing, 1 fixed upstream, 1 flaky, 1 new checks, 1 removed checks " \
           "compared with 2.13**" in md
    assert "| ❌ newly failing | 2 |" in md
    assert "| `test_sched::starts` | ✅ | ❌ | ❌ | 2.14 |" in md
    assert "| `test_sched::flaky` | ✅ | 🎲 flaky | ✅ | ? (flaky at 2.14" in md
    assert "| `test_sched::flaky_then` | ✅ | 🎲 flaky | ❌ | ? (flaky at 2.14" in md
    assert "| `test_sched::fixed` | 🔸 | 🔸 | ⚠️ | 2.15 |" in md
    assert "conformance repro" not in md  # no newly failing check here is one repro covers
    assert "`same`" not in md and "test_sched::same" not in md.split("### Release delta")[1].split("### ")[0]
    # Grouped by failure type and first error line: the two newly failing checks have different messages.
    assert "| `RuntimeError` | `RuntimeError: starts broke at" in md


def test_html_delta_sections(report):
    _code, _data, _md, html = report
    section = html.split('<h2 id="releases-cpu-1">')[1].split('<h2 id="matrix-title">')[0]
    assert section.startswith("Release delta: cpu: torch 2.13 -&gt; 2.14 -&gt; 2.15</h2>")
    assert "[Release/2.15] 2 newly failing" in section
    assert '<h3 class="regress">Newly failing (2)</h3>' in section
    assert ('<tr><td><code>test_sched::starts</code></td><td class="o-P">P passed</td><td class="o-F">F failed</td>'
            '<td class="o-F">F failed</td><td>2.14</td></tr>') in section
    assert '<td class="o-R" title="runs of this release disagree">flaky</td>' in section
    assert "<code>test_sched::same</code>" not in section and "<code>test_sched::absent</code>" not in section
    assert '<pre class="repro">' not in section  # no newly failing check here is one repro covers


def test_newly_failing_checks_repro_covers_list_its_quoted_command(tmp_path):
    """The delta lists `conformance repro '<id>' --device D` (quoted: ids hold brackets) for a newly failing check
    repro covers, and nothing for one it does not cover."""
    cid = "test_schedule_eval[ScheduleGPipe-world1]"
    paths = []
    for env, torch, outcome in (("cpu-torch2.13", "2.13.0+cpu", P), ("cpu-torch2.14", "2.14.1+cpu", F)):
        path = tmp_path / f"{env}.xml"
        path.write_bytes(junit(env, torch, {cid: outcome, "test_split_backward_helpers[nope-fp32]": outcome},
                               classname="test_schedules"))
        paths.append(str(path))
    run_report(Options(inputs=paths, output_dir=str(tmp_path / "out"), formats=["md", "json"], generator="t"))
    (axis,) = json.loads((tmp_path / "out" / "compatibility.json").read_text())["releases"]["axes"]
    repro = {c["id"]: c.get("repro") for c in axis["checks"]}
    want = f"conformance repro 'test_schedules.py::{cid}' --device cpu"
    assert repro == {f"test_schedules::{cid}": want, "test_schedules::test_split_backward_helpers[nope-fp32]": None}
    assert want in (tmp_path / "out" / "compatibility.md").read_text()


def test_same_everywhere_and_device_absent_are_no_change():
    matrix = matrix_of({env: junit(env, torch, cases) for env, (torch, cases) in AXIS.items()})
    ids = {c.id for c in releases.of(matrix).axes[0].checks}
    assert "test_sched::same" not in ids and "test_sched::absent" not in ids


def test_flaky_release_never_gets_a_first_change():
    # Flaky at the first release, at the change, or after: never a release claimed for the change before it.
    cases: list[tuple[list[str | None], str | None]] = [
        (["flaky", P, F], None), ([P, "flaky", F], None), ([P, F, "flaky"], "2.14"), ([P, P, "flaky"], None)]
    for states, expect in cases:
        assert releases._first_change(["2.13", "2.14", "2.15"], states)[0] == expect, states


def test_same_release_twice_is_read_as_reruns_with_a_warning():
    files = {
        "cpu-torch2.13": junit("cpu-torch2.13", "2.13.0", {"t": P}),
        "run1/cpu": junit("run1/cpu", "2.14.0", {"t": P}),
        "run2/cpu": junit("run2/cpu", "2.14.1", {"t": F}),
    }
    matrix = matrix_of(files)
    (axis,) = releases.of(matrix).axes
    assert [c.label for c in axis.columns] == ["2.13", "2.14"]
    (check,) = axis.checks
    assert (check.status, check.first_changed, check.states) == ("flaky", None, [P, "flaky"])
    (w,) = [w for w in matrix.warnings if w.slug == m.W_RELEASE_TWICE]
    assert "all torch 2.14 on cpu; read as reruns of one release" in w.problem


def test_version_column_whose_name_is_no_release_warns_and_is_left_out():
    files = {
        "cpu-torch2.13": junit("cpu-torch2.13", "2.13.0", {"t": P}),
        "cpu-torchnext": junit("cpu-torchnext", "", {"t": F}),
        "cpu-torch2.x": junit("cpu-torch2.x", "2.15.0", {"t": F}),
    }
    matrix = matrix_of(files)
    warnings = {w.env: w for w in matrix.warnings}
    assert warnings["cpu-torchnext"].slug == m.W_RELEASE_NAME
    assert "'next' is no release" in warnings["cpu-torchnext"].problem
    assert warnings["cpu-torchnext"].problem.endswith("left out of the release delta")
    assert warnings["cpu-torch2.x"].problem.endswith("its release is taken from torch_version 2.15.0")
    (axis,) = releases.of(matrix).axes
    assert [[e.name for e in c.envs] for c in axis.columns] == [["cpu-torch2.13"], ["cpu-torch2.x"]]


def test_name_and_recorded_version_that_disagree_use_the_recorded_one():
    files = {"cpu-torch2.13": junit("cpu-torch2.13", "2.13.0", {"t": P}),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.15.0", {"t": F})}
    matrix = matrix_of(files)
    (w,) = matrix.warnings
    assert (w.slug, w.env) == (m.W_RELEASE_NAME, "cpu-torch2.14")
    assert "named for torch 2.14 but ran torch 2.15.0" in w.problem
    assert releases.of(matrix).axes[0].checks[0].first_changed == "2.15"


def test_column_from_another_device_is_never_a_release_of_this_one():
    # The oldest column, the delta's baseline, ran on cuda although it is named for the cpu axis.
    files = {"cpu-torch2.12": junit("cpu-torch2.12", "2.12.0", {"t": F}, device="cuda"),
             "cpu-torch2.13": junit("cpu-torch2.13", "2.13.0", {"t": P}),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.14.0", {"t": P})}
    matrix = matrix_of(files)
    (w,) = [w for w in matrix.warnings if w.slug == m.W_RELEASE_DEVICE]
    assert "named as a cpu release column but ran on cuda" in w.problem
    (axis,) = releases.of(matrix).axes
    assert axis.labels == ["2.13", "2.14"] and axis.checks == []  # no wrong "fixed in 2.13"


def test_bad_version_columns_reach_the_command_as_warnings_not_tracebacks(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for env, torch, device in (("cpu-torchnext", "", "cpu"), ("cpu-torch2.13", "2.13.0", "cpu"),
                               ("cpu-torch2.14", "2.14.0", "cuda")):
        (folder / f"{env}.xml").write_bytes(junit(env, torch, {"t": P}, device=device))
    code = run_report(Options(inputs=[str(folder / "*.xml")], output_dir=str(tmp_path / "out"),
                              formats=["json"], strict=True))
    err = capsys.readouterr().err
    assert code == 4 and "Traceback" not in err
    assert "warning[release-name]" in err and "warning[release-device]" in err
    data = json.loads((tmp_path / "out" / "compatibility.json").read_text())
    assert data["releases"]["axes"] == []
    assert {w["slug"] for w in data["warnings"]} == {"release-name", "release-device"}


def test_device_vs_version_note_offers_fixed_axis_views(tmp_path):
    files = {"cpu": junit("cpu", "2.13.0", {"a": P, "b": P, "c": P}),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.14.0", {"a": F, "b": P, "c": P}),
             "cuda": junit("cuda", "2.13.0", {"a": P, "b": F, "c": P}, device="cuda", source="host"),
             "xpu": junit("xpu", "2.12.0", {"a": P, "b": P, "c": F}, device="xpu")}
    matrix = matrix_of(files)
    mixed = releases.of(matrix).mixed
    assert mixed is not None
    assert (mixed.by_device, mixed.by_release, mixed.undecided) == (1, 1, 1)  # a: release, b: device, c: both
    assert [(v.kind, v.key, v.envs) for v in mixed.views] == [
        ("same_release", "2.13", ["cpu", "cuda"]), ("same_device", "cpu", ["cpu", "cpu-torch2.14"])]
    assert "differ in torch release (2.12, 2.13, 2.14) and build variant (host, pinned)" in mixed.text()
    from conformance.report.html import render_html
    from conformance.report.markdown import render_markdown

    html = render_html(matrix)
    assert '<a class="axis-view" href="#div=1&amp;envs=cpu,cuda">same torch 2.13, different device</a>' in html
    assert '<a class="axis-view" href="#div=1&amp;envs=cpu,cpu-torch2.14">same device cpu, different torch</a>' in html
    md = render_markdown(matrix)
    assert "> - same device cpu, different torch: `--envs cpu,cpu-torch2.14`" in md
    assert md.index("**Device vs version:**") < md.index("### Divergent checks")


def test_one_release_per_device_is_no_axis_and_no_note():
    files = {"cpu": junit("cpu", "2.13.0", {"a": P}), "cuda": junit("cuda", "2.13.0", {"a": F}, device="cuda")}
    report = releases.of(matrix_of(files))
    assert report.axes == [] and report.mixed is None and report.warnings == []


def test_fixed_axis_link_changes_the_view_in_a_real_browser(tmp_path):
    # The note's links only change the address hash; the page must follow it (Chromium, driven by Playwright).
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    sync_api = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        if os.environ.get("CONFORMANCE_REQUIRE_E2E") == "1":  # set by .ci/run: CI must not pass by skipping
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    files = {"cpu": junit("cpu", "2.13.0", {"a": P, "b": P, "c": P}),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.14.0", {"a": F, "b": P, "c": P}),
             "cuda": junit("cuda", "2.13.0", {"a": P, "b": F, "c": P}, device="cuda", source="host"),
             "xpu": junit("xpu", "2.12.0", {"a": P, "b": P, "c": F}, device="xpu")}
    from conformance.report.html import render_html

    page_file = tmp_path / "compatibility.html"
    page_file.write_text(render_html(matrix_of(files)), encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_selector("html[data-js=ready]")
            page.click("a.axis-view >> text=same device cpu, different torch")
            page.wait_for_function("location.hash.indexOf('envs=cpu,cpu-torch2.14') >= 0")
            page.wait_for_function("document.querySelectorAll('#matrix tbody tr[data-r]').length === 1")
            shown = page.eval_on_selector_all("input[name=env]:checked", "bs => bs.map(b => b.parentNode.textContent)")
            rows = page.eval_on_selector_all("#matrix tbody tr[data-r]", "rs => rs.map(r => r.textContent)")
        finally:
            browser.close()
    assert [s.strip() for s in shown] == ["cpu", "cpu-torch2.14"]
    assert rows == ["aPF"]  # check `a`: passed on 2.13, failed on 2.14; b and c differ only across devices


def test_markdown_groups_are_capped_and_counted():
    names = [f"t_{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(30)]  # letters: digits do not split groups
    many = {name: P for name in names}
    broken = {name: F for name in names}
    files = {"cpu-torch2.13": junit("cpu-torch2.13", "2.13.0", many),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.14.0", broken)}
    from conformance.report.markdown import render_markdown

    md = render_markdown(matrix_of(files))
    # Each check failed with its own message (digits do not split a group, names do): 30 groups, 15 shown.
    assert "| … | 15 more groups | 15 | |" in md


def test_console_lists_the_delta_and_the_newly_failing():
    from conformance.report.console import summary_lines

    matrix = matrix_of({env: junit(env, torch, cases) for env, (torch, cases) in AXIS.items()})
    lines = summary_lines(matrix)
    assert "release delta cpu: torch 2.13 -> 2.14 -> 2.15: 2 newly failing, 1 fixed upstream, 1 flaky, 1 new " \
           "checks, 1 removed checks" in lines
    assert any(line.startswith("  newly failing since 2.14: test_sched::starts: RuntimeError: starts broke at")
               for line in lines)
    assert any(line.startswith("  newly failing since ? (flaky at 2.14") for line in lines)


def test_two_models_of_one_device_are_two_axes_not_reruns():
    h100, h200 = "NVIDIA H100 80GB HBM3", "NVIDIA H200"

    def gpu(env: str, torch: str, names: str, outcome: str) -> bytes:
        return junit(env, torch, {"t": outcome}, device="cuda").replace(
            b'<property name="env"', f'<property name="device_names" value="{names}"/><property name="env"'.encode())

    files = {"h100/cuda": gpu("h100/cuda", "2.11.0", h100, P), "h200/cuda": gpu("h200/cuda", "2.11.0", h200, F),
             "h100/cuda-torch2.12": gpu("h100/cuda-torch2.12", "2.12.0", h100, F),
             "h200/cuda-torch2.12": gpu("h200/cuda-torch2.12", "2.12.0", h200, F)}
    matrix = matrix_of(files)
    assert [w.slug for w in matrix.warnings] == []  # no "same release twice": H100 and H200 are two axes
    axes = releases.of(matrix).axes
    assert [(a.title, [c.status for c in a.checks]) for a in axes] == [
        (f"cuda ({h100}): torch 2.11 -> 2.12", ["newly_failing"]), (f"cuda ({h200}): torch 2.11 -> 2.12", [])]


def test_a_check_an_older_suite_lacked_is_dated_by_its_change_not_by_its_appearance():
    # cpu-torch2.11 ran an older suite without the check; 2.13 xfails it, 2.14 passes: fixed in 2.14, not "changed
    # in 2.13" (where it merely appeared).
    files = {"cpu-torch2.11": junit("cpu-torch2.11", "2.11.0+cpu", {"late": GONE, "other": P}),
             "cpu-torch2.13": junit("cpu-torch2.13", "2.13.0+cpu", {"late": X, "other": P}),
             "cpu-torch2.14": junit("cpu-torch2.14", "2.14.1+cpu", {"late": P, "other": P})}
    (axis,) = releases.of(matrix_of(files)).axes
    (late,) = [c for c in axis.checks if c.id.endswith("late")]
    assert (late.status, late.first_changed) == (releases.FIXED, "2.14")
