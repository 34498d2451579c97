"""World size 1 inside the calling process: all stages local, a one-rank process group just for the task."""

from __future__ import annotations

import time

from conformance.pool.local import RunReport
from conformance.pool.scenarios import RankContext
from conformance.pool.worker import execute
from conformance.protocol.tasks import Task
from conformance.torchenv.profiles import Profile


def run(task: Task, profile: Profile, backend: str) -> RunReport:
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        # A HashStore needs no port or file; the group exists only for this task so no state leaks to other checks.
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    elif dist.get_world_size() != 1:
        raise RuntimeError(f"a process group of world size {dist.get_world_size()} is already initialized in pytest")
    t0 = time.monotonic()
    try:
        result = execute(RankContext(0, 1, profile, profile.device_string(0), backend, in_process=True), task)
    finally:
        if own:
            dist.destroy_process_group()
    return RunReport([result], time.monotonic() - t0)
