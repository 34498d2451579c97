"""Step cost and measured traces in the report: tables, timelines, Chrome traces and step-time regressions.

The suite writes them as suite-level JUnit properties (the Jenkins schema forbids per-testcase ones):
`stepcost:<check>` = compact JSON {schedule, world, n_mb, steps, step_ms, ideal_ms, bubble, bubble_theory,
peak_bytes{rank}, base_bytes{rank}, device}; `trace:<check>` = {schedule, world, unit: "us",
ranks{rank: [[stage, kind, mb, start, end]]}}. This module reads them from an env's properties; the renderers call
it (HTML, Markdown, JSON) and the engine writes one Chrome-trace (Perfetto) file per trace beside the report.

Step-time regressions against `--baseline`: a schedule x world whose step time grew by more than
STEP_REGRESSION (10 %) and at least STEP_REGRESSION_MIN_MS (0.5 ms) over the baseline's, in the same env. Listed,
never an exit status: timings move with clocks and neighbours, outcomes do not.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from conformance.report import model as m
from conformance.report import timeline

STEPCOST, TRACE = "stepcost:", "trace:"
PREFIXES = (STEPCOST, TRACE)
STEP_REGRESSION = 0.10
STEP_REGRESSION_MIN_MS = 0.5
TRACE_DIR = "traces"
OPEN_TIMELINES = 3  # per env, the first timelines are drawn open; the others one click away


# Display order: the suite's (conformance.suite.ranks.schedules.SCHEDULES); unknown names after, by name.
ORDER = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B", "ScheduleLoopedBFS",
         "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")


def _order(name: Any) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), str(name))


def plain(props: dict[str, str]) -> dict[str, str]:
    """The properties without step costs and traces (those are shown as tables and timelines)."""
    return {k: v for k, v in props.items() if not k.startswith(PREFIXES)}


def _load(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def costs(props: dict[str, str]) -> list[dict[str, Any]]:
    """The env's step costs, by schedule then world."""
    out = []
    for k, v in props.items():
        if k.startswith(STEPCOST) and (d := _load(v)) is not None:
            out.append({"check": k[len(STEPCOST):], **d})
    return sorted(out, key=lambda d: (_order(d.get("schedule")), int(d.get("world") or 0)))


def traces(props: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(check, trace) of every measured trace of the env."""
    out = []
    for k, v in props.items():
        if k.startswith(TRACE) and (d := _load(v)) is not None and isinstance(d.get("ranks"), dict):
            out.append((k[len(TRACE):], d))
    # Step-cost traces (a compute-bound model on the device) first, the widest world first: the informative ones.
    return sorted(out, key=lambda t: (not t[0].startswith("test_step_cost"), -int(t[1].get("world") or 0),
                                      _order(t[1].get("schedule")), t[0]))


def env_json(props: dict[str, str]) -> dict[str, Any]:
    """The JSON's per-env additions: step costs and the names of the traced checks, only where there are any."""
    out: dict[str, Any] = {}
    if rows := costs(props):
        out["stepcost"] = rows
    if names := [name for name, _ in traces(props)]:
        out["traces"] = names
    return out


def _gib(n: Any) -> str:
    return f"{int(n) / 2**30:.2f}" if isinstance(n, (int, float)) else "-"


def _pct(x: Any) -> str:
    return f"{x:.0%}" if isinstance(x, (int, float)) else "—"


def row_cells(d: dict[str, Any]) -> list[str]:
    peaks = d.get("peak_bytes") or {}
    peak = " / ".join(_gib(peaks[r]) for r in sorted(peaks, key=int)) if isinstance(peaks, dict) else "-"
    return [str(d.get("schedule", "")), str(d.get("world", "")), f"{d.get('step_ms', 0):.2f}",
            f"{d.get('ideal_ms', 0):.2f}", _pct(d.get("bubble")), _pct(d.get("bubble_theory")), peak]


HEAD = ["schedule", "world", "step ms", "ideal ms", "bubble measured", "bubble theory", "peak GiB per rank"]


def markdown_lines(matrix: m.Matrix) -> list[str]:
    """A step-cost table per env that has step costs (nothing when none has)."""
    out: list[str] = []
    for col in matrix.envs:
        rows = costs(col.properties)
        if not rows:
            continue
        device = rows[0].get("device", "")
        out += [f"### Step cost: {col.name}" + (f" ({device})" if device else ""), "",
                "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        out += ["| " + " | ".join(row_cells(d)) + " |" for d in rows]
        out.append("")
    regress = (matrix.baseline and matrix.baseline.step_time) or []
    if regress:
        out += [f"### Step-time regressions ({len(regress)})", ""]
        out += [f"- {r['env']} {r['schedule']} world {r['world']}: {r['before_ms']:.2f} -> {r['after_ms']:.2f} ms "
                f"(+{r['growth']:.0%})" for r in regress]
        out.append("")
    return out


CSS = (".timeline{display:block;margin:4px 0 12px;font-family:sans-serif}.tl-key{display:inline-block;width:12px;"
       "height:12px;margin:0 4px 0 10px;vertical-align:middle}table.stepcost td,table.stepcost th{padding:2px 8px;"
       "text-align:right}table.stepcost td:first-child,table.stepcost th:first-child{text-align:left}")


def html_parts(matrix: m.Matrix) -> list[str]:
    """Per env: the step-cost table and a timeline per measured trace (nothing when no env has either)."""
    envs = [(c, costs(c.properties), traces(c.properties)) for c in matrix.envs]
    envs = [e for e in envs if e[1] or e[2]]
    regress = (matrix.baseline and matrix.baseline.step_time) or []
    if not envs and not regress:
        return []
    out = [f"<style>{CSS}</style>", ('<h2 id="stepcost">Step cost and measured timelines <span class="meta">from '
           "the behaviour checks' traces; Chrome traces in traces/ beside this file</span></h2>")]
    if regress:
        items = "".join(f"<li>{escape(r['env'])} {escape(r['schedule'])} world {r['world']}: {r['before_ms']:.2f} → "
                        f"{r['after_ms']:.2f} ms (+{r['growth']:.0%})</li>" for r in regress)
        out.append(f'<h3>Step-time regressions</h3><ul class="stepregress">{items}</ul>')
    for col, rows, trs in envs:
        out.append(f'<h3 class="stepcost-env">{escape(col.name)}</h3>')
        if rows:
            head = "".join(f"<th>{escape(h)}</th>" for h in HEAD)
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row_cells(d)) + "</tr>" for d in rows)
            out.append(f'<table class="stepcost"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        if trs:
            out.append(timeline.legend())
            for i, (name, tr) in enumerate(trs):
                t0, t1 = timeline.span(tr)
                summary = (f"{escape(str(tr.get('schedule', '')))} world {tr.get('world', '')} · "
                           f"{(t1 - t0) / 1000:.2f} ms · {escape(name)}")
                opened = " open" if i < OPEN_TIMELINES else ""
                out.append(f'<details class="tl"{opened}><summary>{summary}</summary>{timeline.svg(tr)}</details>')
    return out


def summary_lines(matrix: m.Matrix) -> list[str]:
    """The console's lines for step-time regressions against --baseline (none without any)."""
    regress = (matrix.baseline and matrix.baseline.step_time) or []
    return [f"  step time  {r['env']} {r['schedule']} world {r['world']}: {r['before_ms']:.2f} -> "
            f"{r['after_ms']:.2f} ms (+{r['growth']:.0%}, threshold {STEP_REGRESSION:.0%} and "
            f"{STEP_REGRESSION_MIN_MS:g} ms)" for r in regress]


def chrome_trace(env: str, name: str, trace: dict[str, Any]) -> dict[str, Any]:
    """Chrome trace event format (Perfetto, chrome://tracing): one thread per rank, complete events in us."""
    events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"{env} {name}"}}]
    for r, acts in sorted(trace["ranks"].items(), key=lambda kv: int(kv[0])):
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": int(r), "args": {"name": f"rank {r}"}})
        for s, k, mb, a, b in acts:
            events.append({"name": f"{k}{mb} stage {s}", "cat": k, "ph": "X", "pid": 0, "tid": int(r),
                           "ts": a, "dur": max(0, b - a), "args": {"stage": s, "kind": k, "microbatch": mb}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "metadata": {"schedule": trace.get("schedule"), "world": trace.get("world"), "env": env}}


def trace_file_name(env: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{env}-{name}").strip("_") + ".json"


def write_chrome_traces(matrix: m.Matrix, out_dir: Path) -> list[Path]:
    """One Chrome-trace JSON per traced check and env under out_dir/traces/; returns the files written."""
    from conformance.output import write_text

    written = []
    for col in matrix.envs:
        for name, tr in traces(col.properties):
            path = out_dir / TRACE_DIR / trace_file_name(col.name, name)
            write_text(path, json.dumps(chrome_trace(col.name, name, tr), separators=(",", ":")))
            written.append(path)
    return written


def baseline_costs(path: str) -> dict[str, dict[tuple[str, int], float]]:
    """env -> (schedule, world) -> step ms of a previous compatibility.json or merged/env JUnit (empty if none)."""
    raw = Path(path).read_bytes()
    envs: dict[str, dict[str, str]] = {}
    if raw.lstrip()[:1] == b"{":
        data = json.loads(raw)
        for e in data.get("envs") or []:
            if isinstance(e, dict) and isinstance(e.get("name"), str):
                props = {f"{STEPCOST}{d.get('check', i)}": json.dumps(d)
                         for i, d in enumerate(e.get("stepcost") or []) if isinstance(d, dict)}
                envs[e["name"]] = {**(e.get("properties") or {}), **props}
    else:
        from conformance.report.junit_in import parse_bytes

        parsed = parse_bytes(raw, path, Path(path).name.removesuffix(".xml"))
        envs = {env.name: env.properties for env in parsed.envs}
    return {name: {(str(d.get("schedule")), int(d.get("world") or 0)): float(d["step_ms"])
                   for d in costs(props) if isinstance(d.get("step_ms"), (int, float))}
            for name, props in envs.items()}


def regressions(matrix: m.Matrix, path: str) -> list[dict[str, Any]]:
    """Step times that grew by more than STEP_REGRESSION and STEP_REGRESSION_MIN_MS over the baseline's."""
    try:
        before = baseline_costs(path)
    except (OSError, ValueError):
        return []  # the outcome baseline already reported an unreadable file
    out = []
    for col in matrix.envs:
        old = before.get(col.name, {})
        for d in costs(col.properties):
            key = (str(d.get("schedule")), int(d.get("world") or 0))
            if key not in old or not isinstance(d.get("step_ms"), (int, float)):
                continue
            was, now = old[key], float(d["step_ms"])
            if was > 0 and now - was > max(STEP_REGRESSION * was, STEP_REGRESSION_MIN_MS):
                out.append({"env": col.name, "schedule": key[0], "world": key[1], "before_ms": was, "after_ms": now,
                            "growth": now / was - 1})
    return out
