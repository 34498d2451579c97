"""The session's pools, one per world size, started lazily; also the isolate mode and the world-1 shortcut.

Modes: `persistent` (default) keeps ranks between checks; `isolate` starts fresh ranks for every check, as
PyTorch's MultiProcessTestCase does (for debugging, and the benchmark's baseline). Under an external launcher
(`CONFORMANCE_LAUNCHER=torchrun`) the ranks are the launcher's, see `conformance.pool.launcher`.
"""

from __future__ import annotations

from conformance.pool import inprocess, worker
from conformance.pool.local import LocalPool, PoolError, RunReport
from conformance.protocol import settings
from conformance.protocol.tasks import Task
from conformance.torchenv.profiles import Profile

DEFAULT_TIMEOUT_S = float(settings.CHECK_TIMEOUT.default)


class Unavailable(Exception):
    """This host cannot run the world size (e.g. fewer devices than ranks): the check is unavailable, not failed."""


class Pools:
    def __init__(self, profile: Profile, backend: str, device_count: int, *, mode: str = settings.POOL_MODES[0],
                 timeout_s: float = DEFAULT_TIMEOUT_S, launcher=None, scenario_modules: tuple[str, ...] = ()):
        if mode not in settings.POOL_MODES:
            raise ValueError(f"unknown pool mode {mode!r}: choose one of {', '.join(settings.POOL_MODES)}")
        self.profile = profile  # the env's device; its ranks work with its torch device type (rocm: cuda)
        self.no_backend = "" if backend else (profile.no_backend_reason or "no backend")
        # devices that are counted (a device module): a simulated device on CPU tensors is counted, the host is not
        self.counted = bool(profile.device_module)
        self.backend, self.device_count = backend, device_count
        self.scenario_modules = tuple(scenario_modules)  # sent with every task: the ranks import them
        self.mode, self.timeout_s = mode, timeout_s
        self.launcher = launcher
        self._pools: dict[int, LocalPool] = {}
        self._broken: dict[int, str] = {}  # world size -> why its pool could not start
        self._seq = 0

    def check_available(self, world_size: int) -> None:
        if self.no_backend:  # even world 1 runs in a process group
            raise Unavailable(f"{self.profile.name}: {self.no_backend}")
        if self.launcher is not None:
            # World 1 too: the launcher's process group is the default group, which a local one-rank group
            # cannot replace inside rank 0's pytest process.
            if world_size != self.launcher.world_size:
                raise Unavailable(f"needs world size {world_size}, the launcher gives {self.launcher.world_size}")
            return
        if world_size > 1 and self.counted and self.device_count < world_size:
            raise Unavailable(f"needs {world_size} {self.profile.name} devices, found {self.device_count}")

    def run(self, world_size: int, check_id: str, scenario: str, params: dict | None = None,
            timeout_s: float | None = None) -> RunReport:
        """Run one check on `world_size` ranks. Raises Unavailable or PoolError; a failed check is a report."""
        self.check_available(world_size)
        self._seq += 1
        task = Task(self._seq, check_id, scenario, dict(params or {}), self.scenario_modules)
        if world_size == 1:
            worker.prepare_rank(self.profile)  # this process is the one rank: the profile's rank env applies here
            return inprocess.run(task, self.profile, self.backend)
        if self.launcher is not None:
            return self.launcher.run(task, timeout_s or self.timeout_s)
        if world_size in self._broken:
            raise PoolError(self._broken[world_size])
        pool = self._pools.get(world_size)
        if pool is None:
            # Isolate mirrors MultiProcessTestCase: freshly spawned interpreters for every check.
            pool = self._pools[world_size] = LocalPool(world_size, self.profile, self.backend,
                                                       timeout_s=self.timeout_s,
                                                       start_method="spawn" if self.mode == "isolate" else None,
                                                       scenario_modules=self.scenario_modules)
        try:
            return pool.run(task, timeout_s=timeout_s)
        except PoolError as exc:
            # Starting again for every later check would cost minutes for the same answer: later checks of this
            # world size fail at once with the same reason.
            self._broken[world_size] = f"{exc} (first seen at {check_id})"
            raise
        finally:
            if self.mode == "isolate":
                pool.close()

    def stats(self) -> dict[int, dict]:
        return {w: {"starts": p.starts, "startup_seconds": p.startup_seconds} for w, p in self._pools.items()}

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        if self.launcher is not None:
            self.launcher.close()
