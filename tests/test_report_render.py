"""Tests of render_all: the forked split gives the same texts as in-process rendering, and failures surface."""

from __future__ import annotations

import os

import pytest

from conformance.report import model as m
from conformance.report import render
from conformance.report.matrix import build_matrix

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")


def matrix() -> m.Matrix:
    env = m.EnvResult("cpu", "cpu.xml", cases=[m.Cell("test_x", f"t{i}", m.PASSED, 0.5, time_text="0.5")
                                               for i in range(50)])
    env.tests = 50
    return build_matrix([env])


def upper(mx: m.Matrix) -> str:
    return f"rows={len(mx.rows)} é"


def lower(mx: m.Matrix) -> str:
    return f"envs={len(mx.envs)}"


def boom(mx: m.Matrix) -> str:
    raise ValueError("renderer exploded")


def test_split_balances_and_gives_the_heaviest_to_the_child():
    parent, child = render._split(["md", "xml", "json", "html"])
    assert child == [0, 2] and parent == [1, 3]  # json (+md) in the child, xml + html here
    assert render._split(["xml", "zzz"]) == ([1], [0])


@fork_only
def test_forked_texts_equal_serial_ones(monkeypatch):
    mx = matrix()
    jobs = [("xml", upper), ("json", lower), ("html", upper), ("md", lower)]
    forked = render.render_all(mx, jobs)
    monkeypatch.setenv(render.SERIAL_ENV, "1")
    serial = render.render_all(mx, jobs)
    assert serial == ["rows=50 é", "envs=1", "rows=50 é", "envs=1"]
    assert [t.decode("utf-8") if isinstance(t, bytes) else t for t in forked] == serial
    assert any(isinstance(t, bytes) for t in forked), "nothing was rendered in the child"


@fork_only
def test_child_failure_is_a_render_error():
    with pytest.raises(render.RenderError, match="ValueError: renderer exploded"):
        render.render_all(matrix(), [("xml", upper), ("json", boom)])


@fork_only
def test_parent_failure_propagates_and_the_child_is_reaped(monkeypatch):
    forked: list[int] = []
    real_fork = os.fork

    def recording_fork():
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(render.os, "fork", recording_fork)
    with pytest.raises(ValueError, match="renderer exploded"):
        render.render_all(matrix(), [("xml", boom), ("json", upper)])
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # this child was reaped (other tests may leave their own children)
