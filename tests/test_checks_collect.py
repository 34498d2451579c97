"""The single-process checks collect the same ids with and without torch, and report unavailable without it."""

import subprocess
import sys

import pytest

from checkfaults import CHECKS

MODULES = ["test_split.py", "test_backward.py", "test_microbatch.py"]

_RUN = """
import sys
if sys.argv[1] == "no-torch":
    sys.modules["torch"] = None  # import torch fails, as in an env whose torch install is broken or absent
import pytest
S = sys.argv[2]
sys.exit(pytest.main(["-p", "conformance.suite.plugin", "-c", S + "/pytest.ini", "--rootdir", S, "--device", "cpu",
                      "-p", "no:cacheprovider", *sys.argv[3:]]))
"""


def _run(mode, *args):
    proc = subprocess.run([sys.executable, "-c", _RUN, mode, str(CHECKS), *args, *[str(CHECKS / m) for m in MODULES]],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def _ids(output):
    return sorted(line.strip() for line in output.splitlines() if "::" in line and line.strip().startswith("test_"))


def test_same_ids_without_torch():
    pytest.importorskip("torch")
    code_with, with_torch = _run("torch", "--collect-only", "-q")
    code_without, without = _run("no-torch", "--collect-only", "-q")
    assert code_with == 0 and code_without == 0, with_torch[-2000:] + without[-2000:]
    ids = _ids(with_torch)
    assert len(ids) > 80 and ids == _ids(without)
    # ids name the API and dtype, never counters
    assert "test_split.py::test_pipe_numerics[TransformerBlock-bf16]" in ids
    assert "test_split.py::test_split_points[END-4]" in ids


def test_unavailable_without_torch():
    code, output = _run("no-torch", "-q", "-rs")
    assert code == 0, output[-3000:]
    assert " passed" not in output and " failed" not in output
    assert "unavailable: cpu torch is not importable" in output
