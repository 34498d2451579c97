"""Scenarios the pool itself needs: `ping` (are all ranks alive and the process group usable?)."""

from __future__ import annotations

from conformance.pool.scenarios import RankContext, register


@register("ping")
def ping(ctx: RankContext, params: dict) -> dict:
    """An all-reduce of rank numbers: proves every rank runs and collectives still work after a failed check."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(ctx.rank)], device=ctx.torch_device)
    if dist.is_initialized() and ctx.world_size > 1:
        dist.all_reduce(t)
        expected = ctx.world_size * (ctx.world_size - 1) / 2
        if t.item() != expected:
            raise AssertionError(f"all_reduce of ranks gave {t.item()}, expected {expected}")
    return {"rank": ctx.rank, "world_size": ctx.world_size, "pid": __import__("os").getpid(),
            "threads": torch.get_num_threads()}
