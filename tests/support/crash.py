"""Test-only crash switch: kills the suite process on purpose so crash handling can be proven on a real child.

A pytest plugin the project's tests load into the suite process (`conformance run ... -- -p crash`, with
tests/support on PYTHONPATH); CONFORMANCE_TEST_CRASH=<mode>:<substring of a check id> arms it.
Modes: abort, sigkill, segfault, exit, hang.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

import pytest

CRASH_ENV = "CONFORMANCE_TEST_CRASH"
MODES = ("abort", "sigkill", "segfault", "exit", "hang")
# pytest captures fd 1 while a check runs; a copy taken at import time still reaches the supervisor's log.
_REAL_STDOUT = os.dup(1)


def _crash(mode: str) -> None:
    os.write(_REAL_STDOUT, f"crash plugin: crashing on purpose ({mode})\n".encode())
    if mode == "abort":
        os.abort()
    elif mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "segfault":
        ctypes.string_at(0)
    elif mode == "exit":
        os._exit(3)
    elif mode == "hang":
        while True:
            time.sleep(3600)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    mode, _, target = os.environ.get(CRASH_ENV, "").partition(":")
    if mode in MODES and target and target in item.nodeid:
        _crash(mode)
