"""Rank side of the behaviour checks: run a schedule traced, and measure what its numbers cannot show.

One scenario run per schedule x world serves every behaviour rule, so the checks stay cheap: a traced training
step (with the zero-bubble gradient observer), then at least 4 steps each in train mode, `eval()` and
`return_outputs=False` measuring the live state after every step. The rules that need every rank's trace (order
across stages, activation bounds) are judged on the pytest side (`conformance.suite.rules`); this side returns the
facts. The model and stages are the schedule checks' own (`conformance.suite.ranks.schedules.prepare`).

`step_cost` runs on accelerators only: a model sized so compute dominates, timed per step and per action.
"""

from __future__ import annotations

import gc
import inspect
import socket
import time
from collections.abc import Callable
from typing import Any

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.protocol.outcomes import not_applicable
from conformance.suite import numerics_state
from conformance.suite.ranks import schedules, trace

GROWTH_STEPS = 4  # steps per mode; the live state after step k must equal the state after step 2


class SplitObserver:
    """Zero-bubble split: an I step must leave the stage's weight gradients untouched, its W must write them."""

    def __init__(self) -> None:
        self.before: dict[tuple[int, str, int], tuple] = {}
        self.violations: list[dict] = []
        self.seen = {"I": 0, "W": 0}

    def __call__(self, stage: Any, kind: str, mb: int, phase: str) -> None:
        if kind not in ("I", "W"):
            return
        key = (stage.stage_index, kind, mb)
        if phase == "before":
            self.before[key] = trace.grad_fingerprint(stage)
            return
        self.seen[kind] += 1
        before, after = self.before.pop(key), trace.grad_fingerprint(stage)
        changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
        names = [n for n, _ in stage.submod.named_parameters()]
        if kind == "I" and changed:
            written = ", ".join(names[i] for i in changed)
            self.violations.append({"stage": key[0], "action": f"{key[0]}I{mb}",
                                    "what": f"the I step wrote weight gradients ({written})"})
        if kind == "W" and len(changed) < len(before):
            untouched = [names[i] for i in range(len(before)) if i not in changed]
            self.violations.append({"stage": key[0], "action": f"{key[0]}W{mb}",
                                    "what": f"the W step left weight gradients unwritten ({', '.join(untouched)})"})


def live_meter(device_type: str) -> tuple[str, Callable[[], int]]:
    """(unit, measure): live tensors on CPU (gc), allocated bytes on an accelerator with a memory allocator."""
    import torch

    module = getattr(torch, device_type, None)
    if device_type != "cpu" and module is not None and hasattr(module, "memory_allocated"):
        def allocated() -> int:
            module.synchronize()
            return int(module.memory_allocated())

        return "allocated bytes", allocated

    def tensors() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    return "live tensors", tensors


def traced_step(run: schedules.ScheduleRun, tracer: trace.Tracer) -> tuple[list, dict]:
    """The second training step, traced, with the zero-bubble observer on: (actions, split result).

    The first step also initialises the stages (shape inference, p2p set-up), which would dominate its timeline.
    """
    tracer.enabled = False
    schedules.zero_grads(run)
    schedules.run_step(run, train=True)
    tracer.enabled = True
    observer = SplitObserver()
    tracer.observer = observer
    schedules.zero_grads(run)
    tracer.begin()
    schedules.run_step(run, train=True)
    actions = tracer.end()
    tracer.observer = None
    tracer.enabled = False  # the later steps only measure live state
    return actions, {"violations": observer.violations, "seen": observer.seen}


def mode_supported(run: schedules.ScheduleRun, mode: str) -> str:
    """'' when the build has what `mode` needs, else the not-applicable reason."""
    from conformance.torchenv import api

    if mode == "eval" and not hasattr(run.sched, "eval"):
        return api.missing_reason("eval") or not_applicable("no eval()")
    if mode == "return_outputs_false" and "return_outputs" not in inspect.signature(run.sched.step).parameters:
        return api.missing_reason("return_outputs") or not_applicable("step() has no return_outputs")
    return ""


def growth(run: schedules.ScheduleRun, mode: str, measure: Callable[[], int]) -> dict:
    """GROWTH_STEPS steps of `mode` and the live state after each, or the reason the build cannot run `mode`."""
    reason = mode_supported(run, mode)
    if reason:
        return {"skip": reason}
    values = []
    for _ in range(GROWTH_STEPS):
        if mode != "eval":
            schedules.zero_grads(run)
        schedules.run_step(run, train=mode != "eval", return_outputs=mode != "return_outputs_false")
        values.append(measure())
    return {"values": values}


def frozen_heap() -> Any:
    """Move everything alive now out of the collector's view, so counting live tensors scans only the new."""

    class Frozen:
        def __enter__(self) -> None:
            gc.freeze()  # no full collection first: garbage frozen now stays out of the count too

        def __exit__(self, *exc: object) -> None:
            gc.unfreeze()

    return Frozen()


@register("behaviour")
def run_behaviour(ctx: RankContext, params: dict) -> dict:
    """One schedule traced for one training step, then GROWTH_STEPS steps per mode measuring the live state.

    `eval()` runs as its own task (`modes=["eval"]`): where it fails (adjacent local stages, an upstream bug) the
    ranks are left out of step, and only a separate task lets the pool restart them without losing the rest.
    """
    params = dict(params)
    modes = params.pop("modes", ("train", "return_outputs_false"))
    params.setdefault("reference", False)  # behaviour compares no numbers: no unsplit model to build
    if params["schedule"] not in schedules.SINGLE:
        # m = S keeps every schedule's rule (interleaved: m % (m // p) == 0; V: m >= S) and halves the default's
        # cost; the bounds still separate depth-first from breadth-first (2S in flight vs at most 3p - 1).
        params.setdefault("n_microbatches", schedules.num_stages(params["schedule"], ctx.world_size))
    traced = params.pop("trace", True)
    # The guard restores the pinned state after a change: the pool's next check on this rank must not inherit it.
    with numerics_state.guarded([ctx.device_type]) as state:
        run = schedules.prepare(ctx, params)
        out: dict[str, Any] = {"rank": ctx.rank, "host": socket.gethostname(), "stages": run.sids, "n_mb": run.n_mb}
        if traced:
            tracer = trace.Tracer(ctx.device_type)
            missing = tracer.attach_all(run.stages)
            plan, plan_reason = trace.declared_plan(run.sched, ctx.rank)
            actions, split = traced_step(run, tracer) if not missing else ([], {"violations": [], "seen": {}})
            tracer.detach()
            out.update(missing=missing, trace=actions, plan=plan, plan_reason=plan_reason, split=split,
                       window=tracer.windows[-1] if tracer.windows else None,
                       clock_tolerance_ns=tracer.clock.tolerance_ns,
                       missing_split=sorted({m for st in run.stages for m in trace.missing_points(st, "W")}))
        unit, measure = live_meter(ctx.device_type)
        live: dict[str, dict] = {}
        with frozen_heap():
            for mode in modes:
                live[mode] = growth(run, mode, measure)
        out.update(live_unit=unit, live=live)
        # Pipelining must leave torch's global numerics state as found (the pytest side fails the check otherwise).
        out["numerics_state"] = numerics_state.compare(state.before, state.now())
    return out


@register("step_cost")
def run_step_cost(ctx: RankContext, params: dict) -> dict:
    """Step time, per-action trace and peak memory of one schedule on a compute-dominated model (accelerators)."""
    module = accelerator(ctx)
    p = {"d_hid": 8192, "mb_size": 256, "n_microbatches": 8, "dtype": "bf16", "layers_per_rank": 4,
         "warmup": 3, "steps": 7, **params}
    gc.collect()  # the previous check's model and stages (reference cycles) must not count in this one's peak
    module.empty_cache()
    run = cost_run(ctx, p)
    return timed_steps(ctx, run, module, p["warmup"], p["steps"])


def accelerator(ctx: RankContext) -> Any:
    """torch's module of this rank's accelerator (`torch.cuda`, ...), or Skip: step cost needs its allocator."""
    import torch

    module = getattr(torch, ctx.device_type, None)
    if ctx.device_type == "cpu" or module is None or not hasattr(module, "max_memory_allocated"):
        raise Skip(not_applicable(f"step cost is measured on accelerators only (device {ctx.device_type})"))
    return module


def timed_steps(ctx: RankContext, run: schedules.ScheduleRun, module: Any, warmup: int, steps: int) -> dict:
    """`warmup` untimed steps, then `steps` timed and traced ones: times, every step's trace and window, peak memory.

    Every timed step is traced (two device events per action), so the pytest side can show the trace of the very
    step whose time the table gives (the median) rather than a separately traced one.
    """
    import torch.distributed as dist

    ideal_ms = single_stage_ms(run, module)
    tracer = trace.Tracer(ctx.device_type)
    tracer.attach_all(run.stages)
    tracer.enabled = False
    for _ in range(warmup):
        schedules.zero_grads(run)
        schedules.run_step(run, train=True)
    module.synchronize()
    module.reset_peak_memory_stats()
    base = int(module.memory_allocated())
    times, traces = [], []
    tracer.enabled = True
    for _ in range(steps):
        schedules.zero_grads(run)
        if dist.is_initialized() and ctx.world_size > 1:
            dist.barrier()
        module.synchronize()
        tracer.begin()
        t0 = time.perf_counter()
        schedules.run_step(run, train=True)
        module.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
        traces.append(tracer.end())
    tracer.detach()
    return {"rank": ctx.rank, "stages": run.sids, "n_mb": run.n_mb, "step_ms": times, "ideal_stage_ms": ideal_ms,
            "peak_bytes": int(module.max_memory_allocated()), "base_bytes": base, "traces": traces,
            "windows": tracer.windows,
            "device_name": module.get_device_name() if hasattr(module, "get_device_name") else ctx.device_type}


def cost_run(ctx: RankContext, p: dict) -> schedules.ScheduleRun:
    """The step-cost model: `layers_per_rank` Linear+GELU blocks per rank, split evenly over this rank's stages."""
    n_st = schedules.num_stages(p["schedule"], ctx.world_size)
    layers = p["layers_per_rank"] * ctx.world_size
    if layers % n_st:
        layers = n_st * max(1, layers // n_st)
    return schedules.prepare(ctx, {**p, "model": "gelu_mlp", "n_layers": layers, "reference": False})


def single_stage_ms(run: schedules.ScheduleRun, module: Any, repeats: int = 10) -> float:
    """This rank's stages' forward+backward of one microbatch, each alone, back to back: the unit of the ideal step.

    Timed over `repeats` back-to-back runs after 3 warm-ups with one synchronize at each end, so launch latency
    overlaps as it does inside a schedule; with v local stages this is the sum over them.
    """
    import torch

    total = 0.0
    for stage in run.stages:
        x = run.inputs["x_mbs"][0].detach().requires_grad_(True)

        def once(stage: Any = stage, x: Any = x) -> None:
            out = stage.submod(x)
            torch.autograd.backward(out, torch.ones_like(out))

        for _ in range(3):
            once()
        rounds = []
        for _ in range(3):  # the fastest of 3 rounds: noise (clocks, other work) only ever adds time
            module.synchronize()
            t0 = time.perf_counter()
            for _ in range(repeats):
                once()
            module.synchronize()
            rounds.append((time.perf_counter() - t0) * 1e3 / repeats)
        total += min(rounds)
        stage.submod.zero_grad(set_to_none=True)
    return total
