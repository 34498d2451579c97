"""compatibility.json: the matrix for machines (dashboards, `--baseline` of the next run).

Layout (format 1)::

    {
      "format": 1,
      "generator": "conformance 0.1.0", "generated_at": "2026-01-01T00:00:00+00:00",
      "outcomes": ["passed", "failed", ...],          # every outcome name, display order
      "envs": [{"name": "cuda", "file": "reports/cuda.xml", "sha256": "...", "incomplete": "",
                "properties": {"torch_version": "...", ...},   # suite properties as written by the plugin
                "counts": {"passed": 41, ..., "missing": 0}, "total": 48, "time": 12.5}],
      "absent_envs": ["xpu"],                         # --expect names without a file
      "totals": {"passed": ..., ...},                 # sum of the env counts
      "checks": 48, "divergent": 5,
      "rows": [{"id": "test_split::test_x[a]", "area": "split", "divergent": true,
                "outcomes": ["passed", "failed"],     # aligned with "envs"; "missing" where absent
                "times": [0.01, null],                # seconds, null where missing
                "messages": {"cuda": "AssertionError: ..."}}],   # only for cells with a reason
      "warnings": [{"file": "reports/xpu.xml", "env": "xpu", "problem": "..."}],
      "baseline": null | {"path": ..., "regressions": [{"env", "id", "before", "after"}], "fixes": [...],
                          "new": [...], "removed": [...], "new_envs": [...], "removed_envs": [...]}
    }

Rows come divergent first, then by area. A check id is `classname::name`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from conformance.report import model as m

_NOTABLE = re.compile(f"[^{m.LETTER[m.PASSED]}{m.LETTER[m.MISSING]}]")
_start = re.Match.start

# Changelog of FORMAT (bump on any change a reader could notice; readers check it):
#   1: first version.
FORMAT = 1


def to_data(matrix: m.Matrix) -> dict[str, Any]:
    names = [c.name for c in matrix.envs]
    rows = []
    for row in matrix.rows:
        cells = row.cells
        item: dict[str, Any] = {"id": row.key, "area": row.area, "divergent": row.divergent,
                                "outcomes": row.outcomes, "times": row.times}
        # Passed and missing cells carry no message: let the regex engine skip them.
        notable = [(i, cells[i]) for i in map(_start, _NOTABLE.finditer(row.codes))]
        messages = {names[i]: c.message for i, c in notable if c is not None and c.message}
        if messages:
            item["messages"] = messages
        rows.append(item)
    diff = matrix.baseline
    return {
        "format": FORMAT,
        "generator": matrix.generator,
        "generated_at": matrix.generated_at,
        "outcomes": list(m.OUTCOMES),
        "envs": [{"name": c.name, "file": c.result.path, "sha256": c.result.sha256,
                  "incomplete": c.result.incomplete, "properties": c.properties,
                  "counts": c.counts.as_dict(), "total": c.counts.total, "time": round(c.result.time, 3)}
                 for c in matrix.envs],
        "absent_envs": matrix.absent_envs,
        "totals": matrix.totals.as_dict(),
        "checks": len(matrix.rows),
        "divergent": matrix.divergent,
        "rows": rows,
        "warnings": [{"file": w.path, "env": w.env, "problem": w.problem} for w in matrix.warnings],
        "baseline": diff.to_data() if diff is not None else None,
    }


def render_json(matrix: m.Matrix) -> str:
    return json.dumps(to_data(matrix), ensure_ascii=False, separators=(",", ":")) + "\n"
