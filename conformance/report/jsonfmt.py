"""compatibility.json: the matrix for machines (dashboards, `--baseline` of the next run).

Layout (format 3)::

    {
      "format": 3,
      "generator": "conformance 0.1.0", "generated_at": "2026-01-01T00:00:00+00:00",
      "outcomes": ["passed", "failed", ...],          # every outcome name, display order
      "envs": [{"name": "cuda", "file": "reports/cuda.xml", "files": 1, "sha256": "...", "incomplete": "",
                "properties": {"torch_version": "...", ...},   # suite properties as written by the plugin
                "counts": {"passed": 41, ..., "missing": 0}, "total": 48,
                "time": 12.5,                         # seconds; null when the sum overflows a float
                "stepcost": [{"schedule", "world", "step_ms", "ideal_ms", "bubble", "bubble_theory",
                              "peak_bytes": {rank: n}, ...,     # only envs with step costs (report/stepcost.py)
                              "traced_step_ms", "achievable_ms", "efficiency",  # where the check has a trace
                              "decomposition": {rank: {"F", "I", "W", "B", "wait", "overhead", "idle", "window",
                                                       "actions"}},             # ms (report/decompose.py)
                              "inflation"?: {"factor", "I_us", "W_us", "B_us", "F_ratio", "reference"}}],
                "traces": ["test_behaviour_dependencies[...]"]}],  # only envs with traces; the properties
                                                      # `stepcost:*`/`trace:*` themselves are left out
      "absent_envs": ["xpu"],                         # --expect names without a file
      "totals": {"passed": ..., ...},                 # sum of the env counts
      "checks": 48, "divergent": 5,
      "rows": [{"id": "test_split::test_x[a]", "area": "split", "divergent": true,
                "cells": {                            # only the envs that have the check (sparse)
                  "cpu": {"outcome": "passed", "time": 0.01},
                  "cuda": {"outcome": "failed", "time": 0.2,
                           "message": "flaky: failed then passed; AssertionError: ...",  # only with a reason
                           "runs": ["failed", "passed"]}}}],   # only when the id ran more than once
      "warnings": [{"file": "reports/xpu.xml", "env": "xpu", "slug": "truncated", "problem": "..."}],
      "baseline": null | {"path": ..., "regressions": [{"env", "id", "before", "after"}], "lost": [...],
                          "fixes": [...], "new": [...], "removed": [...], "new_envs": [...], "removed_envs": [...],
                          "builds": [{"env", "field", "before", "after"}], "step_time"?: [{"env", "schedule",
                          "world", "before_ms", "after_ms", "growth"}]}
      "releases": {"axes": [{"device": "cpu", "device_count": "1", "device_names": "x86_64",
                             "releases": [{"release": "2.13", "torch",
                              "source", "envs": [...]}], "counts": {"newly_failing": 1, ...},
                    "checks": [{"id", "area", "status", "first_changed": "2.14" | null, "uncertain"?,
                                "outcomes": {"2.13": "passed", "2.14": "failed"}, "runs"?, "type", "first_line",
                                "repro"?}]}],
                   "mixed": null | {"releases", "devices", "sources", "divergent_by_device", "divergent_by_release",
                                    "divergent_undecided", "views": [{"kind", "fixed", "envs"}]}}
    }

Rows come divergent first, then by area. A check id is `classname::name`. An env without a cell in a row is
`missing` there. Messages are capped (head and tail kept, the cut said in the text).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from conformance.report import model as m
from conformance.report import releases, stepcost

# Changelog of FORMAT (bump on any change a reader could notice; readers check it):
#   1: first version.
#   2: rows are sparse: "cells" maps env name -> {"outcome", "time", "message"?, "runs"?} for the envs that have
#      the check, replacing the env-aligned "outcomes"/"times" lists and "messages"; "runs" lists every outcome
#      of an id repeated in one env; warnings carry a "slug"; envs carry "files"; an env "time" that overflows a
#      float is null (was Infinity, which is not JSON). Optional (readers of 2 ignore them): env "stepcost" and
#      "traces" where the suite measured them; "baseline"."step_time" where step times regressed; "baseline"."lost"
#      (coverage lost: passed/xfail -> unavailable, not run, missing, skipped, not applicable) and
#      "baseline"."builds" (device, device count, device names or torch that changed per env).
#   3: "releases" (report/releases.py): the version axes (envs of one device that differ in torch release) with
#      the release delta per check ("status", "first_changed" or null with "uncertain", "outcomes" per release,
#      "type", "first_line", "repro"), and "mixed" (the columns differ in device and in torch release or build:
#      how many divergent rows each axis explains, and the views that hold one axis fixed). Rows as in 2.
#      Env "stepcost" rows also carry the analysis of their trace (report/decompose.py): "traced_step_ms",
#      "decomposition", "achievable_ms", "efficiency" and, for split-backward schedules, "inflation"; and the
#      suite's "model" (the realistic tier's) where recorded.
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)  # what `--baseline` accepts


def _cells(row: m.Row, names: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, cell in row.cells.items():
        item: dict[str, Any] = {"outcome": cell.outcome, "time": cell.time}
        if cell.message:
            item["message"] = cell.message
        if cell.runs:
            item["runs"] = list(cell.runs)
        out[names[i]] = item
    return out


def to_data(matrix: m.Matrix) -> dict[str, Any]:
    names = [c.name for c in matrix.envs]
    rows = [{"id": row.key, "area": row.area, "divergent": row.divergent, "cells": _cells(row, names)}
            for row in matrix.rows]
    diff = matrix.baseline
    return {
        "format": FORMAT,
        "generator": matrix.generator,
        "generated_at": matrix.generated_at,
        "outcomes": list(m.OUTCOMES),
        "envs": [{"name": c.name, "file": c.result.path, "files": c.result.files, "sha256": c.result.sha256,
                  "incomplete": c.result.incomplete, "properties": c.metadata, **_stepcost(c),
                  "counts": c.counts.as_dict(), "total": c.counts.total, "time": _time(c.result)}
                 for c in matrix.envs],
        "absent_envs": matrix.absent_envs,
        "totals": matrix.totals.as_dict(),
        "checks": len(matrix.rows),
        "divergent": matrix.divergent,
        "rows": rows,
        "warnings": [{"file": w.path, "env": w.env, "slug": w.slug, "problem": w.problem} for w in matrix.warnings],
        "baseline": diff.to_data() if diff is not None else None,
        "releases": releases.to_data(releases.of(matrix)),
    }


def _stepcost(col: m.EnvColumn) -> dict[str, Any]:
    """The env's step costs and the names of its traced checks, only where there are any."""
    out: dict[str, Any] = {}
    if col.costs:
        analysis = stepcost.analysis(col)
        out["stepcost"] = [{"check": check, **asdict(cost), **analysis.get(check, {})} for check, cost in col.costs]
    if col.traces:
        out["traces"] = [name for name, _ in col.traces]
    return out


def _time(env: m.EnvResult) -> float | None:
    finite = env.time_finite
    return round(finite, 3) if finite is not None else None


def render_json(matrix: m.Matrix) -> str:
    # allow_nan=False: a non-finite number would be written as Infinity/NaN, which JSON readers reject.
    return json.dumps(to_data(matrix), ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
