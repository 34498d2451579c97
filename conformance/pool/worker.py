"""The rank side: one process per rank that joins the process group once and runs tasks until told to stop."""

from __future__ import annotations

import faulthandler
import importlib
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from conformance.pool import scenarios
from conformance.pool.scenarios import RankContext, Skip
from conformance.protocol.tasks import STOP, Result, Task
from conformance.torchenv import device, profiles
from conformance.torchenv.profiles import Profile


def rank_env(profile: Profile) -> dict[str, str]:
    """The variables every rank of the device gets, from its profile (cuda: NVLink multicast off)."""
    return dict(profile.rank_env)


def prepare_rank(profile: Profile) -> None:
    """Before any communicator exists: the profile's rank variables (unless set) and its registration imports."""
    for k, v in rank_env(profile).items():
        os.environ.setdefault(k, v)
    for module in profile.import_first:
        importlib.import_module(module)  # an out-of-tree device registers its torch module and backend here


def share_cores(world_size: int) -> None:
    """Give each rank its share of the host's cores for intra-op threads, unless OMP_NUM_THREADS says otherwise.

    Every rank would otherwise start one thread per core: 4 ranks on 2 cores then run 8 spinning threads and a
    tiny op waits on all of them (torchrun sets OMP_NUM_THREADS=1 for several processes per node for this reason).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // world_size))


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a rank needs to join; picklable for the spawn context."""

    world_size: int
    # The device's profile by name (rocm, not cuda): a Profile holds mappings a spawned child cannot unpickle, and
    # the rank finds the same profile (out-of-tree ones through their entry point) from it.
    profile_name: str
    backend: str
    store_path: str  # FileStore rendezvous: no port to race for
    stacks_dir: str
    pg_timeout_s: float
    parent_pid: int
    # The environment at pool start: a forkserver child inherits the server's (older) environment instead.
    env: dict | None = None
    # Scenario modules to import while the rank starts (under the start-up timeout, not a check's): the same ones
    # every task names.
    modules: tuple[str, ...] = ()


def stacks_path(stacks_dir: str, rank: int) -> str:
    return os.path.join(stacks_dir, f"rank{rank}.stacks")


def is_skip(exc: BaseException) -> bool:
    if isinstance(exc, Skip):
        return True
    # pytest's skip (e.g. from conformance.suite.applicable.require) without importing pytest in every rank
    return type(exc).__name__ == "Skipped" and type(exc).__module__.startswith("_pytest")


def execute(ctx: RankContext, task: Task) -> Result:
    """Run one task on this rank and turn whatever happens into a Result; never raises (except interrupts)."""
    t0 = time.perf_counter()
    try:
        data = scenarios.run(ctx, task.scenario, dict(task.params), task.modules)
        return Result(task.seq, ctx.rank, "passed", data=data, seconds=time.perf_counter() - t0)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        dt = time.perf_counter() - t0
        if is_skip(exc):
            return Result(task.seq, ctx.rank, "skipped", message=_text(exc), seconds=dt)
        return Result(task.seq, ctx.rank, "failed", message=describe(exc), traceback=traceback.format_exc(),
                      seconds=dt)


def _text(exc: BaseException) -> str:
    # Torch messages may open with a newline (or an indented block); the first line must carry the cause.
    return str(getattr(exc, "msg", "") or exc).strip()


def describe(exc: BaseException) -> str:
    """`Type: message`, the message's first non-empty line first, every other line kept."""
    text = _text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _alive(pid: int) -> bool:
    # Not getppid(): under forkserver the parent is the fork server, not the pytest process.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def init_group(cfg: WorkerConfig, ctx: RankContext):
    import torch
    import torch.distributed as dist

    kwargs: dict[str, Any] = {}
    if ctx.device_type != "cpu":
        dev = ctx.torch_device
        mod = getattr(torch, ctx.device_type, None)
        if mod is not None and hasattr(mod, "set_device"):
            mod.set_device(dev)
        kwargs["device_id"] = dev  # eager init binds the communicator to this rank's device
    store = dist.FileStore(cfg.store_path, cfg.world_size)
    dist.init_process_group(cfg.backend, store=store, rank=ctx.rank, world_size=cfg.world_size,
                            timeout=timedelta(seconds=cfg.pg_timeout_s), **kwargs)


def main(rank: int, cfg: WorkerConfig, tasks, results) -> None:
    """Entry point of a rank process (multiprocessing spawn or forkserver target)."""
    if cfg.env is not None:
        os.environ.clear()
        os.environ.update(cfg.env)
    try:
        os.setpgid(0, 0)  # own process group: teardown kills whatever this rank started too
    except OSError:
        pass
    # The stacks file stays open for the life of the rank: faulthandler writes to its descriptor from a
    # signal handler (on SIGUSR1 from the pool at a timeout) and on fatal signals (segfault, abort).
    stacks = open(stacks_path(cfg.stacks_dir, rank), "a", buffering=1)
    faulthandler.enable(file=stacks, all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True, chain=False)
    try:
        profile = profiles.get(cfg.profile_name)
        prepare_rank(profile)
        share_cores(cfg.world_size)
        ctx = RankContext(rank, cfg.world_size, profile, profile.device_string(rank), cfg.backend)
        init_group(cfg, ctx)
        device.pin_numerics()
        scenarios.load(cfg.modules)
    except BaseException as exc:
        results.put(Result(0, rank, "error",
                           f"rank {rank} could not join the process group: {describe(exc)}",
                           traceback.format_exc()))
        return
    results.put(Result(0, rank, "passed", data={"pid": os.getpid()}))
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if not _alive(cfg.parent_pid):  # pytest is gone: don't linger as an orphan
                    break
                continue
            if task == STOP:
                break
            results.put(execute(ctx, task))
    finally:
        try:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
        except Exception:
            pass
        sys.stdout.flush()
