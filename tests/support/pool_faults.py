"""Test-only faults, loaded only when CONFORMANCE_TEST_FAULTS=1: scenarios that hang, die, crash, fail or skip,
and hooks that break a schedule inside the ranks. They exist so the project's tests can prove the pool's
failure handling on real processes; a normal run never registers them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

from conformance.pool.scenarios import RankContext, Skip, faults_enabled, register

if not faults_enabled():  # pragma: no cover - guarded by scenarios.load() too
    raise ImportError("conformance.pool.faults is test-only: set CONFORMANCE_TEST_FAULTS=1")


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
        raise AssertionError(params.get("message", "failing on purpose"))
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


def break_schedule(fault: str, sched, stages) -> None:
    """Make `sched` wrong in a way a conformance check must notice."""
    step = sched.step

    if fault == "drop_microbatch":
        def step_dropping(*args, losses=None, **kwargs):
            out = step(*args, losses=losses, **kwargs)
            if losses:
                losses.pop()
            return out

        sched.step = step_dropping
    elif fault == "corrupt_grad":
        def step_corrupting(*args, **kwargs):
            out = step(*args, **kwargs)
            for st in stages:
                for prm in st.submod.parameters():
                    if prm.grad is not None:
                        prm.grad.mul_(1.5)
                        break
            return out

        sched.step = step_corrupting
    elif fault == "hang":
        def step_hanging(*args, **kwargs):
            hang_here_forever(3600)

        sched.step = step_hanging
    else:
        raise ValueError(f"unknown schedule fault {fault!r}")
