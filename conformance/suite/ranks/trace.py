"""Execution trace of a pipeline schedule: every compute action a rank runs (stage, F/I/W/B, microbatch, times).

The one place the suite reaches into pipelining internals to watch it run. It wraps, per stage *instance* and only
while a check runs, the three methods on `torch.distributed.pipelining.stage._PipelineStageBase` where every
schedule computes (torch 2.4 to 2.14): `forward_one_chunk` (F), `backward_one_chunk(full_backward=...)` (B, or I
when `full_backward=False`) and `backward_weight_one_chunk` (W). Nothing global is patched, so other checks and
other stages are untouched. The declared plan comes from the schedule's `pipeline_order` (rank -> `_Action`s).

Times are CLOCK_MONOTONIC nanoseconds (one clock for every process of a host). On CUDA and XPU the host returns
before the device has run the work, so there each action is timed by device events recorded on the current stream,
placed on the host clock through an anchor taken right after a synchronize (`begin`/`end`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

POINTS = {"F": "forward_one_chunk", "B": "backward_one_chunk", "W": "backward_weight_one_chunk"}
COMPUTE_KINDS = ("F", "I", "W", "B")

# (stage, kind, microbatch, start_ns, end_ns)
Action = tuple[int, str, int, int, int]
Observer = Callable[[Any, str, int, str], None]  # (stage, kind, microbatch, "before" | "after")


def missing_points(stage: Any, kinds: str = "FB") -> list[str]:
    """The trace points of `kinds` this build's stage class lacks: F and B are needed to trace at all, W (and
    `full_backward=`, which makes a backward an I) only by the zero-bubble split (torch >= 2.5)."""
    cls = type(stage).__name__
    missing = [f"{cls}.{POINTS[k]}" for k in kinds if not callable(getattr(stage, POINTS[k], None))]
    bwd = getattr(stage, POINTS["B"], None)
    if "W" in kinds and bwd is not None and "full_backward" not in inspect.signature(bwd).parameters:
        missing.append(f"{cls}.backward_one_chunk(full_backward=)")
    return missing


def declared_plan(sched: Any, rank: int) -> tuple[list[tuple[int, str, int]] | None, str]:
    """This rank's compute actions as the schedule declares them (`pipeline_order`), or (None, why not)."""
    order = getattr(sched, "pipeline_order", None)
    if order is None and callable(getattr(sched, "_get_pipeline_order", None)):
        order = sched._get_pipeline_order()  # single-stage schedules of builds that do not keep it as an attribute
    if order is None:
        return None, f"{type(sched).__name__} exposes no pipeline_order in this build"
    actions = order.get(rank)
    if actions is None:
        return None, f"{type(sched).__name__}.pipeline_order has no entry for rank {rank}"
    plan: list[tuple[int, str, int]] = []
    for a in actions:
        for sub in (a.sub_actions or (a,)) if a is not None else ():
            kind = getattr(sub.computation_type, "value", str(sub.computation_type))
            if kind in COMPUTE_KINDS and sub.microbatch_index is not None:
                plan.append((int(sub.stage_index), kind, int(sub.microbatch_index)))
    return plan, ""


def grad_fingerprint(stage: Any) -> tuple:
    """Identity and in-place version of every parameter's `.grad`: changes whenever a gradient is written."""
    out = []
    for prm in stage.submod.parameters():
        g = prm.grad
        out.append(None if g is None else (id(g), g._version))
    return tuple(out)


class _HostClock:
    tolerance_ns = 0  # one CLOCK_MONOTONIC for every process of the host: exact

    def begin(self) -> None:
        pass

    def mark(self) -> Any:
        return time.monotonic_ns()

    def to_ns(self, mark: Any) -> int:
        return int(mark)


class _EventClock:
    """Device events on the current stream, converted to host monotonic ns after the step."""

    # Each rank's anchor lands on the host clock within a few microseconds (the synchronize, then the event's
    # launch); across ranks the order of two actions is only trusted beyond this margin.
    tolerance_ns = 50_000

    def __init__(self, module: Any) -> None:
        self.module = module
        self.anchor: Any = None
        self.anchor_ns = 0

    def begin(self) -> None:
        self.module.synchronize()
        self.anchor_ns = time.monotonic_ns()
        self.anchor = self.module.Event(enable_timing=True)
        self.anchor.record()

    def mark(self) -> Any:
        ev = self.module.Event(enable_timing=True)
        ev.record()
        return ev

    def to_ns(self, mark: Any) -> int:
        return self.anchor_ns + int(self.anchor.elapsed_time(mark) * 1e6)


def make_clock(device_type: str) -> Any:
    import torch

    module = getattr(torch, device_type, None) if device_type in ("cuda", "xpu") else None
    if module is not None and hasattr(module, "Event"):
        return _EventClock(module)
    return _HostClock()


class Tracer:
    """Records the compute actions of the stages it is attached to, in the order this rank runs them."""

    def __init__(self, device_type: str = "cpu") -> None:
        self.clock = make_clock(device_type)
        self.actions: list[Action] = []
        self.windows: list[tuple[int, int]] = []  # per traced step: this rank's step() call, start and end ns
        self._marks: list[tuple[int, str, int, Any, Any]] = []
        self._step_start: Any = None
        self.enabled = True
        self.observer: Observer | None = None
        self._attached: list[Any] = []

    def attach_all(self, stages: list) -> list[str]:
        """Wrap every stage; returns the trace points this build lacks (nothing is wrapped then)."""
        missing = sorted({m for st in stages for m in missing_points(st)})
        if not missing:
            for st in stages:
                self.attach(st)
        return missing

    def attach(self, stage: Any) -> None:
        def kind_of_backward(args: tuple, kwargs: dict) -> str:
            full = args[2] if len(args) > 2 else kwargs.get("full_backward", True)
            return "B" if full else "I"

        self._wrap(stage, POINTS["F"], lambda a, k: "F")
        self._wrap(stage, POINTS["B"], kind_of_backward)
        if callable(getattr(stage, POINTS["W"], None)):
            self._wrap(stage, POINTS["W"], lambda a, k: "W")
        self._attached.append(stage)

    def detach(self) -> None:
        for st in self._attached:
            for name in POINTS.values():
                st.__dict__.pop(name, None)
        self._attached.clear()

    def _wrap(self, stage: Any, name: str, kind_of: Callable[[tuple, dict], str]) -> None:
        original = getattr(stage, name)
        tracer = self

        def traced(*args: Any, **kwargs: Any) -> Any:
            kind = kind_of(args, kwargs)
            # eval(): the schedule still calls backward, which returns at once; that is no action.
            if not tracer.enabled or (kind != "F" and not getattr(stage, "has_backward", True)):
                return original(*args, **kwargs)
            mb = int(args[0] if args else next(iter(kwargs.values())))
            if tracer.observer is not None:
                tracer.observer(stage, kind, mb, "before")
            start = tracer.clock.mark()
            try:
                return original(*args, **kwargs)
            finally:
                tracer._marks.append((stage.stage_index, kind, mb, start, tracer.clock.mark()))
                if tracer.observer is not None:
                    tracer.observer(stage, kind, mb, "after")

        setattr(stage, name, traced)

    def begin(self) -> None:
        """Start of a traced step (an anchor for device clocks, and the start of the step's window)."""
        self.clock.begin()
        self._step_start = self.clock.mark()

    def end(self) -> list[Action]:
        """End of a traced step: resolve the step's marks into actions, appended to `actions`, and the step's
        window (begin to here, on the same clock) to `windows`; returns the step's actions."""
        stop = self.clock.mark()
        if isinstance(self.clock, _EventClock):
            self.clock.module.synchronize()
        step = [(s, k, mb, self.clock.to_ns(a), self.clock.to_ns(b)) for s, k, mb, a, b in self._marks]
        self._marks.clear()
        self.actions.extend(step)
        if self._step_start is not None:
            self.windows.append((self.clock.to_ns(self._step_start), self.clock.to_ns(stop)))
        self._step_start = None
        return step
