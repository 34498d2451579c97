"""GitHub Actions annotations of the matrix: `::error`, `::warning` and `::notice` workflow commands, one a line.

Printed on stdout in a workflow step, each line becomes an annotation of the run and of the pull request's checks,
with no token and no third-party action. Most important first, since GitHub shows only the first few of a step:
regressions against --baseline, then every other failed, error, crashed or strict-XPASS cell (`::error`, title
`<env>: <check id>`, the reason's first line, the torch build and the `conformance repro` line); lost coverage per
env and input warnings (`::warning`); last one `::notice` with the totals and how many were left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from conformance.report import model as m
from conformance.report.inert import safe_line
from conformance.report.releases import first_line
from conformance.report.view import headline, repro_for

# GitHub shows at most 10 error and 10 warning annotations per step (50 per job) and drops the rest of a step's
# silently. Source: actions/toolkit docs/problem-matchers.md, "Limitations" (added by actions/toolkit#734, 2021), the
# limit users still meet in github.com/orgs/community/discussions/68471 (2023-2024). So no more than this many of a
# kind are printed, the most important first, and the notice counts the rest.
PER_STEP = 10
TITLE_CHARS = 255  # the longest annotation title GitHub's Checks API takes
LINE_CHARS = 1_000  # one line of a message (a 100 kB check id must not make a 100 kB annotation)
LOST_LISTED = 5  # checks named in one env's lost-coverage warning; the job summary lists them all
WHERE = "the job summary and the compatibility-report artifact"


def escape_data(text: str) -> str:
    """Message data as GitHub's runner decodes it: `%` first, then CR and LF (actions/toolkit core `escapeData`,
    actions/runner `ActionCommand`). With CR and LF encoded the command stays one line, so nothing in it can start
    another workflow command or stop command processing."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (`title=`, `file=`): data escaping plus `:` and `,`, which would end the value
    (actions/toolkit core `escapeProperty`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _cap(text: str, limit: int) -> str:
    """`text`, or its head and tail around "…" when longer than `limit` characters (ids differ at their end)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


@dataclass(frozen=True)
class Annotation:
    """One workflow command: its kind, a title and the lines of its message (input text in them still raw)."""

    kind: str  # error, warning or notice
    title: str
    lines: tuple[str, ...]

    def command(self) -> str:
        """`::<kind> title=<title>::<message>`: every piece made inert first (control characters escaped, no log
        command at its start: inert.safe_line, shared with the console), then escaped as GitHub reads it back."""
        title = escape_property(_cap(safe_line(self.title), TITLE_CHARS))
        message = "\n".join(_cap(safe_line(line), LINE_CHARS) for line in self.lines)  # \n: a line of the message
        return f"::{self.kind} title={title}::{escape_data(message)}"


def _move(before: str, after: str) -> str:
    """'passed -> not run': outcomes as the reports label them."""
    return f"{m.LABEL.get(before, before)} -> {m.LABEL.get(after, after)}"


def _cell_error(matrix: m.Matrix, e: int, row: m.Row, change: m.Change | None) -> Annotation:
    col = matrix.envs[e]
    cell = row.cells[e]
    assert cell is not None  # a failed cell is a present one
    lines = [f"regression against the baseline: {_move(change.before, change.after)}"] if change else []
    lines.append(first_line(cell) or f"{m.LABEL[cell.outcome]}, no message")
    outcome = m.LABEL[cell.outcome] + (f" (runs: {' then '.join(cell.runs)})" if cell.runs else "")  # a rerun id
    torch = col.build.torch_version
    lines.append(f"{outcome} on torch {torch}" if torch else f"{outcome} (the env recorded no torch version)")
    repro = repro_for(row.key, cell, col)
    if repro:
        lines.append(f"reproduce: {repro}")
    return Annotation("error", f"{col.name}: {row.key}", tuple(lines))


def _failed_cells(matrix: m.Matrix) -> list[tuple[int, m.Row, m.Change | None]]:
    """(env index, row, baseline change) of every problem cell: the regressions first, in the baseline's order,
    then the others in matrix order (rows with a failure come first there)."""
    index = {c.name: i for i, c in enumerate(matrix.envs)}
    out: list[tuple[int, m.Row, m.Change | None]] = []
    seen: set[tuple[int, str]] = set()
    regressions = matrix.baseline.regressions if matrix.baseline is not None else []
    if regressions:
        rows = {r.key: r for r in matrix.rows}
        for change in regressions:
            e, row = index.get(change.env), rows.get(change.id)
            if e is not None and row is not None and row.cells[e] is not None:
                out.append((e, row, change))
                seen.add((e, row.key))
    problem_letters = {m.LETTER[o] for o in m.PROBLEMS}
    for row in matrix.rows:
        if not row.problem:  # one set() of the codes in C, not a Python loop over every cell
            continue
        for e, code in enumerate(row.codes):
            if code in problem_letters and (e, row.key) not in seen:
                out.append((e, row, None))
    return out


def _lost_warnings(diff: m.BaselineDiff) -> Iterator[Annotation]:
    """One warning per env that lost coverage: the checks that ran in the baseline and do not run now."""
    by_env: dict[str, list[m.Change]] = {}
    for change in diff.lost:
        by_env.setdefault(change.env, []).append(change)
    allowed = " (allowed by --allow-lost-coverage)" if diff.lost_allowed else ""
    for env, changes in by_env.items():
        if len(changes) == 1:
            c = changes[0]
            yield Annotation("warning", f"{env}: {c.id}",
                             (f"lost coverage against the baseline{allowed}: {_move(c.before, c.after)}",))
            continue
        moves = Counter(_move(c.before, c.after) for c in changes)
        lines = [f"lost coverage against the baseline{allowed}: " + ", ".join(f"{n} {move}" for move, n in
                                                                               moves.items())]
        lines += [f"{c.id}: {_move(c.before, c.after)}" for c in changes[:LOST_LISTED]]
        if len(changes) > LOST_LISTED:
            lines.append(f"... and {len(changes) - LOST_LISTED} more in {WHERE}")
        yield Annotation("warning", f"{env}: {len(changes)} checks lost coverage", tuple(lines))


def _input_warnings(matrix: m.Matrix) -> Iterator[Annotation]:
    for w in matrix.warnings:
        yield Annotation("warning", f"warning[{w.slug}]: {w.path}", (w.problem,))


def _left_out(errors: int, warnings: int) -> str:
    gone = [f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in ((errors, "error"), (warnings, "warning")) if n]
    if not gone:
        return "nothing left out of these annotations"
    return (f"left out of these annotations: {' and '.join(gone)} (GitHub shows {PER_STEP} errors and "
            f"{PER_STEP} warnings per step)")


def collect(matrix: m.Matrix) -> list[Annotation]:
    """The annotations to print, in order: at most PER_STEP errors, at most PER_STEP warnings, then the notice."""
    failed = _failed_cells(matrix)
    errors = [_cell_error(matrix, e, row, change) for e, row, change in failed[:PER_STEP]]
    every_warning = [*(_lost_warnings(matrix.baseline) if matrix.baseline is not None else ()),
                     *_input_warnings(matrix)]
    warnings = every_warning[:PER_STEP]
    diff = matrix.baseline
    cells = matrix.totals.problems
    lines = [headline(matrix),
             f"{cells} failed cell{'s' if cells != 1 else ''} (failed, error, crashed or strict xpass)"
             + (f"; baseline: {diff.summary()}" if diff is not None else ""),
             _left_out(len(failed) - len(errors), len(every_warning) - len(warnings)),
             f"every cell and message: {WHERE}"]
    return [*errors, *warnings, Annotation("notice", "conformance report", tuple(lines))]


def render_annotations(matrix: m.Matrix) -> str:
    """The workflow commands, one a line (`conformance report --format github`, reports/annotations.txt)."""
    return "".join(a.command() + "\n" for a in collect(matrix))
