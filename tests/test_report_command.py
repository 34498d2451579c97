"""End-to-end tests of `conformance report`: outputs, stdout, warnings, exit codes and their precedence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import errors
from conformance.cli import main

DATA = Path(__file__).parent / "data" / "junit"
ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ["compatibility.html", "compatibility.json", "compatibility.md", "merged.xml"]


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    for path in (DATA / "matrix").glob("*.xml"):
        shutil.copy(path, folder / path.name)
    return folder


def copy_envs(folder: Path, *envs: str) -> None:
    folder.mkdir(exist_ok=True)
    for env in envs:
        shutil.copy(DATA / "matrix" / f"{env}.xml", folder / f"{env}.xml")


def test_default_run_writes_four_outputs_and_exits_failed(reports, capsys):
    code = main(["report"])
    out, err = capsys.readouterr()
    assert code == errors.FAILED  # cuda failed, xpu crashed, hpu identity failed
    assert sorted(p.name for p in reports.iterdir() if not p.name.endswith(".xml") or p.name == "merged.xml") \
        == OUTPUTS
    lines = out.splitlines()
    assert lines[0] == "conformance report: 18 checks x 4 envs: 9 divergent, problems in cuda, hpu, xpu"
    assert any(line.split()[:2] == ["cpu", "ok"] for line in lines)
    assert any(line.split()[:2] == ["cuda", "FAIL"] and "1 failed" in line for line in lines)
    assert err == ""
    # running again must not read its own merged.xml
    assert main(["report"]) == errors.FAILED
    assert json.loads((reports / "compatibility.json").read_text())["checks"] == 18


def test_all_green_exits_ok(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_envs(tmp_path / "reports", "cpu")
    assert main(["report", "--format", "json"]) == errors.OK
    assert [p.name for p in (tmp_path / "reports").iterdir() if p.name != "cpu.xml"] == ["compatibility.json"]


def test_no_input_names_the_glob_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == errors.NO_INPUT
    err = capsys.readouterr().err
    assert "no JUnit files found (searched reports/*.xml); nothing written" in err
    assert not (tmp_path / "reports").exists()


def test_only_unreadable_inputs_is_no_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(DATA / "bad" / "empty.xml"), str(DATA / "bad" / "wrong_root.xml"),
                 "--output-dir", "out"]) == errors.NO_INPUT
    err = capsys.readouterr().err
    assert "empty file" in err and "root element <coverage>" in err
    assert "none of the 2 input files could be read" in err
    assert not (tmp_path / "out").exists()


def test_bad_inputs_warn_merge_the_rest_and_strict_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_envs(tmp_path / "in", "cpu")
    for bad in ("truncated", "malformed", "latin1", "wrong_root", "empty"):
        shutil.copy(DATA / "bad" / f"{bad}.xml", tmp_path / "in" / f"{bad}.xml")
    shutil.copy(DATA / "matrix" / "cpu.xml", tmp_path / "in" / "cpu-again.xml")
    args = ["report", "in", "--output-dir", "out", "--expect", "cpu,cuda,xpu"]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == errors.STRICT  # truncated.xml lost testcases: an incomplete input fails without --strict
    assert "incomplete input: 1 input warning(s) (truncated)" in err
    code = main([*args, "--allow-warnings", "truncated"])
    out, err = capsys.readouterr()
    assert code == errors.FAILED  # latin1.xml holds a failure; the other warnings do not fail without --strict
    for fragment in ("in/cpu.xml: same content as in/cpu-again.xml; duplicate skipped",
                     "in/truncated.xml: incomplete: XML ends early", "in/malformed.xml: malformed XML",
                     "in/latin1.xml: not valid UTF-8", "in/wrong_root.xml: not a JUnit file",
                     "in/empty.xml: empty file", "env 'xpu' was expected (--expect) but has no results file"):
        assert fragment in err, fragment
    assert "Traceback" not in err
    data = json.loads((tmp_path / "out" / "compatibility.json").read_text())
    assert [e["name"] for e in data["envs"]] == ["cpu", "cuda", "latin1", "malformed"]
    assert data["absent_envs"] == ["xpu"]
    assert len(data["warnings"]) == 7
    assert "Input warnings (7)" in (tmp_path / "out" / "compatibility.md").read_text()
    assert main(args + ["--strict"]) == errors.STRICT


def test_usage_errors_have_no_traceback(reports, capsys):
    assert main(["report", "--format", "pdf"]) == errors.USAGE
    assert "unknown --format pdf (choose from xml, html, md, json, github)" in capsys.readouterr().err
    (reports.parent / "afile").write_text("")
    assert main(["report", "--output-dir", "afile"]) == errors.USAGE
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["report", "--baseline", "nope.json"]) == errors.USAGE
    assert "--baseline: nope.json: cannot be read (No such file or directory)" in capsys.readouterr().err


def test_dash_dash_extra_is_ignored(reports):
    assert main(["report", "--format", "md", "--", "-k", "x"]) == errors.FAILED


def test_module_entry_point_runs_in_a_subprocess(reports):
    proc = subprocess.run([sys.executable, "-m", "conformance", "report", "--format", "md"], capture_output=True,
                          text=True, cwd=reports.parent, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == errors.FAILED, proc.stderr
    assert "conformance report: 18 checks x 4 envs" in proc.stdout


def test_output_dir_dash_writes_one_format_to_stdout(reports, capsys):
    assert main(["report", "--format", "md", "--output-dir", "-"]) == errors.FAILED
    out, err = capsys.readouterr()
    assert out.startswith("## Pipeline-parallel conformance across devices\n")
    assert "conformance report: 18 checks x 4 envs" in err  # the summary stays out of the report
    assert not (reports / "compatibility.md").exists() and not (reports.parent / "-").exists()
    assert main(["report", "--output-dir", "-"]) == errors.USAGE
    assert "writes one report to stdout" in capsys.readouterr().err


def test_unwritable_output_dir_is_a_clear_error(reports, capsys):
    # A folder below a regular file cannot be created, even by root (file permissions would not stop root).
    assert main(["report", "--output-dir", "reports/cpu.xml/sub"]) == errors.USAGE
    err = capsys.readouterr().err
    assert "cannot write reports/cpu.xml/sub: Not a directory" in err and "Traceback" not in err


def test_gitlab_limits_note(capsys, monkeypatch):
    from conformance.report import engine

    engine.gitlab_note(100, 10, engine.Streams())
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(engine, "GITLAB_MAX_BYTES", 50)
    engine.gitlab_note(80, 10, engine.Streams())
    assert "GitLab ignores test reports over" in capsys.readouterr().err


PRODUCERS = DATA / "producers"


def test_a_failed_rerun_fails_the_report_like_merged_xml_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["report", str(PRODUCERS / "gotestsum-count2.xml"), "--output-dir", "out"])
    out, err = capsys.readouterr()
    assert code == errors.FAILED
    assert 'failures="1"' in (tmp_path / "out" / "merged.xml").read_text()
    assert "FAIL" in out and "1 failed" in out
    assert "warning[duplicate]: " in err and "every run is kept" in err
    data = json.loads((tmp_path / "out" / "compatibility.json").read_text())
    cell = next(r for r in data["rows"] if r["id"].endswith("::Test1F1B"))["cells"]["gotestsum-count2"]
    assert cell["outcome"] == "failed" and cell["runs"] == ["failed", "passed"]
    assert cell["message"].startswith("flaky: failed then passed")
    assert main(["report", str(PRODUCERS / "gotestsum-count2.xml"), "--output-dir", "out", "--strict",
                 "--allow-warnings", "duplicate"]) == errors.FAILED  # the allowed slug does not trip --strict
    assert main(["report", str(PRODUCERS / "gotestsum-count2.xml"), "--output-dir", "out", "--strict"]) \
        == errors.STRICT


def test_unknown_warning_slug_is_a_usage_error(reports, capsys):
    assert main(["report", "--strict", "--allow-warnings", "dupe"]) == errors.USAGE
    assert "unknown warning slug dupe" in capsys.readouterr().err


def test_every_producer_sample_merges_without_warnings(tmp_path, monkeypatch, capsys, junit_schema):
    monkeypatch.chdir(PRODUCERS)
    out = tmp_path / "out"
    code = main(["report", *sorted(str(p) for p in PRODUCERS.rglob("*.xml")), "--output-dir", str(out),
                 "--strict", "--allow-warnings", "duplicate"])
    err = capsys.readouterr().err
    assert code == errors.FAILED, err  # samples hold failures; no warning other than the repeated ids
    assert [line.split("]")[0] for line in err.splitlines()] == ["warning[duplicate", "warning[duplicate"]
    text = (out / "merged.xml").read_text()
    assert list(junit_schema.iter_errors(text)) == []
    data = json.loads((out / "compatibility.json").read_text())
    surefire = next(e for e in data["envs"] if e["name"] == "producers")  # Surefire files: one env per folder
    assert (surefire["file"], surefire["files"]) == (".", 1)


def test_symlink_loop_is_a_warning_not_a_traceback(reports, capsys):
    os.symlink("loop.xml", reports / "loop.xml")
    assert main(["report", "reports/loop.xml", "reports/cpu.xml", "--output-dir", "out"]) == errors.OK
    err = capsys.readouterr().err
    assert "warning[symlink-loop]: reports/loop.xml: symlink loop" in err and "Traceback" not in err
    assert main(["report", "reports/loop.xml", "--output-dir", "out"]) == errors.NO_INPUT


def test_forged_ci_annotations_in_names_stay_inert(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    evil = "cpu\n::error file=x.py,line=1::forged"
    text = (DATA / "matrix" / "cpu.xml").read_text().replace('name="env" value="cpu"',
                                                            'name="env" value="cpu&#10;::error file=x.py,line=1::'
                                                            'forged"')
    (tmp_path / "cpu.xml").write_text(text)
    (tmp_path / "::warning::x.xml").write_text("")
    main(["report", "cpu.xml", "::warning::x.xml", "--output-dir", "out", "--expect", "##vso[task.complete]"])
    out, err = capsys.readouterr()
    for line in (out + err).splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##vso[" not in line and "\x1b" not in line, line
    assert "cpu\\n::error file=x.py,line=1::forged" in out  # one line, the command no longer at its start
    assert evil not in out


def test_outputs_are_replaced_as_a_set(reports, capsys):
    out = reports.parent / "out"
    out.mkdir()
    for name in OUTPUTS:
        (out / name).write_text("old")
    (out / "merged.xml").unlink()
    (out / "merged.xml").mkdir()  # the last output cannot be replaced
    code = main(["report", "--output-dir", "out"])
    assert code == errors.USAGE
    assert "the previous reports were kept" in capsys.readouterr().err
    assert [(out / n).read_text() for n in OUTPUTS if n != "merged.xml"] == ["old", "old", "old"]
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS  # no temporary file left


def test_a_failing_writer_writes_nothing(reports, capsys, monkeypatch):
    from conformance.report import engine, merge

    def broken(matrix, stream):
        stream.write("<testsuites>")
        raise merge.MergeError("merged totals differ from the inputs: test")

    monkeypatch.setitem(engine.FORMATS, "xml", ("merged.xml", broken))
    assert main(["report", "--output-dir", "out"]) == errors.INTERNAL
    assert "merged totals differ" in capsys.readouterr().err
    assert not (reports.parent / "out").exists() or list((reports.parent / "out").iterdir()) == []


def test_a_10_mb_message_is_cut_in_html_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    big = "A" * 50 + "x" * 10_000_000 + "Z" * 50
    (tmp_path / "big.xml").write_text(f'<testsuite name="s" tests="1" failures="1"><testcase classname="test_a" '
                                      f'name="t"><failure message="{big}">{big}</failure></testcase></testsuite>')
    assert main(["report", "big.xml", "--output-dir", "out"]) == errors.FAILED
    for name in ("compatibility.json", "compatibility.html"):
        text = (tmp_path / "out" / name).read_text()
        assert len(text) < 200_000, name
        assert "characters cut by conformance report" in text
    assert big in (tmp_path / "out" / "merged.xml").read_text()  # the merged JUnit keeps the input's text
