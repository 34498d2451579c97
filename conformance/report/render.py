"""Run the renderers of the chosen formats, split over two processes where `os.fork` exists.

Rendering is pure CPU work on a matrix that is already built: a forked child renders the heavier half (HTML and
JSON at 130k testcases) and hands the encoded text back through a pipe, so the caller still gets every text
before anything is written. Without fork (Windows), for one format, or with CONFORMANCE_REPORT_SERIAL=1 it runs
in-process.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

from conformance.report import model as m

Renderer = Callable[[m.Matrix], str]
SERIAL_ENV = "CONFORMANCE_REPORT_SERIAL"
# Relative cost per format (CPU seconds x10 at 130k testcases, measured); unknown formats count 1.
WEIGHT = {"xml": 1.8, "json": 2.9, "html": 1.7, "md": 0.1}


class RenderError(RuntimeError):
    """A renderer failed in the child process; the message carries its traceback."""


def _split(names: list[str]) -> tuple[list[int], list[int]]:
    """Indices for (parent, child): greedy balance by weight, heaviest first and to the child on a tie (the
    child also pays for sending its text back)."""
    order = sorted(range(len(names)), key=lambda i: -WEIGHT.get(names[i], 1.0))
    mine: list[int] = []
    theirs: list[int] = []
    load = [0.0, 0.0]
    for i in order:
        side = 1 if load[1] <= load[0] else 0
        (theirs if side else mine).append(i)
        load[side] += WEIGHT.get(names[i], 1.0)
    return sorted(mine), sorted(theirs)


def render_all(matrix: m.Matrix, jobs: list[tuple[str, Renderer]]) -> list[str | bytes]:
    """Texts of `jobs` (format name, renderer) in order: `str` from this process, UTF-8 `bytes` from the child."""
    if len(jobs) < 2 or not hasattr(os, "fork") or os.environ.get(SERIAL_ENV) == "1":
        return [render(matrix) for _, render in jobs]
    mine, theirs = _split([name for name, _ in jobs])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: render, send, and leave without running the parent's cleanup (atexit, buffers)
        os.close(read_fd)
        code = 0
        try:
            payload: Any = ("ok", [jobs[i][1](matrix).encode("utf-8") for i in theirs])
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            import traceback

            payload = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            code = 1
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(code)
    os.close(write_fd)
    texts: list[str | bytes | None] = [None] * len(jobs)
    try:
        for i in mine:
            texts[i] = jobs[i][1](matrix)
        with os.fdopen(read_fd, "rb") as pipe:
            read_fd = -1
            try:
                status, value = pickle.load(pipe)
            except EOFError:
                status, value = "error", "the rendering child process died without an answer"
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        os.waitpid(pid, 0)
    if status != "ok":
        raise RenderError(value)
    for i, data in zip(theirs, value):
        texts[i] = data
    return texts  # type: ignore[return-value]
