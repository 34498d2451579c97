"""Rank side of the realistic step-cost tier: transformer-block stages where one pipeline action costs milliseconds.

The step-cost model (`behaviour.step_cost`, Linear+GELU blocks) makes an action cost about 0.15 ms on an H100/H200,
so it measures the runtime's per-action overhead; published zero-bubble and interleaved results come from stages
whose actions cost milliseconds. This tier builds such stages: pre-norm transformer blocks (RMSNorm, attention
through `scaled_dot_product_attention`, causal; a GELU MLP of 4x the hidden size), hidden 4096, bf16, microbatches
of (1, 1024, 4096), m = 16 >= 2p, 4 blocks per rank split evenly over the rank's stages, and times it like the
step-cost model (`behaviour.timed_steps`). Accelerators only: on CPU the pytest side never starts it.
"""

from __future__ import annotations

from typing import Any

from conformance.pool.scenarios import RankContext, register
from conformance.suite.ranks import behaviour, common, schedules

TIER = {"d_hid": 4096, "heads": 32, "seq": 1024, "mb_size": 1, "n_microbatches": 16, "blocks_per_rank": 4,
        "dtype": "bf16", "warmup": 2, "steps": 5, "seed": 0}


def describe(p: dict) -> str:
    """The model in one line, for the report."""
    return (f"{p['blocks_per_rank']} transformer blocks per rank (RMSNorm, SDPA causal attention with {p['heads']} "
            f"heads, GELU MLP 4x), hidden {p['d_hid']}, {p['dtype']}, microbatches of ({p['mb_size']}, {p['seq']}, "
            f"{p['d_hid']}), m = {p['n_microbatches']}")


def block(d: int, heads: int) -> Any:
    """One pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""
    import torch.nn.functional as F
    from torch import nn

    norm = getattr(nn, "RMSNorm", nn.LayerNorm)  # RMSNorm from torch 2.4

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = norm(d), norm(d)
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.proj = nn.Linear(d, d, bias=False)
            self.up = nn.Linear(d, 4 * d, bias=False)
            self.down = nn.Linear(4 * d, d, bias=False)

        def forward(self, x: Any) -> Any:
            b, s, _ = x.shape
            q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
            return x + self.down(F.gelu(self.up(self.norm2(x))))

    return Block()


def prepare(ctx: RankContext, p: dict) -> schedules.ScheduleRun:
    """This rank's stages of `blocks_per_rank` blocks (split evenly over its stages) and the schedule over them."""
    import torch
    from torch import nn
    from torch.distributed.pipelining import PipelineStage

    name = p["schedule"]
    cls = common.schedule_class(name)
    dtype = getattr(torch, schedules.DTYPES[p["dtype"]])
    n_st = schedules.num_stages(name, ctx.world_size)
    sids = schedules.stage_ids(name, ctx.rank, ctx.world_size)
    per_stage = p["blocks_per_rank"] // len(sids)
    stages = []
    for s in sids:
        torch.manual_seed(p["seed"] + s)
        with torch.device(ctx.torch_device):  # built where it runs: 400 MB of bf16 weights per block
            part = nn.Sequential(*[block(p["d_hid"], p["heads"]) for _ in range(per_stage)]).to(dtype)
        stages.append(PipelineStage(part, s, n_st, ctx.torch_device))
    n_mb = p["n_microbatches"]
    g = torch.Generator().manual_seed(1234 + p["seed"])
    shape = (n_mb * p["mb_size"], p["seq"], p["d_hid"])
    x = torch.randn(*shape, generator=g).to(device=ctx.torch_device, dtype=dtype)
    y = torch.randn(*shape, generator=g).to(device=ctx.torch_device, dtype=dtype)
    inputs = {"x": x, "y": y, "x_mbs": list(x.chunk(n_mb)), "y_mbs": list(y.chunk(n_mb))}
    sched_stages: Any = stages[0] if name in schedules.SINGLE else stages
    sched = cls(sched_stages, n_microbatches=n_mb, loss_fn=common.loss_fn)
    return schedules.ScheduleRun(p={**p, "kwargs": False}, name=name, world=ctx.world_size, rank=ctx.rank,
                                 dev_type=ctx.device_type, n_mb=n_mb, sids=sids, train=True, scaled=True,
                                 inputs=inputs, ref=None, ref_params={}, stages=stages, names=[{} for _ in stages],
                                 sched=sched, first=any(st.is_first for st in stages),
                                 last=any(st.is_last for st in stages))


@register("step_tier")
def run_step_tier(ctx: RankContext, params: dict) -> dict:
    """Step time, per-action traces and peak memory of one schedule on the realistic tier (accelerators only)."""
    import gc

    module = behaviour.accelerator(ctx)
    p = {**TIER, **params}
    gc.collect()  # the previous check's stages must not count in this one's peak
    module.empty_cache()
    run = prepare(ctx, p)
    out = behaviour.timed_steps(ctx, run, module, p["warmup"], p["steps"])
    del run
    gc.collect()
    module.empty_cache()  # 1.6 GB of weights per rank: give them back before the next schedule builds its own
    return {**out, "model": describe(p)}
