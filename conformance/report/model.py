"""Data model of the cross-device report: outcomes, counts, cells, env results, rows and the matrix."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from conformance.protocol.properties import BuildRecord
from conformance.protocol.stepcost import StepCost, Trace, is_payload, read_costs, read_traces

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
        return NotImplemented

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
    # Outcome of every run in file order when the id was repeated in one env (`go test -count=2`, reruns);
    # () for the usual single run. The cell's own outcome is then the combined one (matrix.combine_runs).
    runs: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.classname}::{self.name}"


# Input warning slugs: stable ids shown as `warning[<slug>]` on stderr and as "slug" in the JSON, so `--strict`
# and dashboards can select them. Renaming one is a breaking change (README "The cross-device report").
W_NO_SUCH_FILE = "no-such-file"  # an argument names no file, folder or glob match
W_NAMED_TWICE = "named-twice"  # the same file reached through two arguments
W_NOT_A_FILE = "not-a-file"  # a device, fifo or folder where a JUnit file was expected
W_SYMLINK_LOOP = "symlink-loop"  # a symlink that resolves to itself
W_UNREADABLE = "unreadable"  # the OS refused to read it
W_DUPLICATE_FILE = "duplicate-file"  # byte-identical to an earlier input
W_EMPTY = "empty"  # zero bytes or only whitespace
W_NOT_JUNIT = "not-junit"  # root element is not <testsuites>/<testsuite>
W_MERGED_INPUT = "merged-input"  # our own merged.xml given as an input
W_TRUNCATED = "truncated"  # XML ends early: the file is cut or still being written
W_MALFORMED = "malformed"  # XML error other than an early end
W_RECOVERED = "recovered"  # not well-formed, repaired where the damage was local (control characters, one testcase)
W_ENCODING = "encoding"  # bytes that are not valid UTF-8
W_TRAILING = "trailing-content"  # content after the root element
W_TOTALS = "totals"  # declared suite totals disagree with the testcases
W_FEWER = "fewer-cases"  # a well-formed file holds fewer testcases than its suites declare
W_BAD_TIME = "bad-time"  # a testcase time that is no non-negative number
W_NO_TESTS = "no-tests"  # a JUnit file without testcases
W_IN_PROGRESS = "in-progress"  # .partial / .lock / .journal beside (or instead of) a results file
W_DUPLICATE = "duplicate"  # a check id repeated inside one env (reruns, `go test -count=N`)
W_EXPECTED = "expected-env"  # an env named by --expect has no results file
W_RELEASE_NAME = "release-name"  # a version column whose name is no release, or names another than it ran
W_RELEASE_TWICE = "release-twice"  # two columns of one device and torch release on a version axis
W_RELEASE_DEVICE = "release-device"  # a column named for one device's version axis that ran on another device
WARNING_SLUGS: tuple[str, ...] = (
    W_NO_SUCH_FILE, W_NAMED_TWICE, W_NOT_A_FILE, W_SYMLINK_LOOP, W_UNREADABLE, W_DUPLICATE_FILE, W_EMPTY,
    W_NOT_JUNIT, W_MERGED_INPUT, W_TRUNCATED, W_MALFORMED, W_RECOVERED, W_ENCODING, W_TRAILING, W_TOTALS, W_FEWER,
    W_BAD_TIME, W_NO_TESTS, W_IN_PROGRESS, W_DUPLICATE, W_EXPECTED, W_RELEASE_NAME, W_RELEASE_TWICE, W_RELEASE_DEVICE,
)
# Warnings that fail the report by default (exit 4, not only under --strict): an input that lost testcases would
# otherwise read green. `--allow-warnings <slug>` lets one pass.
INCOMPLETE_SLUGS: frozenset[str] = frozenset({W_TRUNCATED, W_FEWER})


@dataclass
class InputWarning:
    """A problem with one input (or a missing one): printed on stderr, listed in every report."""

    path: str
    problem: str
    env: str | None = None
    slug: str = W_MALFORMED  # one of WARNING_SLUGS

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


# Longest message and detail text a cell keeps (the input's full text still goes into merged.xml): a 10 MB
# assertion message must not reach the HTML, the JSON or the memory of every renderer whole.
MESSAGE_LIMIT = 4_000
DETAIL_LIMIT = 16_000


def cap_text(text: str, limit: int) -> str:
    """`text` when it fits, else its head and tail around a line that says how much was cut."""
    if len(text) <= limit:
        return text
    head = limit // 4  # the start names the error, the end of a traceback says the most
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut:,} characters cut by conformance report ...]\n{text[-tail:]}"


def exact_seconds_sum(times: list[float]) -> Decimal:
    """Sum of durations without float overflow: a few absurd times (1e308 s) must not turn a total into inf."""
    return sum((Decimal(t) for t in times), Decimal(0))


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

    files: int = 1  # JUnit files grouped into this env (Surefire writes one per class)
    member_paths: list[str] = field(default_factory=list)  # the grouped files when `path` is their folder

    @functools.cached_property
    def time(self) -> float:
        """Sum of the testcase times (read once the cases are complete; renderers ask several times); inf when
        the sum overflows a float (see `time_exact`)."""
        return sum(c.time for c in self.cases)

    @property
    def time_finite(self) -> float | None:
        """`time` when it is a finite float, else None (JSON has no Infinity)."""
        return self.time if math.isfinite(self.time) else None

    def time_exact(self) -> Decimal:
        """The summed time as an exact decimal, also when a float sum overflows."""
        if math.isfinite(self.time):
            return Decimal(repr(self.time))
        return exact_seconds_sum([c.time for c in self.cases])


class Cells(dict[int, Cell]):
    """A row's cells by env index, only where present; indexing an absent env gives None (a missing cell)."""

    __slots__ = ()

    def __missing__(self, key: int) -> None:
        return None


@dataclass(slots=True)
class Row:
    """One check across all envs, stored sparsely: `cells` holds only the envs that have the check.

    `codes` keeps one LETTER per env (`Matrix.envs` order, M where missing): one byte a cell, what the renderers
    scan and embed; every other per-env view is derived from it and `cells`.
    """

    key: str
    classname: str
    name: str
    area: str
    cells: Cells  # env index -> cell, only where present; cells[i] is None where missing
    codes: str  # one LETTER per env ("PPFM"): cheap to scan, embed and compare
    divergent: bool

    def outcome(self, i: int) -> str:
        return FROM_LETTER[self.codes[i]]

    def cell(self, i: int) -> Cell | None:
        return self.cells.get(i)

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Outcome per env, MISSING where absent."""
        return tuple(FROM_LETTER[c] for c in self.codes)

    @property
    def times(self) -> tuple[float | None, ...]:
        """Seconds per env, None where missing."""
        cells = self.cells
        return tuple(cells[i].time if i in cells else None for i in range(len(self.codes)))

    @property
    def time_texts(self) -> str:
        """The input time texts joined by "," ("" where missing), for the HTML data."""
        cells = self.cells
        return ",".join([(cells[i].time_text or f"{cells[i].time:g}") if i in cells else ""
                         for i in range(len(self.codes))])

    @property
    def problem(self) -> bool:
        """Some env failed, errored, crashed or strictly xpassed this check."""
        return any(FROM_LETTER[c] in PROBLEMS for c in set(self.codes))

    @property
    def consensus(self) -> str:
        """The outcome of a non-divergent row (`unavailable` only when no env had the device)."""
        for code in self.codes:
            if code != LETTER[UNAVAILABLE]:
                return FROM_LETTER[code]
        return UNAVAILABLE


# Display order of schedules: the suite's (conformance.suite.ranks.schedules.SCHEDULES); unknown names after, by name.
SCHEDULE_ORDER = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B", "ScheduleLoopedBFS",
                  "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")


def schedule_rank(name: str) -> tuple[int, str]:
    return (SCHEDULE_ORDER.index(name) if name in SCHEDULE_ORDER else len(SCHEDULE_ORDER), name)


@dataclass(frozen=True)
class StepRegression:
    """A schedule x world of one env whose step time grew beyond the threshold over the baseline's."""

    env: str
    schedule: str
    world: int
    before_ms: float
    after_ms: float
    growth: float  # after / before - 1


def _trace_rank(check: str) -> int:
    return 0 if check.startswith("test_step_tier") else 1 if check.startswith("test_step_cost") else 2


@dataclass
class EnvColumn:
    """One matrix column: the env's results, its summary over the matrix rows and its suite properties parsed once
    (renderers read these typed fields, never property keys)."""

    result: EnvResult
    counts: Counts
    build: BuildRecord = field(init=False)
    metadata: dict[str, str] = field(init=False)  # the properties without step costs and traces, in file order
    costs: list[tuple[str, StepCost]] = field(init=False)  # (check, step cost), by schedule then world
    traces: list[tuple[str, Trace]] = field(init=False)  # (check, trace), the informative ones first

    def __post_init__(self) -> None:
        props = self.result.properties
        self.build = BuildRecord.from_properties(props)
        self.metadata = {k: v for k, v in props.items() if not is_payload(k)}
        # By check family (the step-cost model, then the realistic tier), then schedule and world.
        self.costs = sorted(read_costs(props), key=lambda c: (c[0].split("[", 1)[0], schedule_rank(c[1].schedule),
                                                              c[1].world))
        # Step-cost traces (the realistic tier's, then the step-cost model's: compute-bound models on the device)
        # first, the widest world first: the informative ones.
        self.traces = sorted(read_traces(props), key=lambda t: (_trace_rank(t[0]), -t[1].world,
                                                               schedule_rank(t[1].schedule), t[0]))

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


@dataclass(frozen=True)
class BuildChange:
    """One build or hardware field of an env that differs between the baseline and this run."""

    env: str
    field: str  # a BuildRecord field name (device_count, torch_version, ...)
    before: str
    after: str

    def describe(self) -> str:
        return f"{self.field.replace('_', ' ')} {self.before or '(none)'} -> {self.after or '(none)'}"


@dataclass(frozen=True)
class Change:
    """One check whose outcome moved between the baseline and this run."""

    env: str
    id: str
    before: str
    after: str


@dataclass
class BaselineDiff:
    """Per-env changes between the baseline and this run."""

    path: str
    regressions: list[Change] = field(default_factory=list)  # passed -> failed/error/crashed
    lost: list[Change] = field(default_factory=list)  # passed/xfail -> unavailable/not run/missing/skipped/n/a
    fixes: list[Change] = field(default_factory=list)  # failed/error/crashed/xpass -> passed
    new: list[Change] = field(default_factory=list)  # check absent from the baseline of that env
    removed: list[Change] = field(default_factory=list)  # check gone from every env of this run
    new_envs: list[str] = field(default_factory=list)
    removed_envs: list[str] = field(default_factory=list)
    step_time: list[StepRegression] = field(default_factory=list)  # step-time regressions (report/stepcost.py)
    builds: list[BuildChange] = field(default_factory=list)  # device, device count, torch that changed per env
    step_before: dict[str, dict[tuple[str, int], float]] = field(default_factory=dict)  # env -> (schedule, world) -> ms
    lost_allowed: bool = False  # --allow-lost-coverage: lost coverage is listed but does not gate

    def changed(self, env: str) -> list[BuildChange]:
        """The build changes of one env (its step times then compare two different machines or builds)."""
        return [b for b in self.builds if b.env == env]

    @property
    def gating(self) -> bool:
        """Whether this diff fails the report (exit REGRESSION): a regression, or lost coverage not allowed."""
        return bool(self.regressions) or (bool(self.lost) and not self.lost_allowed)

    def to_data(self) -> dict[str, Any]:
        def rows(changes: list[Change]) -> list[dict[str, str]]:
            return [{"env": c.env, "id": c.id, "before": c.before, "after": c.after} for c in changes]

        return {"path": self.path, "regressions": rows(self.regressions), "lost": rows(self.lost),
                "fixes": rows(self.fixes), "new": rows(self.new), "removed": rows(self.removed),
                "new_envs": self.new_envs, "removed_envs": self.removed_envs,
                "builds": [{"env": b.env, "field": b.field, "before": b.before, "after": b.after}
                           for b in self.builds],
                **({"step_time": [asdict(r) for r in self.step_time]} if self.step_time else {})}

    def summary(self) -> str:
        lost = f" ({'allowed' if self.lost_allowed else 'gating'})" if self.lost else ""
        return (f"{len(self.regressions)} regressions, {len(self.lost)} lost coverage{lost}, {len(self.fixes)} fixes, "
                f"{len(self.new)} new, {len(self.removed)} removed")


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
    releases: Any = None  # report/releases.py ReleaseReport (version axes, release delta), set by releases.attach

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
