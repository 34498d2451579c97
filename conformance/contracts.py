"""Strings one process writes and another reads: outcome prefixes, JUnit types and file suffixes (no torch).

The suite, the rank pool and the supervisor produce them; the report classifies by them. Both sides import
them from here, so a rename changes producer and consumer together.
"""

from __future__ import annotations

# Skip reasons: the first words of a skip message decide its report category.
UNAVAILABLE = "unavailable: "  # the device (or enough of them) is absent on this host
NOT_APPLICABLE = "not applicable: "  # the build lacks the API or the check does not apply to this configuration

# JUnit `type` attributes written by the supervisor when it rebuilds a report from the journal.
CRASHED = "crashed"  # <error type="crashed">: the check that was running when the suite process died
NOT_RUN = "notrun"  # <skipped type="notrun">: checks the dead run never reached
CRASHED_PREFIX = "crashed: "
NOT_RUN_PREFIX = "not run: "

# Files beside reports/<env>.xml while a run goes on.
PARTIAL_SUFFIX = ".partial"  # pytest's JUnit, renamed over <env>.xml when the run finished cleanly
JOURNAL_SUFFIX = ".journal"  # every result as it happened, for salvage after a crash
LOCK_SUFFIX = ".lock"  # one writer per report file
RUN_SUFFIXES = (PARTIAL_SUFFIX, JOURNAL_SUFFIX, LOCK_SUFFIX)
