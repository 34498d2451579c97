"""The single-process checks collect the same ids with and without torch; without it they did not run."""

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
                      "--env-name", "cpu", "-p", "no:cacheprovider", *sys.argv[3:]]))
"""


def _run(mode, *args, modules=tuple(MODULES)):
    # --env-name: the message names the env, and under tox the tests' own TOX_ENV_NAME ("tests") must not leak in.
    proc = subprocess.run([sys.executable, "-c", _RUN, mode, str(CHECKS), *args, *[str(CHECKS / m) for m in modules]],
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


def test_not_run_without_torch_and_identity_fails():
    # A missing torch is a broken env, never an absent device: no check may read "unavailable" (a green column).
    code, output = _run("no-torch", "-q", "-rsf", modules=("test_identity.py", *MODULES))
    assert code == 1, output[-3000:]
    assert " passed" not in output and "1 failed" in output and "unavailable" not in output, output[-3000:]
    assert "the cpu env has no importable torch" in output and "tox -r -e cpu" in output
    assert "not run: the cpu env has no importable torch" in output
