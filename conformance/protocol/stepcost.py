"""Step-cost and trace payloads: suite-level JUnit properties `stepcost:<check>` and `trace:<check>`, compact JSON.

`stepcost:<check>` = {schedule, world, n_mb, steps, step_ms, ideal_ms, bubble, bubble_theory, bubble_theory_source,
peak_bytes{rank}, base_bytes{rank}, device, traced_step?, traced_step_ms?, model?}; `trace:<check>` = {schedule,
world, unit: "us", ranks{rank: [[stage, kind, mb, start, end]]}, window?{rank: [start, end]}} (`?`: newer writers
only; readers accept payloads without them). The behaviour and step-tier checks write them (`StepCost.property()`,
`Trace.property()`); the report reads them back with `read_costs()` and `read_traces()`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

STEPCOST, TRACE = "stepcost:", "trace:"
PREFIXES = (STEPCOST, TRACE)

_COMPACT = (",", ":")


def _load(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bytes(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}


_LATER_FIELDS = frozenset({"traced_step", "traced_step_ms", "model"})


@dataclass(frozen=True)
class StepCost:
    """One schedule x world's measured step: timings in ms, bubble fractions, memory per rank (rank as text)."""

    schedule: str
    world: int
    n_mb: int
    steps: int
    step_ms: float
    ideal_ms: float
    bubble: float | None
    bubble_theory: float | None
    bubble_theory_source: str = ""
    peak_bytes: dict[str, int] = field(default_factory=dict)
    base_bytes: dict[str, int] = field(default_factory=dict)
    device: str = ""
    traced_step: int | None = None  # index of the timed step the trace shows (the median one; absent in older payloads)
    traced_step_ms: float | None = None  # that step's time (absent in older payloads)
    model: str = ""  # what was timed, in words (the realistic tier says; absent for the step-cost model)

    def to_json(self) -> str:
        # Fields added after the first format are written only when set: older payloads stay byte-identical.
        d = {k: v for k, v in asdict(self).items() if k not in _LATER_FIELDS or v not in (None, "")}
        return json.dumps(d, separators=_COMPACT)

    def property(self, check: str) -> tuple[str, str]:
        """(key, value) of the suite property recording this step cost for `check`."""
        return STEPCOST + check, self.to_json()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepCost:
        """Tolerant of older writers: a missing field reads as empty, never an error."""
        return cls(schedule=str(d.get("schedule", "")), world=_int(d.get("world")), n_mb=_int(d.get("n_mb")),
                   steps=_int(d.get("steps")), step_ms=_num(d.get("step_ms")) or 0.0,
                   ideal_ms=_num(d.get("ideal_ms")) or 0.0, bubble=_num(d.get("bubble")),
                   bubble_theory=_num(d.get("bubble_theory")),
                   bubble_theory_source=str(d.get("bubble_theory_source") or ""),
                   peak_bytes=_bytes(d.get("peak_bytes")), base_bytes=_bytes(d.get("base_bytes")),
                   device=str(d.get("device") or ""), traced_step=_index(d.get("traced_step")),
                   traced_step_ms=_num(d.get("traced_step_ms")),
                   model=str(d.get("model") or ""))

    @classmethod
    def from_json(cls, value: str) -> StepCost | None:
        d = _load(value)
        return None if d is None else cls.from_dict(d)


Action = tuple[int, str, int, int, int]  # stage, kind (F, B, I, W, ...), microbatch, start, end


@dataclass(frozen=True)
class Trace:
    """One measured step's actions per rank (rank as text), times in `unit` from the first action."""

    schedule: str
    world: int
    ranks: dict[str, list[list[Any]]]
    unit: str = "us"
    window: dict[str, list[int]] = field(default_factory=dict)  # rank -> its step() call [start, end]; may be absent

    def to_json(self) -> str:
        out: dict[str, Any] = {"schedule": self.schedule, "world": self.world, "unit": self.unit, "ranks": self.ranks}
        if self.window:
            out["window"] = self.window
        return json.dumps(out, separators=_COMPACT)

    def property(self, check: str) -> tuple[str, str]:
        """(key, value) of the suite property recording this trace for `check`."""
        return TRACE + check, self.to_json()

    @classmethod
    def from_json(cls, value: str) -> Trace | None:
        d = _load(value)
        if d is None or not isinstance(d.get("ranks"), dict):
            return None
        ranks = {str(r): [list(a) for a in acts] for r, acts in d["ranks"].items() if isinstance(acts, list)}
        raw_window = d.get("window")
        window: dict[Any, Any] = raw_window if isinstance(raw_window, dict) else {}
        return cls(schedule=str(d.get("schedule", "")), world=_int(d.get("world")), ranks=ranks,
                   unit=str(d.get("unit") or "us"),
                   window={str(r): list(w) for r, w in window.items() if isinstance(w, list) and len(w) == 2})


def is_payload(key: str) -> bool:
    """Whether a property is a step cost or trace (shown as tables and timelines, not as plain metadata)."""
    return key.startswith(PREFIXES)


def read_costs(props: Mapping[str, str]) -> list[tuple[str, StepCost]]:
    """(check, step cost) of every readable `stepcost:` property, in property order."""
    out = []
    for k, v in props.items():
        if k.startswith(STEPCOST) and (cost := StepCost.from_json(v)) is not None:
            out.append((k[len(STEPCOST):], cost))
    return out


def read_traces(props: Mapping[str, str]) -> list[tuple[str, Trace]]:
    """(check, trace) of every readable `trace:` property, in property order."""
    out = []
    for k, v in props.items():
        if k.startswith(TRACE) and (trace := Trace.from_json(v)) is not None:
            out.append((k[len(TRACE):], trace))
    return out
