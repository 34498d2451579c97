"""A pool of W local rank processes (spawn context) that runs one task after another with timeouts.

On a timeout every rank dumps its Python stacks (faulthandler on SIGUSR1) into its own file, which becomes the
check's message; then the ranks are killed and the pool is marked broken so the next task starts fresh ones.
A rank that dies gives an error naming it and its signal or exit code, the same way.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import cast

from conformance.pool import worker
from conformance.protocol import settings
from conformance.protocol.tasks import STOP, Result, Task
from conformance.signals import signal_name
from conformance.torchenv.profiles import Profile

# After one rank has failed or died, how long the others get to finish before they count as stuck: a failed
# rank often leaves its peers waiting in a recv that only the process-group timeout would end.
GRACE_S = settings.FAIL_GRACE.number()


class PoolError(RuntimeError):
    """The pool could not start or is unusable; a check that meets it fails (never skips)."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        return f"died with signal {signal_name(-code)} (exit code {code})"
    return f"exited with code {code}"


@dataclass
class RunReport:
    """The per-rank results of one task, plus what happened to the pool."""

    results: list[Result]
    seconds: float
    timed_out: bool = False
    died: dict[int, str] = field(default_factory=dict)  # rank -> "died with signal SIGSEGV (exit code -11)"
    restarted: bool = False  # the pool was torn down after this task




def default_start_method() -> str:
    """forkserver where available: torch is imported once in the server and every rank (and every restart after a
    hang) is a cheap fork of a process that never touched a device; spawn (set CONFORMANCE_POOL_START=spawn)
    pays `import torch` per rank per start."""
    chosen = settings.POOL_START.raw()
    if chosen:
        return chosen
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class LocalPool:
    def __init__(self, world_size: int, profile: Profile, backend: str, *, timeout_s: float = 120.0,
                 pg_timeout_s: float | None = None, startup_timeout_s: float = 300.0, grace_s: float = GRACE_S,
                 start_method: str | None = None, scenario_modules: tuple[str, ...] = ()):
        self.world_size = world_size
        self.scenario_modules = scenario_modules  # imported by every rank at start
        self.profile = profile  # rank variables, imports and the torch device type come from it
        self.backend = backend
        self.timeout_s = timeout_s
        # Collectives give up before the check does, so a mismatched send/recv becomes a traceback, not a kill.
        self.pg_timeout_s = pg_timeout_s or max(5.0, min(timeout_s * 0.75, timeout_s - 5.0))
        self.startup_timeout_s = startup_timeout_s
        self.grace_s = grace_s
        self.start_method = start_method or default_start_method()
        self.procs: list = []
        self._seq = 0
        self._dir: str | None = None
        self.starts = 0
        self.startup_seconds: list[float] = []

    @property
    def alive(self) -> bool:
        return bool(self.procs) and all(p.is_alive() for p in self.procs)

    def start(self) -> None:
        if self.procs:
            return
        for k, v in worker.rank_env(self.profile).items():
            os.environ.setdefault(k, v)  # spawned ranks inherit it before any communicator exists
        t0 = time.perf_counter()
        # start_method is "forkserver" or "spawn" (pools.start_method): both contexts have Process
        ctx = cast("mp.context.ForkServerContext | mp.context.SpawnContext", mp.get_context(self.start_method))
        if self.start_method == "forkserver":
            # Only torch: nothing in the server may create a device context or threads a fork would copy.
            ctx.set_forkserver_preload(["torch", "torch.distributed", "conformance.pool.worker"])
        self._dir = tempfile.mkdtemp(prefix=f"conformance-pool-w{self.world_size}-")
        cfg = worker.WorkerConfig(self.world_size, self.profile.name, self.backend,
                                  os.path.join(self._dir, "store"), self._dir, self.pg_timeout_s, os.getpid(),
                                  dict(os.environ), self.scenario_modules)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(self.world_size)]
        self.procs = [ctx.Process(target=worker.main, args=(r, cfg, self.tasks[r], self.results),
                                  name=f"conformance-rank{r}", daemon=True) for r in range(self.world_size)]
        for p in self.procs:
            p.start()
        self.starts += 1
        ready: dict[int, Result] = {}
        deadline = time.monotonic() + self.startup_timeout_s
        while len(ready) < self.world_size:
            try:
                r = self.results.get(timeout=0.2)
            except queue.Empty:
                dead = [(i, p.exitcode) for i, p in enumerate(self.procs) if not p.is_alive() and i not in ready]
                if dead or time.monotonic() > deadline:
                    stacks = self._dump_stacks()
                    self.close(kill=True)
                    what = (", ".join(f"rank {i} {describe_exit(c)}" for i, c in dead) if dead
                            else f"not all ranks ready after {self.startup_timeout_s:.0f} s")
                    raise PoolError(
                        f"world {self.world_size} pool did not start: {what}\n{_join_stacks(stacks)}") from None
                continue
            if r.outcome != "passed":
                self.close(kill=True)
                raise PoolError(f"world {self.world_size} pool did not start: {r.message}\n{r.traceback}")
            ready[r.rank] = r
        self.startup_seconds.append(time.perf_counter() - t0)

    def run(self, task_or_check: Task | str, scenario: str | None = None, params: dict | None = None,
            timeout_s: float | None = None) -> RunReport:
        """Run one task on every rank; always returns one Result per rank (stuck or dead ranks get errors)."""
        self.start()
        self._seq += 1
        task = (task_or_check if isinstance(task_or_check, Task)
                else Task(self._seq, task_or_check, scenario or "", params or {}))
        task = Task(self._seq, task.check_id, task.scenario, task.params, task.modules)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        offsets = self._stack_offsets()
        t0 = time.monotonic()
        for q in self.tasks:
            q.put(task)
        got: dict[int, Result] = {}
        died: dict[int, str] = {}
        first_bad: float | None = None
        timed_out = False
        while len(got) + len(died) < self.world_size:
            now = time.monotonic()
            if now - t0 > timeout or (first_bad is not None and now - first_bad > self.grace_s):
                timed_out = True
                break
            try:
                r = self.results.get(timeout=0.1)
            except queue.Empty:
                for i, p in enumerate(self.procs):
                    if i not in got and i not in died and not p.is_alive():
                        died[i] = describe_exit(p.exitcode)
                        first_bad = first_bad or time.monotonic()
                continue
            if r.seq != task.seq:
                continue  # a late answer to an earlier, already reported task
            got[r.rank] = r
            if r.outcome in ("failed", "error"):
                first_bad = first_bad or time.monotonic()
        report = RunReport([], time.monotonic() - t0, timed_out=timed_out, died=died)
        broken = timed_out or bool(died)
        silent = [i for i in range(self.world_size) if i not in got and i not in died]
        stacks = self._dump_stacks(offsets, signal_ranks=silent) if broken else {}
        for i in range(self.world_size):
            if i in got:
                report.results.append(got[i])
            elif i in died:
                report.results.append(Result(task.seq, i, "error", f"rank {i} {died[i]}", stacks.get(i, "")))
            else:
                why = (f"rank {i} did not finish within {self.grace_s:.0f} s after another rank failed"
                       if first_bad is not None and not (report.seconds > timeout)
                       else f"rank {i} timed out after {timeout:.0f} s")
                report.results.append(Result(task.seq, i, "error", why, stacks.get(i, "")))
        if broken:
            self.close(kill=True)
            report.restarted = True
        elif any(r.outcome != "passed" for r in report.results) and not self._healthy():
            # A failed check can leave unmatched sends/recvs behind; a fresh pool is cheaper than a wrong next result.
            self.close(kill=True)
            report.restarted = True
        return report

    def _healthy(self) -> bool:
        self._seq += 1
        task = Task(self._seq, "<health>", "ping", {})
        for q in self.tasks:
            q.put(task)
        ok = 0
        deadline = time.monotonic() + min(30.0, self.pg_timeout_s + 5)
        while ok < self.world_size and time.monotonic() < deadline:
            try:
                r = self.results.get(timeout=0.1)
            except queue.Empty:
                if not self.alive:
                    return False
                continue
            if r.seq == task.seq:
                if r.outcome != "passed":
                    return False
                ok += 1
        return ok == self.world_size

    def _stack_offsets(self) -> dict[int, int]:
        out = {}
        for i in range(self.world_size):
            try:
                out[i] = os.path.getsize(worker.stacks_path(self._dir or "", i))
            except OSError:
                out[i] = 0
        return out

    def _dump_stacks(self, offsets: dict[int, int] | None = None,
                     signal_ranks: list[int] | None = None) -> dict[int, str]:
        """Ask the given ranks (default: all alive) for their Python stacks and read what every rank wrote."""
        if not self._dir:
            return {}
        offsets = offsets or {}
        targets = range(self.world_size) if signal_ranks is None else signal_ranks
        sent = False
        for i in targets:
            p = self.procs[i] if i < len(self.procs) else None
            if p is not None and p.is_alive() and p.pid and hasattr(signal, "SIGUSR1"):
                try:
                    os.kill(p.pid, signal.SIGUSR1)
                    sent = True
                except OSError:
                    pass
        if sent:
            _wait_quiet([worker.stacks_path(self._dir, i) for i in targets])
        out = {}
        for i in range(self.world_size):
            try:
                with open(worker.stacks_path(self._dir, i), errors="replace") as f:
                    f.seek(offsets.get(i, 0))
                    text = f.read().strip()
            except OSError:
                text = ""
            if text:
                out[i] = f"--- Python stacks of rank {i} (faulthandler) ---\n{text}"
        return out

    def close(self, kill: bool = False) -> None:
        """Stop the ranks (politely unless `kill`), then kill whatever is left with its process group."""
        procs, self.procs = self.procs, []
        if not kill:
            for q in getattr(self, "tasks", []):
                try:
                    q.put(STOP)
                except Exception:
                    pass
            deadline = time.monotonic() + 10
            for p in procs:
                p.join(timeout=max(0.1, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive() and p.pid:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    p.kill()
        for p in procs:
            p.join(timeout=5)
        for q in [getattr(self, "results", None), *getattr(self, "tasks", [])]:
            if q is not None:
                q.close()
                q.cancel_join_thread()
        self.tasks = []
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _wait_quiet(paths: list[str], limit_s: float = 3.0) -> None:
    """Wait until the stack files stop growing: faulthandler writes from each rank asynchronously."""
    deadline = time.monotonic() + limit_s
    last = None
    time.sleep(0.2)
    while time.monotonic() < deadline:
        sizes = []
        for p in paths:
            try:
                sizes.append(os.path.getsize(p))
            except OSError:
                sizes.append(-1)
        if sizes == last:
            return
        last = sizes
        time.sleep(0.2)


def _join_stacks(stacks: dict[int, str]) -> str:
    return "\n".join(stacks[i] for i in sorted(stacks))
