"""Outcome prefixes and JUnit types: how a skip, a crash or a never-run check is told apart in a report."""

from __future__ import annotations

from typing import Literal

# Skip reasons: the first words of a skip message decide its report category.
UNAVAILABLE = "unavailable: "  # the device (or enough of them) is absent on this host
NOT_APPLICABLE = "not applicable: "  # the build lacks the API or the check does not apply to this configuration

# JUnit `type` attributes written by the supervisor when it rebuilds a report from the journal.
CRASHED = "crashed"  # <error type="crashed">: the check that was running when the suite process died
NOT_RUN = "notrun"  # <skipped type="notrun">: checks the dead run never reached
CRASHED_PREFIX = "crashed: "
NOT_RUN_PREFIX = "not run: "

SkipKind = Literal["unavailable", "not_applicable", "not_run", "skipped"]


def not_applicable(why: str) -> str:
    """The skip reason of a check that does not apply to this build or configuration."""
    return NOT_APPLICABLE + why


def unavailable(why: str) -> str:
    """The skip reason of a check whose device (or enough of them) is absent on this host."""
    return UNAVAILABLE + why


def not_run(why: str) -> str:
    """The skip reason of a check the run never reached or could not run (no torch)."""
    return NOT_RUN_PREFIX + why


def crashed(why: str) -> str:
    """The message of the check that was running when the suite process died."""
    return CRASHED_PREFIX + why


def skip_kind(reason: str, type_: str | None = None) -> SkipKind:
    """What a skip message (already stripped of pytest's file:line decoration) says about the check.

    Prefixes compare case-insensitively and without their trailing space ("Unavailable:" too): hand-written and
    older producers' JUnit reads the same.
    """
    low = reason.strip().lower()
    if type_ == NOT_RUN or low.startswith(NOT_RUN_PREFIX.strip()):
        return "not_run"
    if low.startswith(UNAVAILABLE.strip()):
        return "unavailable"
    if low.startswith(NOT_APPLICABLE.strip()):
        return "not_applicable"
    return "skipped"


def is_crash(message: str, type_: str | None = None) -> bool:
    """Whether an <error> element is the supervisor's record of a suite process that died during the check."""
    return type_ == CRASHED or message.strip().lower().startswith(CRASHED_PREFIX.strip())
