"""The suite process's results journal: every check's result appended the moment it is known (a pytest plugin).

A pytest process that segfaults, aborts or is killed writes no JUnit; the supervising `conformance run` rebuilds
the report from this journal instead (conformance/runner/salvage.py). Loaded with `-p conformance.suite.journal`
when CONFORMANCE_JOURNAL names the file; the record format is `conformance.protocol.journal`'s.
"""

from __future__ import annotations

import os

import pytest

from conformance import pytest_private
from conformance.protocol import journal, settings
from conformance.suite.state import state_key

_writer_key = pytest.StashKey[journal.Writer]()


def _longrepr(report: pytest.TestReport) -> str:
    if report.longrepr is None:
        return ""
    if isinstance(report.longrepr, tuple):  # skip: (file, line, reason)
        return str(report.longrepr[2])
    return str(report.longreprtext)


class _Hooks:
    """The journal's hooks; registered only when CONFORMANCE_JOURNAL names a file."""

    def __init__(self, w: journal.Writer) -> None:
        self.w = w

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        st = session.config.stash.get(state_key, None)
        self.w.meta(os.getpid(), st.meta if st else {})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.w.collected([(item.nodeid, *pytest_private.junit_names(item.nodeid)) for item in session.items])

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.w.start(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.w.report(report.nodeid, report.when or "", report.outcome, report.duration, _longrepr(report),
                      getattr(report, "wasxfail", None))

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.w.finish(nodeid)

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.w.end(exitstatus)

    def pytest_unconfigure(self) -> None:
        self.w.close()


def pytest_configure(config: pytest.Config) -> None:
    path = settings.JOURNAL.raw()
    if path and not hasattr(config, "workerinput"):
        w = journal.Writer(path)
        config.stash[_writer_key] = w
        config.pluginmanager.register(_Hooks(w), "conformance-journal-hooks")
