"""The results journal: one JSON record per line, appended by the suite process, read back by the supervisor.

A pytest process that segfaults, aborts or is killed writes no JUnit; the supervising `conformance run` rebuilds
the report from this journal instead (conformance/runner/salvage.py). The suite's journal plugin
(conformance/suite/journal.py) writes the records with `Writer`; `read()` folds them into one result per check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LONGREPR_LIMIT = 20_000

# Record types, in the order a run writes them.
META, COLLECTED, START, REPORT, FINISH, END = "meta", "collected", "start", "report", "finish", "end"


class Writer:
    """Appends records to the journal file, each reaching the OS as soon as it is written (it outlives a crash)."""

    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # line-buffered append

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, default=str) + "\n")

    def meta(self, pid: int, properties: Mapping[str, str]) -> None:
        self._write({"type": META, "pid": pid, "properties": dict(properties)})

    def collected(self, items: list[tuple[str, str, str]]) -> None:
        """(nodeid, JUnit classname, JUnit name) of every collected check."""
        self._write({"type": COLLECTED,
                     "items": [{"nodeid": n, "classname": c, "name": name} for n, c, name in items]})

    def start(self, nodeid: str) -> None:
        self._write({"type": START, "nodeid": nodeid})

    def report(self, nodeid: str, when: str, outcome: str, duration: float, longrepr: str,
               wasxfail: str | None = None) -> None:
        """One phase (setup, call, teardown) of one check, as pytest reported it."""
        rec: dict[str, Any] = {"type": REPORT, "nodeid": nodeid, "when": when, "outcome": outcome,
                               "duration": round(duration, 6), "longrepr": longrepr[:LONGREPR_LIMIT]}
        if wasxfail is not None:
            rec["wasxfail"] = wasxfail
        self._write(rec)

    def finish(self, nodeid: str) -> None:
        self._write({"type": FINISH, "nodeid": nodeid})

    def end(self, exitstatus: int) -> None:
        self._write({"type": END, "exitstatus": int(exitstatus)})

    def close(self) -> None:
        self._fh.close()


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
            if kind == META:
                data.properties = {str(k): str(v) for k, v in rec.get("properties", {}).items()}
            elif kind == COLLECTED:
                for it in rec["items"]:
                    res = Result(it["nodeid"], it["classname"], it["name"])
                    by_id[res.nodeid] = res
                    data.collected.append(res)
            elif kind == START:
                res = by_id.setdefault(rec["nodeid"], Result(rec["nodeid"]))
                res.started = True
                data.running = rec["nodeid"]
            elif kind == REPORT:
                _fold(by_id.setdefault(rec["nodeid"], Result(rec["nodeid"])), rec)
            elif kind == FINISH:
                by_id.setdefault(rec["nodeid"], Result(rec["nodeid"])).finished = True
                data.running = None
            elif kind == END:
                data.ended = True
    return data
