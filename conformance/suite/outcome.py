"""Turns the per-rank results of one check into one pytest outcome: pass, fail (with rank and traceback), skip.

The suite process's side of the rank pool (pytest's outcomes); the pool itself knows nothing of pytest.
"""

from __future__ import annotations

import pytest

from conformance.pool.local import RunReport


def headline(text: str) -> str:
    """The first non-empty line: the one a summary, a CI annotation or a report cell shows."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def message(report: RunReport) -> str:
    """One line naming every bad rank and its cause, then each bad rank's whole message and traceback."""
    bad = [r for r in report.results if r.outcome in ("failed", "error")]
    head = "; ".join(f"rank {r.rank}: {headline(r.message) or r.outcome}" for r in bad)
    parts = [head]
    if report.restarted:
        parts.append("(the ranks were torn down; the next check starts fresh ones)")
    for r in bad:
        body = "\n".join(x for x in (r.message, r.traceback) if x)
        parts.append(f"===== rank {r.rank} ({r.outcome}) =====\n{body}")
    return "\n".join(parts)


def settle(report: RunReport) -> list[dict]:
    """Raise pytest's fail/skip for the check; on success return each rank's data, in rank order.

    A skip counts only when every rank skipped for the same reason: a half-skipped check is a failure, so a skip
    never hides a pass or a fail.
    """
    __tracebackhide__ = True
    results = sorted(report.results, key=lambda r: r.rank)
    if not results:
        pytest.fail("no rank returned a result", pytrace=False)
    if any(r.outcome in ("failed", "error") for r in results):
        pytest.fail(message(report), pytrace=False)
    skipped = [r for r in results if r.outcome == "skipped"]
    if skipped:
        reasons = {r.message for r in skipped}
        if len(skipped) == len(results) and len(reasons) == 1:
            pytest.skip(reasons.pop())
        detail = ", ".join(f"rank {r.rank} skipped ({headline(r.message)})" for r in skipped)
        pytest.fail(f"ranks disagree: {detail}; the others passed", pytrace=False)
    return [r.data for r in results]
