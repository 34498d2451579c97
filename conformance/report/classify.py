"""Turn a testcase's result children (failure / error / skipped) into one outcome and a readable reason."""

from __future__ import annotations

import re

from conformance.protocol import outcomes as contracts
from conformance.report import model as m

# xunit1 and older pytest put the skip location in front of the reason:
#   "/path/test_x.py:7: unavailable: no GPU"  or  "('/path/test_x.py', 7, 'Skipped: unavailable: no GPU')"
_TUPLE = re.compile(r"""^\(\s*['"].*?['"]\s*,\s*\d+\s*,\s*['"](.*)['"]\s*\)\s*$""", re.DOTALL)
_FILE_LINE = re.compile(r"^[^\n]*?\.py:\d+: ")
_SKIPPED_PREFIX = "Skipped: "
_XFAIL_TYPE = "pytest.xfail"
_XPASS_STRICT = "[XPASS(strict)]"
# The producers' prefixes compared case-insensitively and without their trailing space ("Unavailable:" too).
_CRASHED_PREFIX = contracts.CRASHED_PREFIX.strip()
_NOT_RUN_PREFIX = contracts.NOT_RUN_PREFIX.strip()
_UNAVAILABLE_PREFIX = contracts.UNAVAILABLE.strip()
_NOT_APPLICABLE_PREFIX = contracts.NOT_APPLICABLE.strip()

# When a testcase carries several results (a failed call plus a teardown error), the first listed here wins.
_PRECEDENCE = (m.CRASHED, m.FAILED, m.XPASS, m.ERROR, m.NOT_RUN, m.XFAIL, m.UNAVAILABLE, m.NOT_APPLICABLE, m.SKIPPED)
_RANK = {name: i for i, name in enumerate(_PRECEDENCE)}


def clean_reason(text: str) -> str:
    """Strip the file:line decoration pytest adds to skip reasons."""
    text = text.strip()
    match = _TUPLE.match(text)
    text = match.group(1) if match else _FILE_LINE.sub("", text, count=1)
    text = text.removeprefix(_SKIPPED_PREFIX)
    return text.strip()


def _first_line(text: str) -> str:
    text = text.strip()
    return text.split("\n", 1)[0] if text else ""


def outcome_of(tag: str, type_: str | None, message: str | None, text: str) -> tuple[str, str]:
    """Outcome and one-line reason of a single result element (tag is failure, error or skipped)."""
    msg = message if message else _first_line(text)
    low = msg.lower()
    if tag == "failure":
        return (m.XPASS if msg.startswith(_XPASS_STRICT) else m.FAILED), msg
    if tag == "error":
        if type_ == contracts.CRASHED or low.startswith(_CRASHED_PREFIX):
            return m.CRASHED, msg
        return m.ERROR, msg
    # skipped
    reason = clean_reason(msg) if msg else clean_reason(text)
    low = reason.lower()
    if type_ == _XFAIL_TYPE:
        return m.XFAIL, reason
    if type_ == contracts.NOT_RUN or low.startswith(_NOT_RUN_PREFIX):
        return m.NOT_RUN, reason
    if low.startswith(_UNAVAILABLE_PREFIX):
        return m.UNAVAILABLE, reason
    if low.startswith(_NOT_APPLICABLE_PREFIX):
        return m.NOT_APPLICABLE, reason
    return m.SKIPPED, reason


def classify(results: list[tuple[str, str | None, str | None, str]]) -> tuple[str, str, str]:
    """(outcome, message, detail) of a testcase from its (tag, type, message, text) result children."""
    if not results:
        return m.PASSED, "", ""
    best: tuple[int, str, str, str] | None = None
    for tag, type_, message, text in results:
        outcome, msg = outcome_of(tag, type_, message, text)
        rank = _RANK[outcome]
        if best is None or rank < best[0]:
            best = (rank, outcome, msg, text)
    assert best is not None
    _, outcome, msg, text = best
    return outcome, msg, text.strip()
