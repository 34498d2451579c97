"""Step cost in the report, renderer-free: table cells, step-time regressions and the Chrome-trace files.

The suite writes step costs and traces as suite-level JUnit properties (`conformance.protocol.stepcost`); the model
parses them once per env column (`EnvColumn.costs`, `EnvColumn.traces`). This module turns them into what every
renderer shows alike (the table's cell texts), compares step times with the baseline's, and writes one Chrome-trace
(Perfetto) file per trace beside the report. HTML and Markdown draw the tables themselves.

Step-time regressions against `--baseline`: a schedule x world whose step time grew by more than
STEP_REGRESSION (10 %) and at least STEP_REGRESSION_MIN_MS (0.5 ms) over the baseline's, in the same env. Listed,
never an exit status: timings move with clocks and neighbours, outcomes do not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conformance.output import write_text
from conformance.protocol.stepcost import StepCost, Trace
from conformance.report import decompose
from conformance.report import model as m

STEP_REGRESSION = 0.10
STEP_REGRESSION_MIN_MS = 0.5
TRACE_DIR = "traces"

StepTimes = dict[str, dict[tuple[str, int], float]]  # env -> (schedule, world) -> step ms


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "—"


HEAD = ["schedule", "world", "step ms", "ideal ms", "bubble measured", "bubble theory", "peak GiB per rank",
        "achievable ms", "efficiency", "split inflation"]
DEFINITIONS = decompose.DEFINITIONS  # shown verbatim above the tables (README "Step cost in the report")
FAMILIES = {"test_step_cost": "step-cost model: 4 x Linear(8192)+GELU per rank, bf16, 8 microbatches of (256, 8192)",
            "test_step_tier": "realistic tier"}


def row_cells(cost: StepCost, analysis: dict[str, Any] | None = None) -> list[str]:
    """The step-cost table's cell texts for one schedule x world, in HEAD order (`analysis`: the check's entry of
    `EnvColumn.analysis`; without one the last three cells read '—')."""
    peaks = cost.peak_bytes
    peak = " / ".join(_gib(peaks[r]) for r in sorted(peaks, key=int))
    a = analysis or {}
    achievable, inflation = a.get("achievable_ms"), (a.get("inflation") or {}).get("factor")
    return [cost.schedule, str(cost.world), f"{cost.step_ms:.2f}", f"{cost.ideal_ms:.2f}", _pct(cost.bubble),
            _pct(cost.bubble_theory), peak, f"{achievable:.2f}" if achievable is not None else "—",
            _pct(a.get("efficiency")), f"{inflation:.2f}x" if inflation is not None else "—"]


def tables(costs: list[tuple[str, StepCost]]) -> list[tuple[str, list[tuple[str, StepCost]]]]:
    """(caption, rows) per check family in the env's order: the step-cost model's table, then the realistic tier's
    (its caption names the model the suite recorded)."""
    out: dict[str, list[tuple[str, StepCost]]] = {}
    for check, cost in costs:
        out.setdefault(check.split("[", 1)[0], []).append((check, cost))
    captions = []
    for family, rows in out.items():
        caption = FAMILIES.get(family, family)
        model = next((c.model for _, c in rows if c.model), "")
        captions.append((f"{caption}: {model}" if model else caption, rows))
    return captions


def bar_segments(analysis: dict[str, Any]) -> list[tuple[str, float]]:
    """The stacked bar of one schedule x world: (part, ms) in decompose.PARTS order, the mean over ranks."""
    parts = decompose.mean_parts(analysis.get("decomposition") or {})
    return [(k, parts[k]) for k in decompose.PARTS if parts.get(k)]


def _key(check: str, cost: StepCost) -> tuple[str, int]:
    """(schedule, world); the realistic tier's rows name their family after the schedule, so a baseline never
    compares the tier's step with the step-cost model's."""
    family = check.split("[", 1)[0]
    return (f"{cost.schedule} [{family}]" if family == "test_step_tier" else cost.schedule, cost.world)


def analysis(col: m.EnvColumn) -> dict[str, dict[str, Any]]:
    """check -> decomposition, achievable step, efficiency and split inflation of the env's traced step costs."""
    return decompose.for_env(col.costs, col.traces)


def step_times(costs: list[tuple[str, StepCost]]) -> dict[tuple[str, int], float]:
    """(schedule, world) -> step ms of an env's step costs."""
    return {_key(check, c): c.step_ms for check, c in costs}


def regressions(matrix: m.Matrix, before: StepTimes) -> list[m.StepRegression]:
    """Step times that grew by more than STEP_REGRESSION and STEP_REGRESSION_MIN_MS over the baseline's."""
    out = []
    for col in matrix.envs:
        old = before.get(col.name, {})
        for check, cost in col.costs:
            key = _key(check, cost)
            if key not in old:
                continue
            was, now = old[key], cost.step_ms
            if was > 0 and now - was > max(STEP_REGRESSION * was, STEP_REGRESSION_MIN_MS):
                out.append(m.StepRegression(col.name, key[0], key[1], was, now, now / was - 1))
    return out


def describe(r: m.StepRegression) -> str:
    """'cuda Schedule1F1B world 2: 10.00 -> 14.19 ms (+42%'; the caller closes the parenthesis."""
    return f"{r.env} {r.schedule} world {r.world}: {r.before_ms:.2f} -> {r.after_ms:.2f} ms (+{r.growth:.0%}"


def summary_lines(matrix: m.Matrix) -> list[str]:
    """The console's lines for step-time regressions against --baseline (none without any)."""
    regress = matrix.baseline.step_time if matrix.baseline else []
    return [f"  step time  {describe(r)}, threshold {STEP_REGRESSION:.0%} and {STEP_REGRESSION_MIN_MS:g} ms)"
            for r in regress]


def chrome_trace(env: str, name: str, trace: Trace) -> dict[str, Any]:
    """Chrome trace event format (Perfetto, chrome://tracing): one thread per rank, complete events in us."""
    events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"{env} {name}"}}]
    for r, acts in sorted(trace.ranks.items(), key=lambda kv: int(kv[0])):
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": int(r), "args": {"name": f"rank {r}"}})
        for s, k, mb, a, b in acts:
            events.append({"name": f"{k}{mb} stage {s}", "cat": k, "ph": "X", "pid": 0, "tid": int(r),
                           "ts": a, "dur": max(0, b - a), "args": {"stage": s, "kind": k, "microbatch": mb}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "metadata": {"schedule": trace.schedule, "world": trace.world, "env": env}}


def trace_file_name(env: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{env}-{name}").strip("_") + ".json"


def trace_path(env: str, name: str) -> str:
    """Where the trace file of `name` in `env` lies, relative to the report (the HTML links it)."""
    return f"{TRACE_DIR}/{trace_file_name(env, name)}"


def write_chrome_traces(matrix: m.Matrix, out_dir: Path) -> list[Path]:
    """One Chrome-trace JSON per traced check and env under out_dir/traces/; returns the files written."""
    written = []
    for col in matrix.envs:
        for name, tr in col.traces:
            path = out_dir / TRACE_DIR / trace_file_name(col.name, name)
            write_text(path, json.dumps(chrome_trace(col.name, name, tr), separators=(",", ":")))
            written.append(path)
    return written
