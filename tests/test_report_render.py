"""Tests of render_files: the forked split writes the same files as in-process rendering, and failures surface."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance import errors
from conformance.report import model as m
from conformance.report import render
from conformance.report.matrix import build_matrix
from conformance.report.merge import MergeError

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")


def matrix() -> m.Matrix:
    env = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", f"t{i}", m.PASSED, 0.5, time_text="0.5")
                                               for i in range(50)])
    env.tests = 50
    return build_matrix([env])


def upper(mx: m.Matrix, stream) -> None:
    stream.write(f"rows={len(mx.rows)} é pid={os.getpid()}")


def lower(mx: m.Matrix, stream) -> None:
    stream.write(f"envs={len(mx.envs)} pid={os.getpid()}")


def boom(mx: m.Matrix, stream) -> None:
    raise ValueError("renderer exploded")


def merge_bug(mx: m.Matrix, stream) -> None:
    raise MergeError("merged totals differ from the inputs: x")


def run(tmp_path: Path, *writers) -> list[str]:
    names = ["xml", "json", "html", "md"]
    jobs = [(names[i], w, tmp_path / f"{i}.out") for i, w in enumerate(writers)]
    render.render_files(matrix(), jobs)
    return [path.read_text(encoding="utf-8") for _, _, path in jobs]


def test_split_balances_and_gives_the_heaviest_to_the_child():
    parent, child = render._split(["md", "xml", "json", "html"])
    assert child == [0, 2] and parent == [1, 3]  # json (+md) in the child, xml + html here
    assert render._split(["xml", "zzz"]) == ([1], [0])


@fork_only
def test_forked_files_equal_serial_ones(tmp_path, monkeypatch):
    forked = run(tmp_path, upper, lower, upper, lower)
    monkeypatch.setenv(render.SERIAL_ENV, "1")
    serial = run(tmp_path, upper, lower, upper, lower)
    me = f"pid={os.getpid()}"
    assert serial == [f"rows=50 é {me}", f"envs=1 {me}", f"rows=50 é {me}", f"envs=1 {me}"]
    assert [t.split(" pid=")[0] for t in forked] == [t.split(" pid=")[0] for t in serial]
    assert any(me not in t for t in forked), "nothing was written in the child"


@fork_only
def test_child_failure_is_a_render_error(tmp_path):
    with pytest.raises(render.RenderError, match="ValueError: renderer exploded"):
        run(tmp_path, upper, boom)


@fork_only
def test_child_conformance_error_keeps_its_exit_code(tmp_path):
    with pytest.raises(errors.ConformanceError, match="merged totals differ") as info:
        run(tmp_path, upper, merge_bug)
    assert info.value.exit_code == errors.INTERNAL


@fork_only
def test_parent_failure_propagates_and_the_child_is_reaped(tmp_path, monkeypatch):
    forked: list[int] = []
    real_fork = os.fork

    def recording_fork():
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(render.os, "fork", recording_fork)
    with pytest.raises(ValueError, match="renderer exploded"):
        run(tmp_path, boom, upper)
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # this child was reaped (other tests may leave their own children)
