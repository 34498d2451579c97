"""End-to-end tests of `conformance report`: outputs, stdout, warnings, exit codes and their precedence."""

from __future__ import annotations

import json
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
    assert code == errors.FAILED  # latin1.xml holds a failure; the warnings alone do not fail without --strict
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
    assert "unknown --format pdf (choose from xml, html, md, json)" in capsys.readouterr().err
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
