"""Where a measured pipeline step's time goes, and what its plan could achieve: pure functions over trace payloads.

Input is the trace payload the suite records (`trace:<check>`): {"schedule", "world", "unit": "us",
"ranks": {rank: [[stage, kind, microbatch, start, end], ...]}, optionally "window": {rank: [start, end]} (the
rank's whole `step()` call on the same clock; older payloads lack it, and then every rank's window is the span of
all actions)}. Nothing here renders; the report's renderers show what these functions return.

Definitions (DEFINITIONS, shown verbatim by the renderers and the README):

- per rank, the step window splits exactly into compute by kind (F, I, W, B), *wait* (a gap before an action while
  an action it depends on, on another rank, had not finished: the pipeline's bubble as it happened), *overhead*
  (the rest of every gap before an action: communication transfer, kernel launch, the runtime's own work; send
  and receive calls are not traced, so their cost lands here or in wait) and *idle* (after the rank's last action
  until its `step()` returned);
- dependencies: F of a microbatch on stage s after its F on s-1; B or I on s after its F on s and after its B or I
  on s+1; W after its I;
- *achievable*: the executed order of every rank replayed with the measured action durations and no cost at all
  between actions (communication, launch, runtime); *efficiency* = achievable / measured step (100 % = the runtime
  adds nothing to the plan);
- *split inflation*: the mean I + W of a (stage, microbatch) of a zero-bubble schedule over the mean B of a
  non-split schedule with the same number of equal stages in the same env and world (Interleaved1F1B, else
  LoopedBFS): what splitting the backward costs at this size.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.protocol.stepcost import StepCost

KINDS = ("F", "I", "W", "B")
PARTS = ("F", "I", "W", "B", "wait", "overhead", "idle")  # the stacked bar's segments, in order
# Non-split schedules whose B is the reference for a split schedule with the same stage count, by preference.
FULL_BACKWARD_REFERENCES = ("ScheduleInterleaved1F1B", "ScheduleLoopedBFS", "Schedule1F1B", "ScheduleGPipe")

DEFINITIONS = (
    "Step time: the slowest rank's step() call, start to return, synchronised with the device (the table gives the "
    "median of the timed steps, and the timeline and decomposition are that same step). Ideal: m x this rank's "
    "stages' forward+backward of one microbatch, timed alone; bubble = 1 - ideal / step. Decomposition per rank: "
    "compute by kind (F, I, W, B); wait = gaps while an action it depends on (F on the previous stage, B/I on the "
    "next) ran on another rank; overhead = the rest of the gaps between actions (communication, launch, runtime); "
    "idle = after the rank's last action until step() returned. Achievable = the executed order replayed with the "
    "measured action durations and no cost between actions; efficiency = achievable / step. Split inflation = "
    "mean I + W of a zero-bubble schedule over mean B of a non-split schedule with as many equal stages.")

Key = tuple[int, str, int]  # (stage, kind, microbatch)


def _field(trace: Any, name: str) -> Any:
    """A payload field of a parsed JSON dict or of the typed record (`conformance.protocol.stepcost.Trace`)."""
    return trace.get(name) if isinstance(trace, Mapping) else getattr(trace, name, None)


def _actions(trace: Any) -> dict[str, list[tuple[int, str, int, float, float]]]:
    """Each rank's actions in the order it ran them (by start time), as tuples."""
    out = {}
    for r, acts in (_field(trace, "ranks") or {}).items():
        rows = [(int(a[0]), str(a[1]), int(a[2]), float(a[3]), float(a[4])) for a in acts if len(a) >= 5]
        out[str(r)] = sorted(rows, key=lambda a: (a[3], a[4]))
    return out


def windows(trace: Any) -> dict[str, tuple[float, float]]:
    """Each rank's step window: recorded (`window`), else the span of every rank's actions (older payloads)."""
    acts = _actions(trace)
    every = [a for rows in acts.values() for a in rows]
    span = (min((a[3] for a in every), default=0.0), max((a[4] for a in every), default=0.0))
    recorded = _field(trace, "window") or {}
    out = {}
    for r in acts:
        w = recorded.get(r)
        out[r] = (float(w[0]), float(w[1])) if isinstance(w, (list, tuple)) and len(w) == 2 else span
    return out


def step_us(trace: Any) -> float:
    """The traced step's time: the longest rank window."""
    return max((b - a for a, b in windows(trace).values()), default=0.0)


def predecessors(key: Key, n_stages: int) -> list[Key]:
    """The actions `key` depends on (see DEFINITIONS); B/I on the last stage only on its own F."""
    s, kind, mb = key
    if kind == "F":
        return [(s - 1, "F", mb)] if s > 0 else []
    if kind in ("B", "I"):
        deps = [(s, "F", mb)]
        if s + 1 < n_stages:
            deps += [(s + 1, "B", mb), (s + 1, "I", mb)]  # whichever of the two the next stage ran
        return deps
    if kind == "W":
        return [(s, "I", mb)]
    return []


def _stage_count(acts: Mapping[str, list]) -> int:
    return 1 + max((a[0] for rows in acts.values() for a in rows), default=-1)


def decompose(trace: Any) -> dict[str, dict[str, float]]:
    """Per rank, the step window split into PARTS (microseconds; they sum to the window) and `window`, `actions`."""
    acts = _actions(trace)
    n_st = _stage_count(acts)
    ends: dict[Key, float] = {}
    owner: dict[Key, str] = {}
    for r, rows in acts.items():
        for s, k, mb, _, b in rows:
            ends[(s, k, mb)] = b
            owner[(s, k, mb)] = r
    out = {}
    for r, (w0, w1) in windows(trace).items():
        parts = dict.fromkeys(PARTS, 0.0)
        prev = w0
        for s, k, mb, a, b in acts[r]:
            remote = [ends[d] for d in predecessors((s, k, mb), n_st) if d in ends and owner[d] != r]
            ready = min(max(remote, default=prev), a)  # device clocks of two ranks agree within tens of us only
            gap_start = min(prev, a)
            parts["wait"] += max(0.0, ready - gap_start)
            parts["overhead"] += max(0.0, a - max(ready, gap_start))
            parts[k if k in KINDS else "overhead"] += max(0.0, min(b, w1) - max(a, prev))
            prev = max(prev, b)
        parts["idle"] = max(0.0, w1 - prev)
        out[r] = {**parts, "window": w1 - w0, "actions": float(len(acts[r]))}
    return out


def replay(order: Mapping[str, Iterable[Key]], duration: Mapping[Key, float]) -> float | None:
    """The step time of `order` (rank -> its actions in order) with these durations and zero cost between actions.

    Each action starts when the previous one on its rank and every dependency (DEFINITIONS) have finished; a
    dependency absent from the plan is not waited for. None when the plan deadlocks (an action waits on one that
    can only come after it).
    """
    queues = {r: list(keys) for r, keys in order.items()}
    planned = {k for keys in queues.values() for k in keys}
    n_st = 1 + max((k[0] for k in planned), default=-1)
    done: dict[Key, float] = {}
    clock = dict.fromkeys(queues, 0.0)
    pos = dict.fromkeys(queues, 0)
    remaining = len(planned) if len(planned) == sum(len(q) for q in queues.values()) else None
    if remaining is None:
        return None  # an action planned twice: no single order to replay
    while remaining:
        progressed = False
        for r, q in queues.items():
            while pos[r] < len(q):
                key = q[pos[r]]
                deps = [d for d in predecessors(key, n_st) if d in planned]
                # "B or I of the next stage": only the one that exists is awaited
                if any(d not in done for d in deps):
                    break
                start = max([clock[r], *(done[d] for d in deps)])
                done[key] = clock[r] = start + float(duration.get(key, 0.0))
                pos[r] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            return None
    return max(clock.values(), default=0.0)


def replay_trace(trace: Any) -> float | None:
    """The achievable step time (us) of the trace's executed order with its measured durations."""
    acts = _actions(trace)
    order = {r: [(s, k, mb) for s, k, mb, _, _ in rows] for r, rows in acts.items()}
    duration = {(s, k, mb): b - a for rows in acts.values() for s, k, mb, a, b in rows}
    return replay(order, duration)


def kind_means(trace: Any) -> dict[str, float]:
    """Mean duration (us) of each action kind present in the trace."""
    by: dict[str, list[float]] = {}
    for rows in _actions(trace).values():
        for _, k, _, a, b in rows:
            by.setdefault(k, []).append(b - a)
    return {k: statistics.fmean(v) for k, v in by.items()}


def inflation(split: Any, full: Any) -> dict[str, float] | None:
    """Split backward against a full one: mean I + W per (stage, microbatch) over mean B; also F against F
    (a sanity figure: the same forward should cost the same). None unless `split` has I and W and `full` has B."""
    s_means, f_means = kind_means(split), kind_means(full)
    if not {"I", "W"} <= s_means.keys() or "B" not in f_means or f_means["B"] <= 0:
        return None
    out = {"I_us": s_means["I"], "W_us": s_means["W"], "B_us": f_means["B"],
           "factor": (s_means["I"] + s_means["W"]) / f_means["B"]}
    if f_means.get("F") and s_means.get("F"):
        out["F_ratio"] = s_means["F"] / f_means["F"]
    return out


def analyse(trace: Any, step_ms: float | None = None) -> dict[str, Any]:
    """Decomposition (ms per rank), traced step, achievable step and efficiency of one trace.

    `step_ms` is the traced step's time as measured around step() (the suite's `traced_step_ms`); without it,
    the trace's own (the longest rank window, or the span of the actions in older payloads).
    """
    parts = decompose(trace)
    traced = step_us(trace) / 1000
    achievable = replay_trace(trace)
    measured = step_ms if step_ms else traced
    out: dict[str, Any] = {
        "traced_step_ms": round(traced, 3),
        "decomposition": {r: {k: round(v / 1000, 4) for k, v in p.items() if k != "actions"}
                          | {"actions": int(p["actions"])}
                          for r, p in sorted(parts.items(), key=lambda kv: int(kv[0]))},
        "achievable_ms": None if achievable is None else round(achievable / 1000, 3),
        "efficiency": None if achievable is None or not measured else round(achievable / 1000 / measured, 4),
    }
    return out


def _n_stages(trace: Any) -> int:
    return _stage_count(_actions(trace))


def enrich(rows: list[dict[str, Any]], traced: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Step-cost rows of one env with `analyse` of their own trace and, for split schedules, `inflation` against
    the first non-split schedule (FULL_BACKWARD_REFERENCES) of the same check family, world and stage count."""
    by_check = dict(traced)
    out = []
    for row in rows:
        tr = by_check.get(str(row.get("check", "")))
        if tr is None:
            out.append(row)
            continue
        # The traced step's own time: older payloads traced another step than the median the table gives.
        step = row.get("traced_step_ms")
        out.append({**row, **analyse(tr, float(step) if isinstance(step, (int, float)) else None)})
    for row in out:
        tr = by_check.get(str(row.get("check", "")))
        if tr is None or "I" not in kind_means(tr):
            continue
        family = str(row.get("check", "")).split("[", 1)[0]
        for ref_name in FULL_BACKWARD_REFERENCES:
            ref = next((r for r in out if r.get("schedule") == ref_name and r.get("world") == row.get("world")
                        and str(r.get("check", "")).split("[", 1)[0] == family), None)
            ref_tr = by_check.get(str(ref.get("check", ""))) if ref else None
            if ref_tr is not None and _n_stages(ref_tr) == _n_stages(tr):
                got = inflation(tr, ref_tr)
                if got is not None:
                    row["inflation"] = {**{k: round(v, 4) for k, v in got.items()}, "reference": ref_name}
                    break
    return out


def ranking(rows: list[dict[str, Any]], baseline: str = "Schedule1F1B") -> dict[int, list[dict[str, Any]]]:
    """Per world, the schedules by step time with their speed-up over `baseline` (1F1B): 1.10 = 10 % faster."""
    out: dict[int, list[dict[str, Any]]] = {}
    for world in sorted({int(r.get("world") or 0) for r in rows}):
        here = [r for r in rows if int(r.get("world") or 0) == world and isinstance(r.get("step_ms"), (int, float))]
        base = next((r["step_ms"] for r in here if r.get("schedule") == baseline), None)
        out[world] = [{"schedule": r.get("schedule"), "step_ms": r["step_ms"],
                       "vs_1f1b": None if not base else round(base / r["step_ms"], 4)}
                      for r in sorted(here, key=lambda r: r["step_ms"])]
    return out


ANALYSIS_KEYS = ("traced_step_ms", "decomposition", "achievable_ms", "efficiency", "inflation")


def for_env(costs: Iterable[tuple[str, StepCost]], traces: Iterable[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """check -> its analysis (ANALYSIS_KEYS present), from an env's typed step costs and traces
    (`conformance.protocol.stepcost.StepCost`/`Trace` pairs, as the report model holds them)."""
    rows = [{"check": check, "schedule": c.schedule, "world": c.world, "step_ms": c.step_ms,
             "traced_step_ms": c.traced_step_ms} for check, c in costs]
    return {r["check"]: {k: r[k] for k in ANALYSIS_KEYS if k in r} for r in enrich(rows, list(traces))
            if "decomposition" in r}


def mean_parts(decomposition: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The stacked bar's segments (PARTS, ms): the mean over ranks, so the bar's length is the mean window."""
    ranks = list(decomposition.values())
    return {k: sum(float(p.get(k, 0.0)) for p in ranks) / len(ranks) for k in PARTS} if ranks else {}
