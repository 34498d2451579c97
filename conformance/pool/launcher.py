"""Multi-node mode: the ranks are an external launcher's (torchrun), not the local pool's.

Every torchrun process runs `python -m conformance.pool.launcher --device D [-- pytest args]`. Global rank 0
runs the suite (`conformance run`, with CONFORMANCE_LAUNCHER=torchrun); every other rank runs a worker loop.
For each multi-rank check, rank 0 broadcasts the task over a gloo control group, runs its own part in a
thread, and gathers one structured result per rank. Only the launcher's world size is available (others are
`unavailable: `); ranks cannot be restarted, so after a timeout the remaining multi-rank checks fail
(never skip) with the same reason. Stacks of remote ranks on a timeout travel through the launcher's store.

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        -m conformance.pool.launcher --device cpu -- -k world2
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from typing import Any

from conformance.pool import worker
from conformance.pool.local import PoolError, RunReport
from conformance.pool.scenarios import RankContext
from conformance.protocol import settings
from conformance.protocol.tasks import STOP, Result, Task
from conformance.torchenv import device
from conformance.torchenv.profiles import Profile

ENV = settings.LAUNCHER.name
_DUMP_KEY = "conformance/dump"


def _env_int(name: str, default: int = 0) -> int:
    return int(os.environ.get(name, default))


def _ctx(profile: Profile, backend: str) -> RankContext:
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE", 1)
    return RankContext(rank, world, profile, profile.device_string(_env_int("LOCAL_RANK", 0)), backend)


def _init(profile: Profile, backend: str, timeout_s: float):
    import torch
    import torch.distributed as dist

    worker.prepare_rank(profile)
    kw: dict[str, Any] = {}
    ctx = _ctx(profile, backend)
    if ctx.device_type != "cpu":
        dev = ctx.torch_device
        getattr(torch, ctx.device_type).set_device(dev)
        kw["device_id"] = dev
    dist.init_process_group(backend, init_method="env://", timeout=timedelta(seconds=timeout_s), **kw)
    # Control traffic on its own gloo group: it must work whatever the device backend is doing.
    return dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))


def _stack_watcher(store, rank: int) -> None:
    """Worker side: when rank 0 asks (a key in the launcher's store), publish this process's Python stacks."""
    seen = 0
    while True:
        time.sleep(0.5)
        try:
            n = int(store.add(_DUMP_KEY, 0))
        except Exception:
            return
        if n > seen:
            seen = n
            with tempfile.TemporaryFile("w+") as f:
                faulthandler.dump_traceback(file=f, all_threads=True)
                f.seek(0)
                store.set(f"{_DUMP_KEY}/{n}/{rank}", f.read())


class TorchrunLauncher:
    """Rank 0's side, used by `Pools` in place of local pools."""

    def __init__(self, profile: Profile, backend: str, timeout_s: float):
        self.profile, self.backend, self.timeout_s = profile, backend, timeout_s
        self.world_size = _env_int("WORLD_SIZE", 1)
        self.ctrl = None
        self.broken: str | None = None

    def _start(self) -> None:
        if self.ctrl is None:
            self.ctrl = _init(self.profile, self.backend, self.timeout_s)

    def run(self, task: Task, timeout_s: float) -> RunReport:
        import torch.distributed as dist

        if self.broken:
            raise PoolError(self.broken)
        self._start()
        t0 = time.monotonic()
        dist.broadcast_object_list([task], src=0, group=self.ctrl)
        box: list[Result] = []
        th = threading.Thread(target=lambda: box.append(worker.execute(_ctx(self.profile, self.backend), task)),
                              name="conformance-rank0", daemon=True)
        th.start()
        th.join(timeout_s)
        if th.is_alive():
            stacks = self._remote_stacks()
            with tempfile.TemporaryFile("w+") as f:
                faulthandler.dump_traceback(file=f, all_threads=True)
                f.seek(0)
                stacks[0] = f.read()
            self.broken = f"launcher ranks timed out at {task.check_id}; they cannot be restarted"
            results = [Result(task.seq, r, "error", f"rank {r} timed out after {timeout_s:.0f} s",
                              f"--- Python stacks of rank {r} ---\n{stacks.get(r, '(none received)')}")
                       for r in range(self.world_size)]
            return RunReport(results, time.monotonic() - t0, timed_out=True)
        gathered: list = [None] * self.world_size
        try:
            dist.gather_object(box[0], gathered, dst=0, group=self.ctrl)
        except Exception as exc:
            why = worker.describe(exc)
            self.broken = f"launcher ranks lost at {task.check_id}: {why}"
            return RunReport([box[0]] + [Result(task.seq, r, "error", f"rank {r} did not report: {why}")
                                         for r in range(1, self.world_size)], time.monotonic() - t0, timed_out=True)
        return RunReport(list(gathered), time.monotonic() - t0)

    def _remote_stacks(self) -> dict[int, str]:
        import torch.distributed as dist

        store = dist.distributed_c10d._get_default_store()
        n = int(store.add(_DUMP_KEY, 1))
        out = {}
        deadline = time.monotonic() + 5
        for r in range(1, self.world_size):
            key = f"{_DUMP_KEY}/{n}/{r}"
            while time.monotonic() < deadline:
                if store.check([key]):
                    out[r] = store.get(key).decode(errors="replace")
                    break
                time.sleep(0.2)
        return out

    def close(self) -> None:
        import torch.distributed as dist

        if self.broken:
            return  # workers are stuck; torchrun tears the job down when rank 0 exits
        try:
            self._start()  # a run without multi-rank checks still has to release the workers
            dist.broadcast_object_list([STOP], src=0, group=self.ctrl)
            dist.destroy_process_group()
        except Exception:
            pass


def from_env(profile: Profile, backend: str, timeout_s: float) -> TorchrunLauncher:
    """The launcher of the env's device; its ranks use the profile's torch device type."""
    kind = settings.LAUNCHER.raw()
    if kind != "torchrun":
        raise PoolError(f"{ENV}={kind!r}: only 'torchrun' is supported")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise PoolError(f"{ENV}=torchrun but RANK/WORLD_SIZE are not set: start it under torchrun")
    return TorchrunLauncher(profile, backend, timeout_s)


def worker_loop(profile: Profile, backend: str, timeout_s: float) -> int:
    import torch.distributed as dist

    ctrl = _init(profile, backend, timeout_s)
    from conformance.pool import scenarios

    device.pin_numerics()
    scenarios.load()
    rank = dist.get_rank()
    store = dist.distributed_c10d._get_default_store()
    threading.Thread(target=_stack_watcher, args=(store, rank), daemon=True).start()
    ctx = _ctx(profile, backend)
    while True:
        box: list[Any] = [None]
        # Between checks rank 0 may spend long on world-1 checks: wait without a deadline here.
        dist.broadcast_object_list(box, src=0, group=ctrl)
        task = box[0]
        if task == STOP:
            break
        dist.gather_object(worker.execute(ctx, task), None, dst=0, group=ctrl)
    dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    from conformance.torchenv import builds, profiles

    ap = argparse.ArgumentParser(prog="python -m conformance.pool.launcher", description=__doc__.splitlines()[0])
    ap.add_argument("--device", required=True, choices=builds.DEVICES)
    # Everything else goes to `conformance run` on rank 0 (e.g. `--junitxml PATH -- -k world2`).
    args, rest = ap.parse_known_args(argv)
    os.environ[ENV] = "torchrun"
    if _env_int("RANK") == 0:
        return subprocess.call([sys.executable, "-m", "conformance", "run", "--device", args.device, *rest])
    timeout = settings.CHECK_TIMEOUT.number()
    return worker_loop(profiles.get(args.device), builds.BACKENDS[args.device], max(timeout * 10, 3600))


if __name__ == "__main__":
    sys.exit(main())
