"""`conformance run`: run the conformance suite on one device against this interpreter's torch.

The suite runs in a child pytest process supervised from here, so that nothing is lost when it dies: results are
journaled as they happen (conformance/journal.py) and, if the child crashes, hits the global time limit or is
stopped (Ctrl-C, SIGTERM), the JUnit file is rebuilt from the journal (conformance/salvage.py).
"""

from __future__ import annotations

import argparse
import collections
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

from conformance import builds, errors

# conformance.journal/faults/salvage import pytest (0.2 s): loaded only when a run starts, not for `report`.
JOURNAL_ENV = "CONFORMANCE_JOURNAL"  # = conformance.journal.JOURNAL_ENV
CRASH_ENV = "CONFORMANCE_TEST_CRASH"  # = conformance.faults.CRASH_ENV

SUITE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checks")
TIME_LIMIT_ENV = "CONFORMANCE_TIME_LIMIT"
OUTPUT_TAIL_LINES = 40
GRACE_S = 10.0  # how long a stopped suite gets to finish its current check and write its own report

# pytest's exit status -> ours (see conformance/errors.py)
# (pytest's 2 is "interrupted", which it also uses for collection errors: a broken suite is a failure.)
_PYTEST_EXIT = {0: errors.OK, 1: errors.FAILED, 2: errors.FAILED, 3: errors.INTERNAL,
                4: errors.USAGE, 5: errors.INTERNAL}
# The suite process must import the very `conformance` package this process runs (SUITE_DIR is inside it): the
# working directory comes off sys.path (a checkout there must not shadow an installed package, or the reverse)
# and this package's parent folder goes first.
_PKG_PARENT = os.path.dirname(os.path.dirname(SUITE_DIR))
_BOOTSTRAP = (f"import sys; sys.path[:] = [{_PKG_PARENT!r}] + [p for p in sys.path if p not in ('', '.')]; "
              "import pytest; sys.exit(pytest.main())")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the conformance suite on one device",
                       description="Run the conformance suite against the torch in this interpreter. "
                                   "Arguments after `--` go to pytest (e.g. `-- -k seed -x`).")
    p.add_argument("--device", required=True, choices=builds.DEVICES, help="device under test")
    p.add_argument("--junitxml", metavar="PATH", help="JUnit output (default reports/<env>.xml)")
    p.add_argument("--env-name", metavar="NAME",
                   help="column name in the report (default: CONFORMANCE_ENV, TOX_ENV_NAME or the device)")
    p.add_argument("--strict-device", action="store_true",
                   help="fail every check when the device is absent (env CONFORMANCE_STRICT=1)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help=f"stop the whole run after this long; the running check is reported as timed out "
                        f"(env {TIME_LIMIT_ENV}; default: none)")
    p.set_defaults(func=run)


def env_name(args: argparse.Namespace) -> str:
    return args.env_name or os.environ.get("CONFORMANCE_ENV") or os.environ.get("TOX_ENV_NAME") or args.device


def junit_path(args: argparse.Namespace) -> str:
    return os.path.abspath(args.junitxml or os.path.join("reports", f"{env_name(args)}.xml"))


def pytest_command(args: argparse.Namespace, partial: str) -> list[str]:
    env = env_name(args)
    cmd = [sys.executable, "-c", _BOOTSTRAP, "-p", "conformance.plugin", "-p", "conformance.journal",
           "-c", os.path.join(SUITE_DIR, "pytest.ini"), "--rootdir", SUITE_DIR,
           "--device", args.device, "--env-name", env, "-o", f"junit_suite_name={env}", "--junitxml", partial]
    if os.environ.get(CRASH_ENV):
        cmd += ["-p", "conformance.faults"]
    if args.strict_device:
        cmd.append("--strict-device")
    return cmd + [SUITE_DIR, *args.extra]


def _time_limit(args: argparse.Namespace) -> float | None:
    if args.time_limit is not None:
        return args.time_limit if args.time_limit > 0 else None
    raw = os.environ.get(TIME_LIMIT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(_usage(f"{TIME_LIMIT_ENV}={raw!r} is not a number of seconds")) from None
    return value if value > 0 else None


def _usage(msg: str) -> int:
    sys.stderr.write(f"conformance run: error: {msg}\n")
    return errors.USAGE


class _Lock:
    """One writer per report file: two runs of the same env must not interleave their results."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh = None

    def acquire(self) -> str | None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            return holder
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return None

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            try:
                os.remove(self.path)
            except OSError:
                pass


def _remove(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def run(args: argparse.Namespace) -> int:
    limit = _time_limit(args)
    final = junit_path(args)
    partial, journal_path = final + ".partial", final + ".journal"
    lock = _Lock(final + ".lock")
    holder = lock.acquire()
    if holder is not None:
        return _usage(f"another conformance run ({holder}) is writing {final}; wait for it, or give this run "
                      "another --env-name / --junitxml")
    try:
        _remove(partial, journal_path)  # stale leftovers of an earlier run of this env
        return _supervise(args, final, partial, journal_path, limit)
    finally:
        lock.release()


def _supervise(args: argparse.Namespace, final: str, partial: str, journal_path: str, limit: float | None) -> int:
    # Plugins that happen to be installed (a host torch image brings xdist, timeout, ...) must not change the
    # suite's behaviour; pass `-- -p NAME` to load one on purpose.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", JOURNAL_ENV: journal_path,
           "PYTHONUNBUFFERED": "1"}
    # Own session: ranks the suite starts die with it, and our Ctrl-C handling decides what the child sees.
    child = subprocess.Popen(pytest_command(args, partial), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    pump = threading.Thread(target=_pump, args=(child.stdout, tail), daemon=True)
    pump.start()
    stop: dict[str, str] = {}

    def on_signal(signum, _frame):
        stop.setdefault("cause", f"interrupted ({_signal_name(signum)})")
        _signal_group(child, signal.SIGINT)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = None if limit is None else time.monotonic() + limit
        killed_at = None
        while child.poll() is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline and "cause" not in stop:
                stop["cause"] = f"global time limit of {limit:g} s reached"
                stop["timeout"] = "1"
                _signal_group(child, signal.SIGUSR1)  # faulthandler stacks of the stuck check into the output tail
                time.sleep(0.5)
                _signal_group(child, signal.SIGKILL)
            if "cause" in stop and killed_at is None:
                killed_at = now
            if killed_at is not None and now - killed_at > GRACE_S:
                _signal_group(child, signal.SIGKILL)
            time.sleep(0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    pump.join(timeout=5)
    _signal_group(child, signal.SIGKILL)  # ranks left behind by a dead suite process
    return _finish(args, child.returncode, stop, tail, final, partial, journal_path)


def _pump(stream, tail: collections.deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line.rstrip("\n"))
        sys.stdout.write(line)
        sys.stdout.flush()


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _finish(args, code: int, stop: dict[str, str], tail, final: str, partial: str, journal_path: str) -> int:
    from conformance import journal, salvage

    data = journal.read(journal_path)
    clean = code in _PYTEST_EXIT and data.ended and os.path.exists(partial) and "cause" not in stop
    if clean:
        os.replace(partial, final)
        os.remove(journal_path)
        return _PYTEST_EXIT[code]
    if code == 4 and not data.collected and "cause" not in stop:
        # pytest rejected the command line or a setting (its message is above): nothing ran, nothing to report.
        _remove(partial, journal_path)
        return errors.USAGE
    if "cause" in stop:
        cause = stop["cause"]
    elif code < 0:
        cause = f"killed by {_signal_name(-code)}"
    else:
        cause = f"the suite process exited with code {code} before finishing"
    salvage.write(data, salvage.Death(cause, "\n".join(tail)), env_name(args), final)
    _remove(partial, journal_path)
    sys.stderr.write(f"conformance run: {cause}; wrote what finished to {final}\n")
    if "timeout" in stop:
        return errors.FAILED
    return errors.INTERRUPTED if stop else errors.FAILED
