"""Data model of the cross-device report: outcomes, counts, cells, env results, rows and the matrix."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # baseline.py imports this module at run time
    from conformance.report.baseline import BaselineDiff

# Outcome names, in the order they are shown everywhere (legend, summaries, JSON "outcomes").
PASSED = "passed"
FAILED = "failed"
ERROR = "error"
CRASHED = "crashed"
XPASS = "xpass"
XFAIL = "xfail"
SKIPPED = "skipped"
UNAVAILABLE = "unavailable"
NOT_APPLICABLE = "not_applicable"
NOT_RUN = "not_run"
MISSING = "missing"

OUTCOMES: tuple[str, ...] = (
    PASSED, FAILED, ERROR, CRASHED, XPASS, XFAIL, SKIPPED, UNAVAILABLE, NOT_APPLICABLE, NOT_RUN, MISSING,
)

# Outcomes that make `conformance report` exit FAILED: something broke on that device.
PROBLEMS: frozenset[str] = frozenset({FAILED, ERROR, CRASHED, XPASS})

# One letter per outcome, so cells are never told apart by colour alone (HTML, console, JSON-free views).
LETTER: dict[str, str] = {
    PASSED: "P", FAILED: "F", ERROR: "E", CRASHED: "C", XPASS: "X", XFAIL: "x",
    SKIPPED: "s", UNAVAILABLE: "U", NOT_APPLICABLE: "N", NOT_RUN: "R", MISSING: "M",
}
FROM_LETTER: dict[str, str] = {v: k for k, v in LETTER.items()}

LABEL: dict[str, str] = {
    PASSED: "passed", FAILED: "failed", ERROR: "error", CRASHED: "crashed", XPASS: "xpass (strict)",
    XFAIL: "xfail", SKIPPED: "skipped", UNAVAILABLE: "unavailable", NOT_APPLICABLE: "not applicable",
    NOT_RUN: "not run", MISSING: "missing",
}


@dataclass(frozen=True)
class Counts:
    """Outcome counts of one env (or a sum of envs); `sum()` works thanks to `__radd__`."""

    passed: int = 0
    failed: int = 0
    error: int = 0
    crashed: int = 0
    xpass: int = 0
    xfail: int = 0
    skipped: int = 0
    unavailable: int = 0
    not_applicable: int = 0
    not_run: int = 0
    missing: int = 0

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __radd__(self, other: object) -> Counts:
        # sum() starts from the int 0.
        if other == 0:
            return self
        return NotImplemented  # type: ignore[return-value]

    def get(self, outcome: str) -> int:
        return getattr(self, outcome)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}

    @property
    def total(self) -> int:
        """Results present in the env's file: every outcome except `missing`."""
        return sum(getattr(self, name) for name in OUTCOMES if name != MISSING)

    @property
    def problems(self) -> int:
        return self.failed + self.error + self.crashed + self.xpass

    @property
    def ran(self) -> int:
        """Checks that executed on the device (expected failures included)."""
        return self.passed + self.problems + self.xfail

    @property
    def pass_rate(self) -> float:
        """Percent of present results that passed (denominator: `total`)."""
        return 100.0 * self.passed / self.total if self.total else 0.0

    @property
    def run_pass_rate(self) -> float:
        """Percent of the checks that ran that passed (denominator: `ran`)."""
        return 100.0 * self.passed / self.ran if self.ran else 0.0

    def describe(self) -> str:
        """'41/48 passed, 2 failed, 3 unavailable' with `total` as the denominator."""
        parts = [f"{self.passed}/{self.total} passed"]
        parts += [f"{getattr(self, n)} {LABEL[n]}" for n in OUTCOMES if n != PASSED and getattr(self, n)]
        return ", ".join(parts)


@dataclass(slots=True)
class Cell:
    """One testcase of one env: its outcome plus what the merged JUnit needs to reproduce it."""

    classname: str
    name: str
    outcome: str
    time: float = 0.0
    message: str = ""  # one-line reason / failure message
    detail: str = ""  # traceback or skip text, may be long
    # (tag, type, message, text) of every child element kept for merged.xml (failure, skipped, system-out ...).
    children: tuple[tuple[str, str | None, str | None, str], ...] = ()
    time_text: str = ""  # `time` as written in the input: copied, never re-formatted (130k floats cost)

    @property
    def key(self) -> str:
        return f"{self.classname}::{self.name}"


@dataclass
class InputWarning:
    """A problem with one input (or a missing one): printed on stderr, listed in every report."""

    path: str
    problem: str
    env: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class EnvResult:
    """Everything read from one env's JUnit file."""

    name: str
    path: str
    sha256: str = ""
    claimed: str = ""  # the name before clashes were resolved ("cuda" for "run1/cuda"); "" when unchanged
    properties: dict[str, str] = field(default_factory=dict)
    cases: list[Cell] = field(default_factory=list)  # file order, duplicates kept (merged.xml conserves totals)
    duplicates: set[str] = field(default_factory=set)  # check ids seen more than once (set by the matrix build)
    incomplete: str = ""  # why the results are partial (truncated XML, run still writing); "" when complete
    timestamp: str = ""
    hostname: str = ""
    system_out: str = ""
    system_err: str = ""
    # JUnit totals as counted while reading (elements, not outcomes): the merge must reproduce them.
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    @functools.cached_property
    def time(self) -> float:
        """Sum of the testcase times (read once the cases are complete; renderers ask several times)."""
        return sum(c.time for c in self.cases)

    def by_key(self) -> dict[str, Cell]:
        """Cells by check id; a duplicated id keeps its first occurrence (the reader warns about it)."""
        out: dict[str, Cell] = {}
        for cell in self.cases:
            out.setdefault(cell.key, cell)
        return out


@dataclass(slots=True)
class Row:
    """One check across all envs; `cells[i]` belongs to `Matrix.envs[i]`, None when missing there."""

    key: str
    classname: str
    name: str
    area: str
    cells: tuple[Cell | None, ...]
    outcomes: tuple[str, ...]  # per env, MISSING where the cell is None (computed once, read by every renderer)
    codes: str  # the same as one LETTER per env ("PPFM"): cheap to scan, embed and compare
    times: tuple[float | None, ...]  # seconds per env, None where missing
    time_texts: str  # the input time texts joined by "," ("" where missing), for the HTML data
    divergent: bool

    def outcome(self, i: int) -> str:
        return self.outcomes[i]

    @property
    def problem(self) -> bool:
        """Some env failed, errored, crashed or strictly xpassed this check."""
        return any(o in PROBLEMS for o in self.outcomes)

    @property
    def consensus(self) -> str:
        """The outcome of a non-divergent row (`unavailable` only when no env had the device)."""
        for outcome in self.outcomes:
            if outcome != UNAVAILABLE:
                return outcome
        return UNAVAILABLE


@dataclass
class EnvColumn:
    """One matrix column: the env's results and its summary over the matrix rows."""

    result: EnvResult
    counts: Counts

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def properties(self) -> dict[str, str]:
        return self.result.properties

    @property
    def status(self) -> str:
        """One word for the env: failed, incomplete, unavailable (nothing ran, device absent), idle (nothing ran
        for other reasons) or ok. Failures win: an incomplete env with failures is `failed` (and still incomplete)."""
        if self.counts.problems:
            return "failed"
        if self.result.incomplete:
            return "incomplete"
        if not self.counts.ran:
            return "unavailable" if self.counts.unavailable else "idle"
        return "ok"


@dataclass
class Matrix:
    """Checks x envs, built once by `matrix.build_matrix`; every renderer only formats it."""

    envs: list[EnvColumn]
    rows: list[Row]  # divergent rows first, then grouped by area
    warnings: list[InputWarning] = field(default_factory=list)
    absent_envs: list[str] = field(default_factory=list)  # named by --expect, no file found
    generated_at: str = ""
    generator: str = ""
    baseline: BaselineDiff | None = None  # set when --baseline was given

    @property
    def areas(self) -> list[str]:
        return sorted({r.area for r in self.rows})

    @property
    def divergent(self) -> int:
        return sum(1 for r in self.rows if r.divergent)

    @property
    def totals(self) -> Counts:
        return sum((e.counts for e in self.envs), Counts())

    @property
    def failed_envs(self) -> list[str]:
        return [e.name for e in self.envs if e.counts.problems]
