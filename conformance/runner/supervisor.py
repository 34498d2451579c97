"""Supervises one conformance run: starts the suite's pytest process, enforces the time limit, salvages its results.

The suite runs in a child pytest process so that nothing is lost when it dies: results are journaled as they
happen (`conformance.suite.journal`) and, if the child crashes, hits the global time limit or is stopped (Ctrl-C,
SIGTERM), the JUnit file is rebuilt from the journal (`conformance.runner.salvage`). Knows nothing of argparse.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from conformance import errors
from conformance.protocol import argv, files, settings
from conformance.signals import signal_name

SUITE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suite", "checks")
OUTPUT_TAIL_LINES = 40
GRACE_S = 10.0  # how long a stopped suite gets to finish its current check and write its own report

# pytest's exit status -> ours (see conformance/errors.py)
# (pytest's 2 is "interrupted", which it also uses for collection errors: a broken suite is a failure.)
_PYTEST_EXIT = {0: errors.OK, 1: errors.FAILED, 2: errors.FAILED, 3: errors.INTERNAL,
                4: errors.USAGE, 5: errors.INTERNAL}
# The suite process must import the very `conformance` package this process runs (SUITE_DIR is inside it): the
# working directory comes off sys.path (a checkout there must not shadow an installed package, or the reverse)
# and this package's parent folder goes first.
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(SUITE_DIR)))
# Before a time limit kills the suite, SIGUSR1 makes it dump every thread's stack into our log: registered here, on a
# copy of fd 2 taken before pytest starts capturing it.
_BOOTSTRAP = ("import faulthandler, os, signal, sys; "
              "faulthandler.register(signal.SIGUSR1, file=os.dup(2), all_threads=True); "
              f"sys.path[:] = [{_PKG_PARENT!r}] + [p for p in sys.path if p not in ('', '.')]; "
              "import pytest; sys.exit(pytest.main())")


@dataclass
class RunRequest:
    """What to run: the device, where the JUnit goes, the report column, and pytest's extra arguments."""

    device: str
    junit: str
    env: str
    strict: bool = False
    time_limit: float | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def partial(self) -> str:
        return self.junit + files.PARTIAL_SUFFIX

    @property
    def journal(self) -> str:
        return self.junit + files.JOURNAL_SUFFIX


@dataclass
class _Stop:
    """Why the supervisor stopped the suite early, if it did."""

    cause: str = ""
    timeout: bool = False
    at: float | None = None


def time_limit_from_env() -> float | None:
    if not settings.TIME_LIMIT.is_set():
        return None
    value = settings.TIME_LIMIT.number()
    return value if value > 0 else None


def pytest_command(req: RunRequest) -> list[str]:
    cmd = [sys.executable, "-c", _BOOTSTRAP, "-p", "conformance.suite.plugin", "-p", "conformance.suite.journal",
           "-c", os.path.join(SUITE_DIR, "pytest.ini"), "--rootdir", SUITE_DIR,
           *argv.suite_args(req.device, req.env, req.strict), "-o", f"junit_suite_name={req.env}",
           "--junitxml", req.partial]
    return [*cmd, SUITE_DIR, *req.extra]


class _Lock:
    """One writer per report file: two runs of the same env must not interleave their results."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: IO[str] | None = None

    def acquire(self) -> str | None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fh = self.fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            self.fh = None
            return holder
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        return None

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            remove(self.path)


def remove(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def run(req: RunRequest) -> int:
    """Run the suite for `req` under a lock on its report file; returns our exit status."""
    lock = _Lock(req.junit + files.LOCK_SUFFIX)
    holder = lock.acquire()
    if holder is not None:
        raise errors.UsageError(f"another conformance run ({holder}) is writing {req.junit}; wait for it, or give "
                                "this run another --env-name / --junitxml")
    try:
        remove(req.partial, req.journal)  # stale leftovers of an earlier run of this env
        return _supervise(req)
    finally:
        lock.release()


def _supervise(req: RunRequest) -> int:
    child = _start_suite(req)
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    pump = threading.Thread(target=_pump, args=(child.stdout, tail), daemon=True)
    pump.start()
    stop = _Stop()

    def on_signal(signum: int, _frame: object) -> None:
        stop.cause = stop.cause or f"interrupted ({signal_name(signum)})"
        _signal_group(child, signal.SIGINT)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _wait(child, req.time_limit, stop)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    pump.join(timeout=5)
    _signal_group(child, signal.SIGKILL)  # ranks left behind by a dead suite process
    return _finish(req, child.returncode, stop, tail)


def _start_suite(req: RunRequest) -> subprocess.Popen[bytes]:
    # Plugins that happen to be installed (a host torch image brings xdist, timeout, ...) must not change the
    # suite's behaviour; pass `-- -p NAME` to load one on purpose.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", settings.JOURNAL.name: req.journal,
           "PYTHONUNBUFFERED": "1"}
    # Own session: ranks the suite starts die with it, and our Ctrl-C handling decides what the child sees.
    return subprocess.Popen(pytest_command(req), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait(child: subprocess.Popen[bytes], limit: float | None, stop: _Stop) -> None:
    """Wait for the child; past the time limit dump its stacks and kill it; after a stop, give it GRACE_S."""
    deadline = None if limit is None else time.monotonic() + limit
    while child.poll() is None:
        now = time.monotonic()
        if deadline is not None and now >= deadline and not stop.cause:
            stop.cause, stop.timeout = f"global time limit of {limit:g} s reached", True
            _signal_group(child, signal.SIGUSR1)  # faulthandler stacks of the stuck check into the output tail
            time.sleep(0.5)
            _signal_group(child, signal.SIGKILL)
        if stop.cause and stop.at is None:
            stop.at = now
        if stop.at is not None and now - stop.at > GRACE_S:
            _signal_group(child, signal.SIGKILL)
        time.sleep(0.05)


def _pump(stream: IO[bytes], tail: collections.deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line.rstrip("\n"))
        sys.stdout.write(line)
        sys.stdout.flush()


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _finish(req: RunRequest, code: int, stop: _Stop, tail: collections.deque[str]) -> int:
    """Keep pytest's own JUnit after a clean end; otherwise rebuild it from the journal."""
    from conformance.protocol import journal
    from conformance.runner import salvage

    data = journal.read(req.journal)
    if code in _PYTEST_EXIT and data.ended and os.path.exists(req.partial) and not stop.cause:
        os.replace(req.partial, req.junit)
        os.remove(req.journal)
        return _PYTEST_EXIT[code]
    if code == 4 and not data.collected and not stop.cause:
        # pytest rejected the command line or a setting (its message is above): nothing ran, nothing to report.
        remove(req.partial, req.journal)
        return errors.USAGE
    cause = stop.cause or _death_cause(code)
    salvage.write(data, salvage.Death(cause, "\n".join(tail)), req.env, req.junit)
    remove(req.partial, req.journal)
    sys.stderr.write(f"conformance run: {cause}; wrote what finished to {req.junit}\n")
    if stop.timeout:
        return errors.FAILED
    return errors.INTERRUPTED if stop.cause else errors.FAILED


def _death_cause(code: int) -> str:
    if code < 0:
        return f"killed by {signal_name(-code)}"
    return f"the suite process exited with code {code} before finishing"
