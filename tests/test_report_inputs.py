"""Tests of input discovery and reading: default glob, duplicates, partial/lock markers, env name clashes."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from conformance.report import model as m
from conformance.report.inputs import find_inputs, name_envs, read_inputs

ROOT = Path(__file__).resolve().parents[1]

DATA = Path(__file__).parent / "data" / "junit"


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    for env in ("cuda", "cpu"):
        shutil.copy(DATA / "matrix" / f"{env}.xml", folder / f"{env}.xml")
    return folder


def test_default_glob_sorted_and_excludes_merged(reports):
    (reports / "merged.xml").write_text("<testsuites/>")
    found = find_inputs([])
    assert found.searched == os.path.join("reports", "*.xml")
    assert [p.name for p in found.files] == ["cpu.xml", "cuda.xml"]
    assert found.warnings == []


def test_missing_explicit_file_and_folder_argument(reports):
    found = find_inputs(["nope.xml", "reports"])
    assert [p.name for p in found.files] == ["cpu.xml", "cuda.xml"]
    assert [(w.path, w.problem) for w in found.warnings] == [("nope.xml", "no such file")]


def test_same_path_twice_is_read_once(reports):
    found = find_inputs(["reports/cpu.xml", "reports/../reports/cpu.xml"])
    assert len(found.files) == 1
    assert "named twice" in found.warnings[0].problem


def test_duplicate_content_is_skipped_by_hash(reports):
    shutil.copy(reports / "cpu.xml", reports / "cpu-copy.xml")
    envs, warnings = read_inputs(find_inputs([]).files)
    assert [e.name for e in envs] == ["cpu", "cuda"]
    assert [(Path(w.path).name, w.problem) for w in warnings] == [
        ("cpu.xml", f"same content as {os.path.join('reports', 'cpu-copy.xml')}; duplicate skipped")]


def test_partial_file_without_final_file_is_read_as_incomplete(reports):
    data = (DATA / "matrix" / "xpu.xml").read_bytes()
    (reports / "xpu.xml.partial").write_bytes(data[: len(data) // 2])
    found = find_inputs([])
    assert [p.name for p in found.files] == ["cpu.xml", "cuda.xml", "xpu.xml.partial"]
    envs, warnings = read_inputs(found.files)
    xpu = next(e for e in envs if e.name == "xpu")
    assert xpu.incomplete and xpu.cases
    problems = [w.problem for w in found.warnings + warnings]
    assert any("only the partial file of env 'xpu'" in p for p in problems)
    assert any(p.startswith("incomplete: XML ends early") for p in problems)


def test_partial_beside_final_and_lock_markers_warn(reports):
    (reports / "cuda.xml.partial").write_text("<testsuites><testsuite name='x'>")
    (reports / "cpu.xml.lock").write_text("pid 12")
    (reports / "hpu.lock").write_text("")
    (reports / "xpu.xml.journal").write_text("")
    found = find_inputs([])
    assert [p.name for p in found.files] == ["cpu.xml", "cuda.xml"]
    problems = sorted(f"{Path(w.path).name}: {w.problem}" for w in found.warnings)
    assert problems == [
        "cpu.xml: lock marker cpu.xml.lock exists: a run may still be writing this env",
        "cuda.xml: cuda.xml.partial exists beside it: a newer run may still be writing this env; the finished "
        "file was used",
        "hpu.lock: env 'hpu': a run has written no results yet (hpu.lock exists)",
        "xpu.xml.journal: env 'xpu': a run has written no results yet (xpu.xml.journal exists)",
    ]


def test_markers_of_a_partial_file_are_found_by_env(reports):
    data = (DATA / "matrix" / "xpu.xml").read_bytes()
    (reports / "xpu.xml.partial").write_bytes(data)
    (reports / "xpu.xml.journal").write_text("")
    found = find_inputs([])
    problems = [w.problem for w in found.warnings if w.env == "xpu"]
    assert any("results journal xpu.xml.journal exists" in p for p in problems)
    assert not any("has written no results yet" in p for p in problems)


def test_same_base_name_in_two_folders_stays_two_columns(tmp_path):
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
        text = (DATA / "xunit1.xml").read_text()
        if run == "run2":
            text = text.replace('time="0.500"', 'time="0.600"')
        (tmp_path / run / "gpu.xml").write_text(text)
    envs, warnings = read_inputs(find_inputs([str(tmp_path / "run*" / "*.xml")]).files)
    assert warnings == []
    assert [e.name for e in envs] == ["run1/gpu", "run2/gpu"]


def test_name_envs_numbers_when_parent_also_clashes():
    envs = [m.EnvResult("cpu", "a/x.xml"), m.EnvResult("cpu", "a/y.xml"), m.EnvResult("cuda", "b/cuda.xml")]
    name_envs(envs)
    assert [e.name for e in envs] == ["a/cpu", "a/cpu#2", "cuda"]


def test_our_merged_file_passed_explicitly_is_refused(tmp_path):
    merged = tmp_path / "old-merged.xml"
    merged.write_text('<testsuites name="conformance-merged"><testsuite name="cpu" tests="0" failures="0" '
                      'errors="0"/></testsuites>')
    envs, warnings = read_inputs([merged])
    assert envs == []
    assert "merged report written by `conformance report`" in warnings[0].problem


PRODUCERS = DATA / "producers"


def test_symlink_loop_is_a_named_warning_directly_and_through_a_glob(reports):
    os.symlink("loop.xml", reports / "loop.xml")
    for args in (["reports/loop.xml", "reports/cpu.xml"], ["reports/*.xml"], []):
        found = find_inputs(args)
        assert "loop.xml" not in [p.name for p in found.files]
        assert [(w.slug, w.path) for w in found.warnings] == [(m.W_SYMLINK_LOOP, "reports/loop.xml")], args


def test_a_path_that_exists_is_a_file_before_it_is_a_glob(reports):
    shutil.copy(DATA / "matrix" / "cuda.xml", reports / "results[cuda].xml")
    shutil.copy(DATA / "matrix" / "cpu.xml", reports / "resultsc.xml")  # what the glob `results[cuda].xml` matches
    found = find_inputs(["reports/results[cuda].xml"])
    assert [p.name for p in found.files] == ["results[cuda].xml"]
    assert [p.name for p in find_inputs(["reports/results[cu].xml"]).files] == ["resultsc.xml"]


def test_folder_argument_skips_a_partial_beside_its_finished_file_and_warns_about_a_lone_one(reports):
    shutil.copy(DATA / "matrix" / "cpu.xml", reports / "cpu.xml.partial")
    shutil.copy(DATA / "matrix" / "xpu.xml", reports / "xpu.xml.partial")
    for args in (["reports"], []):
        found = find_inputs(args)
        assert [p.name for p in found.files] == ["cpu.xml", "cuda.xml", "xpu.xml.partial"]
        assert sorted((w.slug, Path(w.path).name) for w in found.warnings) == [
            (m.W_IN_PROGRESS, "cpu.xml"), (m.W_IN_PROGRESS, "xpu.xml.partial")]


def test_surefire_per_class_files_are_one_env_per_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "core" / "target" / "surefire-reports"
    folder.mkdir(parents=True)
    sample = (PRODUCERS / "TEST-com.example.ppconf.ScheduleTest.xml").read_text()
    for i in range(3):
        (folder / f"TEST-com.example.ppconf.Schedule{i}Test.xml").write_text(
            sample.replace("ScheduleTest", f"Schedule{i}Test"))
    envs, warnings = read_inputs(find_inputs(["core/target/surefire-reports"]).files)
    assert warnings == []
    (env,) = envs
    assert (env.name, env.path, env.files) == ("surefire-reports", "core/target/surefire-reports", 3)
    assert (env.tests, env.failures, env.skipped, len(env.cases)) == (9, 3, 3, 9)
    assert env.properties["java.version"] == "21.0.2"


def test_crowded_folder_without_env_properties_is_one_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    sample = (PRODUCERS / "pytest-xunit2.xml").read_text()
    for i in range(40):
        (tmp_path / "out" / f"shard{i:02d}.xml").write_text(sample.replace("test_schedules", f"test_s{i}"))
    envs, _ = read_inputs(find_inputs(["out"]).files)
    assert [(e.name, e.files, len(e.cases)) for e in envs] == [("out", 40, 120)]


def test_bazel_test_xml_files_group_under_bazel_testlogs(monkeypatch):
    monkeypatch.chdir(PRODUCERS)
    envs, warnings = read_inputs(find_inputs(["bazel-testlogs/*/*/*/test.xml"]).files)
    assert warnings == []
    assert [(e.name, e.files, [c.outcome for c in e.cases]) for e in envs] == [
        ("bazel-testlogs", 2, [m.ERROR, m.PASSED])]


def test_a_cut_env_file_fails_the_report_with_the_offset_and_what_was_declared(tmp_path, capsys):
    """`head -c 60000` of an env file that declares 452 testcases: not a green "no failures"."""
    from conformance import errors
    from conformance.cli import main

    whole = (ROOT / "reports" / "examples" / "h200x2" / "cuda.xml").read_bytes()
    declared = int(re.search(rb'<testsuite [^>]*\btests="(\d+)"', whole).group(1))
    assert whole[:60000].count(b"<testcase ") < declared
    cut = tmp_path / "cuda.xml"
    cut.write_bytes(whole[:60000])
    assert main(["report", str(cut), "--output-dir", str(tmp_path / "out")]) == errors.STRICT
    out, err = capsys.readouterr()
    warning = next(line for line in err.splitlines() if line.startswith("warning[truncated]"))
    kept = whole[:60000].count(b"<testcase ") - 1  # the last one is cut (the case: "90 of 452 declared")
    assert f"of {declared} declared testcases read" in warning, warning
    assert re.search(r"ends early at byte 60000 \(line \d+\)", warning), warning
    assert f"{kept} of {declared} declared testcases read" in warning, (kept, warning)
    assert "incomplete input: 1 input warning(s) (truncated) (exit 4" in err
    assert "INCOMPLETE" in out or "FAIL" in out
    # Allowed on purpose, it reads as what it is: incomplete.
    assert main(["report", str(cut), "--output-dir", str(tmp_path / "out"), "--allow-warnings", "truncated"]) == 0


def test_a_folder_argument_is_read_with_its_subfolders_and_says_how_many(tmp_path, capsys):
    """`conformance report reports/examples` reads every env file below it, not only those at its top, and says so."""
    from conformance.report.engine import Options, Streams, run_report

    examples = ROOT / "reports" / "examples"
    found = find_inputs([str(examples)])
    want = sorted(p for p in examples.rglob("*.xml") if p.name != "merged.xml")
    assert sorted(found.files) == want
    assert any(p.parent == examples for p in want) and any(p.parent != examples for p in want)
    folders = len({p.parent for p in want})
    assert found.notes == [f"{examples}: {len(want)} JUnit files in {folders} folders (subfolders included)"]
    streams = Streams()
    run_report(Options(inputs=[str(ROOT / "reports" / "examples")], output_dir=str(tmp_path), formats=["json"]),
               streams)
    assert "conformance report: read " in capsys.readouterr().err


def test_a_double_star_glob_includes_the_top_level(tmp_path):
    (tmp_path / "sub").mkdir()
    for path in (tmp_path / "top.xml", tmp_path / "sub" / "deep.xml"):
        path.write_text('<testsuite name="s" tests="1"><testcase classname="test_a" name="t"/></testsuite>')
    found = find_inputs([str(tmp_path / "**" / "*.xml")])
    assert sorted(p.name for p in found.files) == ["deep.xml", "top.xml"]


def test_the_default_folder_stays_one_level(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports" / "examples").mkdir(parents=True)
    for path in (tmp_path / "reports" / "cpu.xml", tmp_path / "reports" / "examples" / "old.xml"):
        path.write_text('<testsuite name="s" tests="1"><testcase classname="test_a" name="t"/></testsuite>')
    assert [p.name for p in find_inputs([]).files] == ["cpu.xml"]
