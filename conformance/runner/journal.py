"""Results journal: every check's result is appended to a JSON-lines file the moment it is known.

A pytest process that segfaults, aborts or is killed writes no JUnit; the supervising `conformance run` rebuilds
the report from this journal instead (conformance/runner/salvage.py). Loaded as a pytest plugin with
`-p conformance.runner.journal` when CONFORMANCE_JOURNAL names the file.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
from dataclasses import dataclass, field

import pytest

from conformance import pytest_private, settings
from conformance.suite.state import state_key

JOURNAL_ENV = settings.JOURNAL.name
# pytest captures fd 2 while a check runs; stacks must reach the supervisor, so keep a copy from import time
# (plugins named with -p are imported before capturing starts).
_REAL_STDERR = os.fdopen(os.dup(2), "w")
_LONGREPR_LIMIT = 20_000


class _Writer:
    def __init__(self, path: str) -> None:
        # Line-buffered append: each record reaches the OS as soon as it is written, so it outlives the process.
        self._fh = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, default=str) + "\n")

    def close(self) -> None:
        self._fh.close()


_writer_key = pytest.StashKey[_Writer]()


def _longrepr(report: pytest.TestReport) -> str:
    if report.longrepr is None:
        return ""
    if isinstance(report.longrepr, tuple):  # skip: (file, line, reason)
        return str(report.longrepr[2])
    return str(report.longreprtext)[:_LONGREPR_LIMIT]


class _Hooks:
    """The journal's hooks; registered only when CONFORMANCE_JOURNAL names a file."""

    def __init__(self, config: pytest.Config, w: _Writer) -> None:
        self.config, self.w = config, w

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        st = session.config.stash.get(state_key, None)
        self.w.write({"type": "meta", "pid": os.getpid(), "properties": dict(st.meta) if st else {}})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = []
        for item in session.items:
            classname, name = pytest_private.junit_names(item.nodeid)
            items.append({"nodeid": item.nodeid, "classname": classname, "name": name})
        self.w.write({"type": "collected", "items": items})

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.w.write({"type": "start", "nodeid": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = {"type": "report", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
               "duration": round(report.duration, 6), "longrepr": _longrepr(report)}
        if hasattr(report, "wasxfail"):
            rec["wasxfail"] = report.wasxfail
        self.w.write(rec)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.w.write({"type": "finish", "nodeid": nodeid})

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.w.write({"type": "end", "exitstatus": int(exitstatus)})

    def pytest_unconfigure(self) -> None:
        self.w.close()


def pytest_configure(config: pytest.Config) -> None:
    path = settings.JOURNAL.raw()
    if path and not hasattr(config, "workerinput"):
        # The supervisor sends SIGUSR1 before killing a run that hit its time limit: the stacks land in its log.
        faulthandler.register(signal.SIGUSR1, file=_REAL_STDERR, all_threads=True)
        w = _Writer(path)
        config.stash[_writer_key] = w
        config.pluginmanager.register(_Hooks(config, w), "conformance-journal-hooks")


# --- reading -------------------------------------------------------------------------------------------------


@dataclass
class Result:
    nodeid: str
    classname: str = ""
    name: str = ""
    outcome: str = ""  # passed, failed, error, skipped, xfail
    message: str = ""
    detail: str = ""
    duration: float = 0.0
    finished: bool = False
    started: bool = False


@dataclass
class JournalData:
    properties: dict[str, str] = field(default_factory=dict)
    collected: list[Result] = field(default_factory=list)
    ended: bool = False
    running: str | None = None  # nodeid started but never finished


def _fold(res: Result, rec: dict) -> None:
    """Combine setup/call/teardown reports into one outcome, the way pytest's junitxml does."""
    when, outcome, text = rec["when"], rec["outcome"], rec.get("longrepr", "")
    res.duration += float(rec.get("duration", 0.0))
    if "wasxfail" in rec and outcome == "skipped":
        res.outcome, res.message, res.detail = "xfail", str(rec["wasxfail"]), text
        return
    if outcome == "failed":
        if when == "call":
            res.outcome = "failed"
        elif res.outcome not in ("failed",):
            res.outcome = "error"
        res.message = (text.strip().splitlines() or [""])[-1][:500]
        res.detail = text
    elif outcome == "skipped" and res.outcome in ("", "passed"):
        res.outcome, res.message, res.detail = "skipped", text, text
    elif outcome == "passed" and res.outcome == "":
        res.outcome = "passed"


def read(path: str) -> JournalData:
    data = JournalData()
    by_id: dict[str, Result] = {}
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return data
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line from a killed process
            kind = rec.get("type")
            if kind == "meta":
                data.properties = {str(k): str(v) for k, v in rec.get("properties", {}).items()}
            elif kind == "collected":
                for it in rec["items"]:
                    res = Result(it["nodeid"], it["classname"], it["name"])
                    by_id[res.nodeid] = res
                    data.collected.append(res)
            elif kind == "start":
                res = by_id.setdefault(rec["nodeid"], Result(rec["nodeid"]))
                res.started = True
                data.running = rec["nodeid"]
            elif kind == "report":
                _fold(by_id.setdefault(rec["nodeid"], Result(rec["nodeid"])), rec)
            elif kind == "finish":
                by_id.setdefault(rec["nodeid"], Result(rec["nodeid"])).finished = True
                data.running = None
            elif kind == "end":
                data.ended = True
    return data
