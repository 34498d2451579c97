"""The files beside reports/<env>.xml while a run goes on: written by the supervisor, skipped by the report."""

from __future__ import annotations

PARTIAL_SUFFIX = ".partial"  # pytest's JUnit, renamed over <env>.xml when the run finished cleanly
JOURNAL_SUFFIX = ".journal"  # every result as it happened, for salvage after a crash
LOCK_SUFFIX = ".lock"  # one writer per report file
RUN_SUFFIXES = (PARTIAL_SUFFIX, JOURNAL_SUFFIX, LOCK_SUFFIX)
