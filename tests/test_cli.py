"""The CLI's single error catch: one line, the error's exit code, and nothing a CI log would read as a command."""

from __future__ import annotations

import subprocess
import sys

from conformance import errors


def test_error_line_cannot_forge_a_ci_annotation(tmp_path):
    hostile = tmp_path / "x\n::error file=a.py::forged" / "none.xml"
    proc = subprocess.run([sys.executable, "-m", "conformance", "report", str(hostile), "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == errors.NO_INPUT
    assert "Traceback" not in proc.stderr
    assert "conformance report: error: no JUnit files found" in proc.stderr
    assert not any(line.startswith("::") for line in proc.stderr.splitlines()), proc.stderr


def test_usage_error_from_an_engine_is_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "baseline.json"
    bad.write_text('{"format": 1, "rows": [{"id": 3}]}')
    junit = tmp_path / "cpu.xml"
    junit.write_text('<testsuite name="cpu" tests="1"><testcase classname="a" name="b"/></testsuite>')
    proc = subprocess.run([sys.executable, "-m", "conformance", "report", str(junit), "--baseline", str(bad),
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == errors.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) >= 1
