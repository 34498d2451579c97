"""Short plain-text summary of the matrix for stdout (one line per env, then baseline changes)."""

from __future__ import annotations

from conformance.report import model as m
from conformance.report.markdown import headline

_MAX_CHANGES = 20  # stdout is for a glance; the reports hold the full lists


def _build(col: m.EnvColumn) -> str:
    p = col.properties
    bits = [p.get("torch_version", ""), p.get("device_names") or p.get("device", ""), p.get("backend", "")]
    return " ".join(b for b in bits if b)


def summary_lines(matrix: m.Matrix) -> list[str]:
    lines = [f"conformance report: {headline(matrix)}"]
    width = max([len(c.name) for c in matrix.envs] + [len(n) for n in matrix.absent_envs] + [3])
    for col in matrix.envs:
        mark = {"failed": "FAIL", "incomplete": "INCOMPLETE", "unavailable": "N/A", "idle": "IDLE"}.get(col.status, "ok")
        build = _build(col)
        line = f"  {col.name:<{width}}  {mark:<4}  {col.counts.describe()}"
        if col.result.incomplete:
            line += f" [incomplete: {col.result.incomplete}]" if mark != "INCOMPLETE" else f" [{col.result.incomplete}]"
        if build:
            line += f"  ({build})"
        lines.append(line)
    for name in matrix.absent_envs:
        lines.append(f"  {name:<{width}}  MISSING  expected, but no results file")
    diff = matrix.baseline
    if diff is not None:
        lines.append(f"baseline {diff.path}: {diff.summary()}")
        for title, changes in (("regressed", diff.regressions), ("fixed", diff.fixes)):
            for c in changes[:_MAX_CHANGES]:
                lines.append(f"  {title}: {c.env} {c.id}: {c.before} -> {c.after}")
            if len(changes) > _MAX_CHANGES:
                lines.append(f"  ... {len(changes) - _MAX_CHANGES} more {title} (see the reports)")
    return lines
