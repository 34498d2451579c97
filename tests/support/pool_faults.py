"""Test-only rank faults: scenarios that hang, die, crash, fail or skip, and schedules broken inside the ranks.

A rank plugin: the project's tests name it in CONFORMANCE_RANK_PLUGINS (with tests/support on PYTHONPATH), so
every rank imports it and registers its scenarios. With CONFORMANCE_TEST_SCHEDULE_FAULT set, it also breaks every
schedule's `step` in the ranks, so the ordinary schedule checks must notice. The shipped package holds none of this.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.suite.ranks import schedules

SCHEDULE_FAULT_ENV = "CONFORMANCE_TEST_SCHEDULE_FAULT"


def _on_rank(ctx: RankContext, params: dict) -> bool:
    ranks = params.get("ranks")
    return ranks is None or ctx.rank in ranks


def hang_here_forever(seconds: float) -> None:
    """A recognisable frame for the stacks a timeout collects."""
    time.sleep(seconds)


@register("fault_hang")
def hang(ctx: RankContext, params: dict) -> dict:
    if _on_rank(ctx, params):
        hang_here_forever(params.get("seconds", 3600))
    else:
        import torch.distributed as dist

        dist.barrier()  # the healthy ranks wait for the hanging one, as in a real pipeline hang
    return {}


@register("fault_die")
def die(ctx: RankContext, params: dict) -> dict:
    if _on_rank(ctx, params):
        os._exit(params.get("code", 3))
    import torch.distributed as dist

    dist.barrier()
    return {}


@register("fault_signal")
def kill_self(ctx: RankContext, params: dict) -> dict:
    if _on_rank(ctx, params):
        sig = params.get("signal", "SIGSEGV")
        if sig == "SIGSEGV":
            ctypes.string_at(0)
        os.kill(os.getpid(), getattr(signal, sig))
    import torch.distributed as dist

    dist.barrier()
    return {}


@register("fault_fail")
def fail(ctx: RankContext, params: dict) -> dict:
    if _on_rank(ctx, params):
        # `error`: the exception type by builtin name (RuntimeError, as torch raises), AssertionError by default
        error = getattr(__import__("builtins"), params.get("error", "AssertionError"))
        raise error(params.get("message", "failing on purpose"))
    return {"rank": ctx.rank}


@register("fault_skip")
def skip(ctx: RankContext, params: dict) -> dict:
    if _on_rank(ctx, params):
        raise Skip(params.get("reason", "not applicable: skipping on purpose"))
    return {"rank": ctx.rank}


@register("fault_thread_hang")
def thread_hang(ctx: RankContext, params: dict) -> dict:
    """Hang with a second thread alive, to show stacks cover all threads."""
    threading.Thread(target=hang_here_forever, args=(3600,), name="fault-helper", daemon=True).start()
    hang_here_forever(params.get("seconds", 3600))
    return {}


@register("faulty_schedule")
def faulty_schedule(ctx: RankContext, params: dict) -> dict | None:
    """The real `schedule` scenario with every schedule's step broken by `fault` for its duration."""
    params = dict(params)
    fault = params.pop("fault")
    with _broken_steps(fault):
        return schedules.run_schedule(ctx, params)


class _broken_steps:
    """Patch `step` of every schedule class in this rank; restore on exit."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.saved: list[tuple[type, object]] = []

    def __enter__(self) -> None:
        import torch.distributed.pipelining.schedules as sched_mod

        for cls in (sched_mod.PipelineScheduleSingle, sched_mod.PipelineScheduleMulti):
            self.saved.append((cls, cls.__dict__["step"]))
            cls.step = _breaking(self.fault, cls.__dict__["step"])

    def __exit__(self, *exc: object) -> None:
        for cls, step in self.saved:
            cls.step = step  # type: ignore[method-assign]


def _stages_of(sched) -> list:
    return list(getattr(sched, "_stages", None) or [sched._stage])


def _breaking(fault: str, step):
    """`step` with `fault` applied: the schedule still runs, but wrong."""
    if fault == "drop_microbatch":
        def step_dropping(self, *args, losses=None, **kwargs):
            out = step(self, *args, losses=losses, **kwargs)
            if losses:
                losses.pop()
            return out

        return step_dropping
    if fault == "corrupt_grad":
        def step_corrupting(self, *args, **kwargs):
            out = step(self, *args, **kwargs)
            for st in _stages_of(self):
                for prm in st.submod.parameters():
                    if prm.grad is not None:
                        prm.grad.mul_(1.5)
                        break
            return out

        return step_corrupting
    if fault == "tf32_left_on":
        def step_tf32(self, *args, **kwargs):
            import torch

            torch.backends.cuda.matmul.allow_tf32 = True
            torch.set_float32_matmul_precision("high")
            return step(self, *args, **kwargs)

        return step_tf32
    if fault == "tf32_inside_step":
        def step_tf32_inside(self, *args, **kwargs):
            import torch

            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return step(self, *args, **kwargs)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False

        return step_tf32_inside
    if fault == "default_dtype_left":
        def step_float64(self, *args, **kwargs):
            import torch

            out = step(self, *args, **kwargs)
            torch.set_default_dtype(torch.float64)
            return out

        return step_float64
    if fault == "hang":
        def step_hanging(self, *args, **kwargs):
            hang_here_forever(3600)

        return step_hanging
    raise ValueError(f"unknown schedule fault {fault!r}")


if os.environ.get(SCHEDULE_FAULT_ENV, "").strip():
    _broken_steps(os.environ[SCHEDULE_FAULT_ENV].strip()).__enter__()
