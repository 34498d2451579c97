"""What travels between pytest and the ranks: a task in, one structured result per rank out (never exit codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["passed", "failed", "skipped", "error"]


@dataclass(frozen=True)
class Task:
    """One check for every rank: the same scenario and params, numbered so stale results are never mistaken."""

    seq: int
    check_id: str
    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    # Modules registering scenarios, imported by each rank before it looks `scenario` up (the suite's table,
    # conformance.suite.ranks.MODULES): the pool itself names no suite module.
    modules: tuple[str, ...] = ()


@dataclass
class Result:
    """One rank's outcome of one task.

    `message` is the short reason (skip reason, assertion text, "died with SIGSEGV"); `traceback` the rank's
    Python traceback or stacks; `data` what the scenario wants pytest to see (e.g. how many tensors it compared).
    """

    seq: int
    rank: int
    outcome: Outcome
    message: str = ""
    traceback: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# Sent instead of a Task to make a rank leave its loop.
STOP = "stop"
