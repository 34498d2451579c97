"""Tests of the GitHub annotations (`--format github`): gold file, regressions first, GitHub's per-step caps and the
notice's count, escaping, forged workflow commands kept inert, the green case and the command line."""

from __future__ import annotations

import re
import shutil

import pytest

import report_gold
from conformance import errors
from conformance.cli import main
from conformance.report import annotations as ann
from conformance.report import baseline
from conformance.report import model as m
from conformance.report.matrix import build_matrix
from conformance.repro.commandline import repro_command
from report_gold import MATRIX, ROOT, check_gold

DATA = ROOT / "tests" / "data" / "junit"
KINDS = ("error", "warning", "notice")


def fixture_matrix(monkeypatch) -> m.Matrix:
    """The test JUnit runs (a failure, an error, a crash, a strict XPASS, a wrong build, an absent env) against a
    baseline where cuda's stage check passed (a regression) and xpu and hpu ran what they now do not (lost)."""
    matrix = report_gold.fixture_matrix(monkeypatch)
    before = {"cuda": {"test_stage::test_build_stage[world2]": m.PASSED},
              "xpu": {"test_schedules::test_schedule_eval[ScheduleZBVZeroBubble-world2]": m.PASSED},
              "hpu": {row.key: m.PASSED for row in matrix.rows}}
    matrix.baseline = baseline.diff(matrix, before, "baseline/compatibility.json")
    return matrix


def unescape(text: str) -> str:
    """What GitHub's runner makes of an escaped value (actions/runner ActionCommand: `%25` last)."""
    for code, ch in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, ch)
    return text


# A workflow command as the runner reads one output line: `::name props::data`, leading blanks ignored.
COMMAND = re.compile(r"^\s*::([^\s:]+)(?: ([^:]*))?::(.*)$")


def parse(out: str) -> list[tuple[str, dict[str, str], str]]:
    """Every workflow command in `out`, read line by line the way the runner does (CR, LF and the other line ends
    Python knows all split): (name, properties, message), unescaped."""
    found = []
    for line in out.splitlines():
        match = COMMAND.match(line)
        if match:
            name, props, data = match.groups()
            pairs = dict(p.split("=", 1) for p in props.split(",")) if props else {}
            found.append((name, {k: unescape(v) for k, v in pairs.items()}, unescape(data)))
    return found


def test_annotations_gold(monkeypatch):
    check_gold("annotations.txt", ann.render_annotations(fixture_matrix(monkeypatch)))


def test_every_line_is_one_command_errors_then_warnings_then_one_notice(monkeypatch):
    out = ann.render_annotations(fixture_matrix(monkeypatch))
    commands = parse(out)
    assert len(commands) == len(out.splitlines()) == out.count("\n")
    kinds = [name for name, _, _ in commands]
    assert kinds == sorted(kinds, key=KINDS.index) and kinds.count("notice") == 1 and kinds[-1] == "notice"
    assert kinds.count("error") == 5 and kinds.count("warning") == 3
    # the regressions first (hpu's identity check comes before cuda's matrix failures), then the matrix's failed,
    # error, crashed and strict-XPASS cells in matrix order
    assert [props["title"] for name, props, _ in commands if name == "error"] == [
        "cuda: test_stage::test_build_stage[world2]", "hpu: test_identity::test_build_identity",
        "cuda: test_microbatch::test_chunk_spec[bf16]",
        "xpu: test_schedules::test_schedule_matches_reference[ScheduleInterleaved1F1B-world2]",
        "cuda: test_schedules::test_schedule_eval[ScheduleZBVZeroBubble-world2]"]
    first = commands[0][2].split("\n")
    assert first == ["regression against the baseline: passed -> error",
                     'failed on setup with "RuntimeError: NCCL error: unhandled system error"',
                     "error on torch 2.13.0+cu130"]
    warnings = [(props["title"], msg) for name, props, msg in commands if name == "warning"]
    assert warnings[0] == ("xpu: test_schedules::test_schedule_eval[ScheduleZBVZeroBubble-world2]",
                           "lost coverage against the baseline: passed -> not run")
    assert warnings[1][0] == "hpu: 17 checks lost coverage"
    assert warnings[1][1].split("\n")[0] == ("lost coverage against the baseline: 15 passed -> unavailable, "
                                             "1 passed -> missing, 1 passed -> not applicable")
    assert warnings[2] == ("warning[expected-env]: rocm.xml", "env 'rocm' was expected (--expect) but has no "
                                                             "results file")


def test_regressions_come_before_earlier_rows():
    cells = {f"c{i:02d}": m.FAILED for i in range(5)} | {"z": m.ERROR}
    now = build_matrix([m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", k, v) for k, v in cells.items()])])
    assert [r.key for r in now.rows][-1] == "test_x::z"  # the regression's row is the matrix's last
    now.baseline = baseline.diff(now, {"cpu": {"test_x::z": m.PASSED}}, "b")
    titles = [props["title"] for name, props, _ in parse(ann.render_annotations(now)) if name == "error"]
    assert titles == ["cpu: test_x::z", *(f"cpu: test_x::c{i:02d}" for i in range(5))]


def many(n_checks: int, n_warnings: int, lost_envs: int) -> m.Matrix:
    envs = [m.EnvResult("cpu", "cpu.xml", properties={"torch_version": "2.13.0+cpu"},
                        cases=[m.Cell("test_x", f"c{i:02d}", m.FAILED, message=f"boom {i}") for i in range(n_checks)])]
    envs += [m.EnvResult(f"dev{j}", f"dev{j}.xml", cases=[m.Cell("test_x", "c00", m.UNAVAILABLE)])
             for j in range(lost_envs)]
    warnings = [m.InputWarning(f"f{k}.xml", f"problem {k}", slug=m.W_TOTALS) for k in range(n_warnings)]
    matrix = build_matrix(envs, warnings)
    matrix.baseline = baseline.diff(matrix, {f"dev{j}": {"test_x::c00": m.PASSED} for j in range(lost_envs)}, "b")
    return matrix


def test_at_most_ten_of_a_kind_and_the_notice_counts_the_rest():
    matrix = many(25, 13, 3)
    commands = parse(ann.render_annotations(matrix))
    kinds = [name for name, _, _ in commands]
    assert kinds == ["error"] * ann.PER_STEP + ["warning"] * ann.PER_STEP + ["notice"]
    assert [props["title"] for name, props, _ in commands if name == "error"] == [
        f"cpu: {row.key}" for row in matrix.rows[:10]]  # the first ten in matrix order
    warned = [props["title"] for name, props, _ in commands if name == "warning"]
    assert warned[:3] == ["dev0: test_x::c00", "dev1: test_x::c00", "dev2: test_x::c00"]  # lost coverage first
    assert warned[3:] == [f"warning[totals]: f{k}.xml" for k in range(7)]
    notice = commands[-1][2]
    assert "left out of these annotations: 15 errors and 6 warnings (GitHub shows 10 errors and 10 warnings per " \
           "step)" in notice
    assert "25 failed cells (failed, error, crashed or strict xpass)" in notice
    assert "the job summary and the compatibility-report artifact" in notice


def test_under_the_caps_nothing_is_left_out():
    commands = parse(ann.render_annotations(many(10, 9, 1)))
    assert [name for name, _, _ in commands].count("error") == 10
    assert [name for name, _, _ in commands].count("warning") == 10
    assert "nothing left out of these annotations" in commands[-1][2]


def test_lost_coverage_of_one_env_is_one_warning_naming_the_first_checks():
    cases = [m.Cell("test_x", f"c{i}", m.UNAVAILABLE) for i in range(8)]
    now = build_matrix([m.EnvResult("cuda", "cuda.xml", cases=cases)])
    now.baseline = baseline.diff(now, {"cuda": {f"test_x::c{i}": m.PASSED if i else m.XFAIL for i in range(8)}}, "b")
    now.baseline.lost_allowed = True
    [(_, props, message)] = [c for c in parse(ann.render_annotations(now)) if c[0] == "warning"]
    assert props["title"] == "cuda: 8 checks lost coverage"
    assert message.split("\n") == [
        "lost coverage against the baseline (allowed by --allow-lost-coverage): 1 xfail -> unavailable, "
        "7 passed -> unavailable",
        "test_x::c0: xfail -> unavailable", *(f"test_x::c{i}: passed -> unavailable" for i in range(1, 5)),
        "... and 3 more in the job summary and the compatibility-report artifact"]


@pytest.mark.parametrize(("text", "data", "prop"), [
    ("50% done\r\nnext", "50%25 done%0D%0Anext", "50%25 done%0D%0Anext"),
    ("a: b, c", "a: b, c", "a%3A b%2C c"),
    ("%0A stays text", "%250A stays text", "%250A stays text"),
    ("::error::x", "::error::x", "%3A%3Aerror%3A%3Ax"),
])
def test_escaping_follows_githubs_rules(text, data, prop):
    assert ann.escape_data(text) == data
    assert ann.escape_property(text) == prop
    assert unescape(prop) == text


HOSTILE_ID = "test_x::evil\n::stop-commands::tok\r::error file=a.py,line=1::forged ##[error]x ##vso[task.complete]"


def hostile_matrix() -> m.Matrix:
    reason = "boom\n::error::forged\n::stop-commands::tok"
    cells = [m.Cell("test_x", HOSTILE_ID.partition("::")[2], m.FAILED, message=reason),
             m.Cell("test_x", "lead", m.CRASHED, message="\n  ::stop-commands::tok \u2028::error::x \x1b[31m 100%0A"),
             m.Cell("test_x", "sep,a:b\x85::error::nel", m.ERROR, message="e\x00::error::nul")]
    env = m.EnvResult("cpu\n::warning::x", "x.xml", properties={"torch_version": "2.13\r::notice::v"}, cases=cells)
    warnings = [m.InputWarning("::notice::f.xml", "bad\n::error::x", slug=m.W_MALFORMED)]
    return build_matrix([env], warnings, expect=["::group::x"])


def test_forged_commands_in_ids_reasons_and_names_stay_inert():
    out = ann.render_annotations(hostile_matrix())
    lines = out.split("\n")[:-1]
    assert len(out.splitlines()) == len(lines) == 6  # 3 errors, 2 warnings (malformed, expected-env), the notice
    commands = parse(out)
    assert [name for name, _, _ in commands] == ["error"] * 3 + ["warning"] * 2 + ["notice"]
    for line in lines:
        assert re.fullmatch(r"::(error|warning|notice) title=[^:,]*::.*", line), line
        assert "##[" not in line and "##vso[" not in line and "\x1b" not in line and "\x85" not in line, line
    titles = [props["title"] for _, props, _ in commands]
    assert titles[0] == "cpu\\n::warning::x: " + HOSTILE_ID.replace("\n", "\\n").replace("\r", "\\r").replace(
        "##", "\\x23#")  # the whole id, shown, on one line
    messages = [msg for _, _, msg in commands]
    assert messages[0].split("\n") == ["boom", "failed on torch 2.13\\r::notice::v"]
    assert messages[1].split("\n")[0] == "\\x3a:stop-commands::tok ::error::x \\x1b[31m 100%0A"
    assert titles[2] == "cpu\\n::warning::x: test_x::sep,a:b\\x85::error::nel"  # `,` and `:` kept, NEL shown
    assert messages[2].split("\n")[0] == "e\\x00::error::nul"
    assert titles[3] == "warning[malformed]: ::notice::f.xml" and messages[3] == "bad\\n::error::x"
    # a runner that took commands at any line start still finds only ours
    assert all(line.startswith(f"::{name} title=") for line, (name, _, _) in zip(lines, commands, strict=True))


def test_a_green_matrix_prints_only_the_notice():
    env = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", "a", m.PASSED), m.Cell("test_x", "b", m.XFAIL),
                                               m.Cell("test_x", "c", m.SKIPPED)])
    out = ann.render_annotations(build_matrix([env]))
    [(name, props, message)] = parse(out)
    assert out.count("\n") == 1 and name == "notice" and props == {"title": "conformance report"}
    assert message.split("\n") == ["3 checks x 1 env: 0 divergent, no failures",
                                   "0 failed cells (failed, error, crashed or strict xpass)",
                                   "nothing left out of these annotations",
                                   "every cell and message: the job summary and the compatibility-report artifact"]


@pytest.mark.parametrize(("outcome", "shown"), [(m.FAILED, True), (m.CRASHED, True), (m.XPASS, False)])
def test_the_repro_line_is_the_one_the_html_shows(outcome, shown):
    name = "test_schedule_eval[ScheduleInterleaved1F1B-world1]"
    env = m.EnvResult("h100/cuda", "cuda.xml", properties={"device": "cuda", "torch_version": "2.11.0+cu130"},
                      cases=[m.Cell("test_schedules", name, outcome, message="AssertionError: x\nmore")])
    [(_, props, message), _] = parse(ann.render_annotations(build_matrix([env])))
    assert props["title"] == f"h100/cuda: test_schedules::{name}"
    expected = repro_command(f"test_schedules::{name}", "cuda")
    assert expected == f"conformance repro 'test_schedules.py::{name}' --device cuda"
    lines = message.split("\n")
    assert lines[:2] == ["AssertionError: x", f"{m.LABEL[outcome]} on torch 2.11.0+cu130"]
    assert (f"reproduce: {expected}" in lines) is shown


def test_a_check_repro_does_not_cover_gets_no_repro_line_and_a_cell_without_build_says_so():
    env = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", "a", m.FAILED)])
    [(_, _, message), _] = parse(ann.render_annotations(build_matrix([env])))
    assert message.split("\n") == ["failed, no message", "failed (the env recorded no torch version)"]


def test_a_repeated_id_names_its_runs():
    runs = [m.Cell("test_x", "a", m.FAILED, message="boom"), m.Cell("test_x", "a", m.PASSED)]
    commands = parse(ann.render_annotations(build_matrix([m.EnvResult("cpu", "cpu.xml", cases=runs)])))
    assert [name for name, _, _ in commands] == ["error", "warning", "notice"]  # the warning: duplicate
    (_, props, message), (_, warned, _), _ = commands
    assert props["title"] == "cpu: test_x::a" and warned["title"] == "warning[duplicate]: cpu.xml"
    assert message.split("\n") == ["boom", "failed (runs: failed then passed) (the env recorded no torch version)"]


def test_long_titles_are_cut_in_the_middle():
    name = "test_y[" + "p" * 5000 + "-end]"
    env = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", name, m.FAILED, message="x" * 5000)])
    [(_, props, message), _] = parse(ann.render_annotations(build_matrix([env])))
    assert len(props["title"]) == ann.TITLE_CHARS and props["title"].startswith("cpu: test_x::test_y[ppp")
    assert props["title"].endswith("p-end]") and "…" in props["title"]
    assert len(message.split("\n")[0]) <= ann.LINE_CHARS


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    for path in MATRIX:
        shutil.copy(path, folder / path.name)
    return folder


def test_cli_prints_the_annotations_on_stdout_and_the_summary_on_stderr(reports, capsys):
    assert main(["report", "--format", "github", "--output-dir", "-", "--expect", "cpu,rocm"]) == errors.FAILED
    out, err = capsys.readouterr()
    commands = parse(out)
    assert len(commands) == len(out.splitlines()) == 7  # 5 failed cells, the expected-env warning, the notice
    assert commands[-1][0] == "notice" and "18 checks x 4 envs" in commands[-1][2]
    assert "conformance report: 18 checks x 4 envs" in err and "warning[expected-env]" in err
    assert not list(reports.parent.glob("**/annotations.txt"))


def test_cli_writes_annotations_txt_beside_the_other_formats(reports, capsys):
    assert main(["report", "--format", "md,github", "--output-dir", "out"]) == errors.FAILED
    written = sorted(p.name for p in (reports.parent / "out").iterdir())
    assert written == ["annotations.txt", "compatibility.md"]
    text = (reports.parent / "out" / "annotations.txt").read_text()
    assert [name for name, _, _ in parse(text)] == ["error"] * 5 + ["notice"]
    assert "annotations.txt" in capsys.readouterr().out  # the `wrote ...` line


def test_the_default_formats_do_not_write_annotations(reports, capsys):
    main(["report", "--output-dir", "out"])
    assert not (reports.parent / "out" / "annotations.txt").exists()
    assert (reports.parent / "out" / "compatibility.md").exists()
