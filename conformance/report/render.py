"""Run the writers of the chosen formats into their files, split over two processes where `os.fork` exists.

Rendering is pure CPU work on a matrix that is already built: a forked child writes the heavier half (HTML and
JSON at 130k testcases) into its temporary files and reports success through a pipe; the caller replaces the
outputs only once every file is complete. Without fork (Windows), for one format, or with
CONFORMANCE_REPORT_SERIAL=1 it runs in-process.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from conformance import errors
from conformance.protocol import settings
from conformance.report import model as m

Writer = Callable[[m.Matrix, TextIO], None]
SERIAL_ENV = settings.REPORT_SERIAL.name
# Relative cost per format (CPU seconds x10 at 130k testcases, measured); unknown formats count 1.
WEIGHT = {"xml": 1.8, "json": 2.9, "html": 1.7, "md": 0.1}


class RenderError(errors.ConformanceError):
    """A writer failed in the child process; the message carries its traceback."""

    exit_code = errors.INTERNAL


def text_writer(render: Callable[[m.Matrix], str]) -> Writer:
    """A Writer from a renderer that returns the whole text."""

    def write(matrix: m.Matrix, stream: TextIO) -> None:
        stream.write(render(matrix))

    return write


def _split(names: list[str]) -> tuple[list[int], list[int]]:
    """Indices for (parent, child): greedy balance by weight, heaviest first and to the child on a tie."""
    order = sorted(range(len(names)), key=lambda i: -WEIGHT.get(names[i], 1.0))
    mine: list[int] = []
    theirs: list[int] = []
    load = [0.0, 0.0]
    for i in order:
        side = 1 if load[1] <= load[0] else 0
        (theirs if side else mine).append(i)
        load[side] += WEIGHT.get(names[i], 1.0)
    return sorted(mine), sorted(theirs)


def _write(matrix: m.Matrix, writer: Writer, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as stream:
        writer(matrix, stream)


def _child(matrix: m.Matrix, jobs: list[tuple[str, Writer, Path]], theirs: list[int], write_fd: int) -> None:
    """In the forked child: write its files, send the outcome, leave without the parent's cleanup (atexit)."""
    code = 0
    payload: Any
    try:
        for i in theirs:
            _write(matrix, jobs[i][1], jobs[i][2])
        payload = ("ok", None)
    except errors.ConformanceError as exc:  # e.g. MergeError: keep its class and exit code for the parent
        payload = ("conformance", (str(exc), exc.exit_code))
        code = 1
    except BaseException as exc:  # everything must reach the parent
        payload = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        code = 1
    try:
        with os.fdopen(write_fd, "wb") as pipe:
            pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        os._exit(code)


def render_files(matrix: m.Matrix, jobs: list[tuple[str, Writer, Path]]) -> None:
    """Write every job (format name, writer, file) completely, or raise; the files are temporaries to commit."""
    if len(jobs) < 2 or not hasattr(os, "fork") or settings.REPORT_SERIAL.flag():
        for _, writer, path in jobs:
            _write(matrix, writer, path)
        return
    mine, theirs = _split([name for name, _, _ in jobs])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(matrix, jobs, theirs, write_fd)
    os.close(write_fd)
    try:
        for i in mine:
            _write(matrix, jobs[i][1], jobs[i][2])
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
    if status == "conformance":
        raise errors.ConformanceError(*value)
    if status != "ok":
        raise RenderError(value)
