"""Plain-text lines for the terminal and CI logs: the matrix summary, warnings, all input text neutralised."""

from __future__ import annotations

from conformance.report import model as m
from conformance.report import releases, stepcost
from conformance.report.inert import safe_line
from conformance.report.view import headline

_MAX_CHANGES = 20  # stdout is for a glance; the reports hold the full lists


def warning_line(w: m.InputWarning) -> str:
    """`warning[duplicate]: reports/cuda.xml: 2 check ids appear more than once (...)`."""
    return safe_line(f"warning[{w.slug}]: {w.path}: {w.problem}")


def _build(col: m.EnvColumn) -> str:
    b = col.build
    return " ".join(x for x in (b.torch_version, b.device_names or b.device, b.backend) if x)


_MARK = {"failed": "FAIL", "incomplete": "INCOMPLETE", "unavailable": "N/A", "idle": "IDLE"}


def _env_line(col: m.EnvColumn, width: int) -> str:
    mark = _MARK.get(col.status, "ok")
    line = f"  {col.name:<{width}}  {mark:<4}  {col.counts.describe()}"
    if col.result.incomplete:
        line += f" [incomplete: {col.result.incomplete}]" if mark != "INCOMPLETE" else f" [{col.result.incomplete}]"
    build = _build(col)
    if build:
        line += f"  ({build})"
    return line


def _baseline_lines(diff: m.BaselineDiff) -> list[str]:
    lines = [f"baseline {diff.path}: {diff.summary()}"]
    for env in dict.fromkeys(b.env for b in diff.builds):
        lines.append(f"  changed: {env} ran on another build or machine than in the baseline: "
                     f"{'; '.join(b.describe() for b in diff.changed(env))}")
    for title, changes in (("regressed", diff.regressions), ("lost coverage", diff.lost), ("fixed", diff.fixes)):
        for c in changes[:_MAX_CHANGES]:
            lines.append(f"  {title}: {c.env} {c.id}: {c.before} -> {c.after}")
        if len(changes) > _MAX_CHANGES:
            lines.append(f"  ... {len(changes) - _MAX_CHANGES} more {title} (see the reports)")
    return lines


def summary_lines(matrix: m.Matrix) -> list[str]:
    """Headline, one line per env (and per absent env), then baseline changes; every line made inert."""
    lines = [f"conformance report: {headline(matrix)}"]
    width = max([len(c.name) for c in matrix.envs] + [len(n) for n in matrix.absent_envs] + [3])
    lines += [_env_line(col, width) for col in matrix.envs]
    lines += [f"  {name:<{width}}  MISSING  expected, but no results file" for name in matrix.absent_envs]
    if matrix.baseline is not None:
        lines += _baseline_lines(matrix.baseline)
    lines += stepcost.summary_lines(matrix)
    lines += releases.summary_lines(releases.of(matrix))
    return [safe_line(line) for line in lines]
