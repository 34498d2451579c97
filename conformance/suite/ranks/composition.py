"""Rank side of the composition checks: pipeline stages that are also FSDP2-, DDP- or TP-sharded, checkpointed or
compiled, trained for two steps and compared with the unsplit model on the same global batch.

The mesh is built from the pool's default process group (`init_device_mesh` over the ranks already joined), so no
process starts for a check. Every rank runs the unsplit reference itself, so only counts travel back to pytest:
the pytest side checks that every loss, gradient and parameter was compared.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.protocol.outcomes import not_applicable
from conformance.suite import tolerances
from conformance.suite.ranks.common import loss_fn, schedule_class
from conformance.suite.ranks.schedules import SINGLE, stage_ids

PP = 2  # pipeline degree of every mesh; the other mesh dimension is world // PP
N_LAYERS = 8  # 2 or 4 stages of 4 or 2 blocks
D_MODEL = 8
MB_SIZE = 2
STEPS = 2  # one optimizer step, then a second one from the moved weights
LR = 0.1
DROPOUT = 0.25
SEED = 0
SCHEDULES = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B", "ScheduleZBVZeroBubble")
KINDS = ("fsdp", "ddp", "tp", "checkpoint", "compile")
DATA_PARALLEL = ("fsdp", "ddp", "checkpoint", "compile")  # the second mesh dimension splits the batch

_MESHES: dict[tuple, Any] = {}


def block_class():
    """An MLP block with a residual: `w_in` (d -> 2d), ReLU, optional dropout, `w_out` (2d -> d).

    With dropout, the RNG is seeded from the microbatch's own id (a per-sample kwarg) before the block runs, so
    the unsplit model and any pipelined, sharded copy draw the same masks; inside `checkpoint` the recompute in
    backward must restore that state (`preserve_rng_state`), which is what the checkpoint check proves.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils import checkpoint as ckpt

    class Block(nn.Module):
        def __init__(self, index: int, dropout: float, checkpointed: bool) -> None:
            super().__init__()
            self.w_in = nn.Linear(D_MODEL, 2 * D_MODEL)
            self.w_out = nn.Linear(2 * D_MODEL, D_MODEL)
            self.index, self.dropout, self.checkpointed = index, dropout, checkpointed

        def inner(self, x):
            h = F.relu(self.w_in(x))
            if self.dropout:
                h = F.dropout(h, self.dropout, training=True)
            return x + self.w_out(h)

        def forward(self, x, mb_id=None):
            if self.dropout:
                torch.manual_seed(10_000 * (self.index + 1) + int(mb_id.reshape(-1)[0].item()))
            if self.checkpointed:
                return ckpt.checkpoint(self.inner, x, use_reentrant=False)
            return self.inner(x)

    return Block


def model_class():
    """The model: `layers` is a ModuleDict keyed by global block index, so a stage that keeps some of them keeps
    the unsplit model's parameter names (what distributed checkpoints are keyed by)."""
    import torch.nn as nn

    class Stack(nn.Module):
        def __init__(self, blocks: dict) -> None:
            super().__init__()
            self.layers = nn.ModuleDict(blocks)

        def forward(self, x, mb_id=None):
            for b in self.layers.values():
                x = b(x, mb_id)
            return x

    return Stack


def build_model(p: dict, device, layers: range | None = None):
    """The seeded model (every block, or only `layers`), identical on every rank."""
    import torch

    Block, Stack = block_class(), model_class()
    torch.manual_seed(SEED)
    dropout = DROPOUT if p["kind"] == "checkpoint" else 0.0
    blocks = {str(i): Block(i, dropout, p["kind"] == "checkpoint") for i in range(N_LAYERS)}
    keep = range(N_LAYERS) if layers is None else layers
    return Stack({k: b for k, b in blocks.items() if int(k) in keep}).to(device)


def stage_layers(sid: int, n_stages: int) -> range:
    per = N_LAYERS // n_stages
    return range(sid * per, (sid + 1) * per)


def mesh(ctx: RankContext, shape: tuple[int, ...], names: tuple[str, ...]):
    """A device mesh over the pool's default group, built once per shape for the life of the ranks."""
    from torch.distributed.device_mesh import init_device_mesh

    key = (ctx.device_type, shape, names)
    if key not in _MESHES:
        _MESHES[key] = init_device_mesh(ctx.device_type, shape, mesh_dim_names=names)
    return _MESHES[key]


def params_with_defaults(params: dict) -> dict:
    return {"reshard": True, "mixed_precision": False, "n_microbatches": 4, **params}


def compile_unavailable(device_type: str) -> str | None:
    """Why this build cannot compile for the device, decided without compiling (never hangs)."""
    import importlib.util

    import torch

    if not hasattr(torch, "compile"):
        return "torch.compile is not in this build"
    if device_type == "cpu":
        cxx = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        if not any(c and shutil.which(c) for c in cxx):
            return "inductor on cpu needs a C++ compiler (none of $CXX, g++, c++, clang++ is on PATH)"
    elif device_type in ("cuda", "xpu") and importlib.util.find_spec("triton") is None:
        return f"inductor on {device_type} needs triton, which this build lacks"
    return None


@dataclass
class Layout:
    """Where this rank sits: the mesh, its pipeline and data/tensor coordinates, and its stages."""

    pp_group: Any
    pp_rank: int
    second: Any  # the dp or tp sub-mesh
    second_rank: int
    second_size: int
    data_parallel: int  # how many replicas split the global batch
    sids: list[int]
    n_stages: int


def layout(ctx: RankContext, p: dict) -> Layout:
    if ctx.world_size % PP:
        raise Skip(not_applicable(f"world {ctx.world_size} is not a multiple of the pipeline degree {PP}"))
    other = "tp" if p["kind"] == "tp" else "dp"
    m = mesh(ctx, (PP, ctx.world_size // PP), ("pp", other))
    pp_rank, second_rank = m["pp"].get_local_rank(), m[other].get_local_rank()
    name = p["schedule"]
    sids = stage_ids(name, pp_rank, PP)
    n_stages = PP if name in SINGLE else 2 * PP
    size = m[other].size()
    return Layout(m["pp"].get_group(), pp_rank, m[other], second_rank, size,
                  size if other == "dp" else 1, sids, n_stages)


def wrap_stage(ctx: RankContext, p: dict, lay: Layout, module):
    """Apply the composition to one stage module (FSDP2 per block and at the root, DDP, TP, compile)."""
    import torch

    kind = p["kind"]
    if kind == "compile":
        for name, block in list(module.layers.items()):
            module.layers[name] = torch.compile(block)
    if kind in ("fsdp", "checkpoint", "compile"):
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        kw: dict[str, Any] = {"mesh": lay.second, "reshard_after_forward": p["reshard"]}
        if p["mixed_precision"]:
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in module.layers.values():
            fully_shard(block, **kw)
        return fully_shard(module, **kw)
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        dev_ids = None if ctx.device_type == "cpu" else [ctx.torch_device]
        return DistributedDataParallel(module, process_group=lay.second.get_group(), device_ids=dev_ids)
    if kind == "tp":
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        for block in module.layers.values():
            parallelize_module(block, lay.second, {"w_in": ColwiseParallel(), "w_out": RowwiseParallel()})
        return module
    raise ValueError(f"unknown composition {kind!r}")


def full(t):
    """A parameter or gradient as one full tensor: gathered when it is a DTensor shard."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def local_module(mod):
    return getattr(mod, "module", mod)  # DDP keeps the model in `.module`


def named_parameters(mod):
    """(name in the unsplit model, parameter) of a stage module: DDP's `module.` and compile's `_orig_mod.` go."""
    for name, prm in local_module(mod).named_parameters():
        yield name.replace("_orig_mod.", ""), prm


@dataclass
class Counts:
    losses: int = 0
    grads: int = 0
    params: int = 0
    names: set = field(default_factory=set)


class Compare:
    """Comparisons with the unsplit model within the tolerance table; low precision scales atol by the largest
    entry (microbatch gradients accumulate in a different order)."""

    def __init__(self, api: str, device: str, dtype: str, where: str) -> None:
        self.api, self.device, self.dtype, self.where = api, device, dtype, where
        self.counts = Counts()

    def close(self, got, exp, what: str) -> None:
        __tracebackhide__ = True
        import torch

        t = tolerances.tol(self.device, self.dtype)
        atol = t.atol if self.dtype == "float32" else max(t.atol, t.rtol * exp.detach().abs().max().item())
        got = got.detach().to(exp.dtype)
        try:
            torch.testing.assert_close(got, exp.detach(), rtol=t.rtol, atol=atol)
        except AssertionError as exc:
            raise AssertionError(f"{self.api}: {what} differs from the unsplit model on {self.device} "
                                 f"({self.dtype}, rtol={t.rtol}, atol={atol:.3g}) [{self.where}]: {exc}") from None


@dataclass
class Reference:
    """The unsplit model on the whole global batch, with the same optimizer."""

    model: Any
    compute: Any  # the model the forward runs on (a bf16 copy under mixed precision)
    opt: Any
    params: dict


def reference(p: dict, device) -> Reference:
    import torch

    model = build_model(p, device)
    compute = model
    if p["mixed_precision"]:
        import copy

        compute = copy.deepcopy(model).to(torch.bfloat16)
    return Reference(model, compute, torch.optim.SGD(model.parameters(), lr=LR), dict(model.named_parameters()))


def reference_step(ref: Reference, x_mbs: list, y_mbs: list, id_mbs: list, with_ids: bool) -> list:
    """Forward/backward of every microbatch of the global batch, gradients averaged over all of them (what PP's
    scale_grads and the data-parallel mean give together); returns the losses."""
    import torch

    ref.model.zero_grad(set_to_none=True)
    low = ref.compute is not ref.model
    dtype = next(ref.compute.parameters()).dtype
    src = dict(ref.compute.named_parameters())
    losses = []
    for x, y, i in zip(x_mbs, y_mbs, id_mbs, strict=True):
        if low:
            ref.compute.zero_grad(set_to_none=True)
        loss = loss_fn(ref.compute(x.to(dtype), i if with_ids else None), y)
        loss.backward()
        losses.append(loss.detach())
        if low:  # FSDP accumulates low-precision microbatch gradients in its fp32 reduce dtype
            with torch.no_grad():
                for name, prm in ref.params.items():
                    g = src[name].grad.float()
                    prm.grad = g if prm.grad is None else prm.grad + g
    with torch.no_grad():
        for prm in ref.params.values():
            prm.grad.div_(len(x_mbs))
    return losses


def reference_update(ref: Reference) -> None:
    import torch

    ref.opt.step()
    if ref.compute is not ref.model:
        with torch.no_grad():
            for name, prm in ref.compute.named_parameters():
                prm.copy_(ref.params[name])


def inputs(ctx: RankContext, n_total: int):
    """The global batch as microbatches: inputs, targets and each microbatch's id (a per-sample kwarg)."""
    import torch

    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n_total * MB_SIZE, D_MODEL, generator=g).to(ctx.torch_device)
    y = torch.randn(n_total * MB_SIZE, D_MODEL, generator=g).to(ctx.torch_device)
    ids = torch.arange(n_total, dtype=torch.float32).repeat_interleave(MB_SIZE).reshape(-1, 1).to(ctx.torch_device)
    return x, y, ids


@dataclass
class Pipelined:
    stages: list
    modules: list  # the wrapped stage modules, in stage order
    sched: Any
    opt: Any
    first: bool
    last: bool


def build_pipeline(ctx: RankContext, p: dict, lay: Layout) -> Pipelined:
    import torch
    from torch.distributed.pipelining import PipelineStage

    cls = schedule_class(p["schedule"])
    stages, modules = [], []
    for sid in lay.sids:
        mod = wrap_stage(ctx, p, lay, build_model(p, ctx.torch_device, stage_layers(sid, lay.n_stages)))
        modules.append(mod)
        stages.append(PipelineStage(mod, sid, lay.n_stages, ctx.torch_device, group=lay.pp_group))
    arg = stages[0] if p["schedule"] in SINGLE else stages
    sched = cls(arg, n_microbatches=p["n_microbatches"], loss_fn=loss_fn)
    opt = torch.optim.SGD([prm for m in modules for prm in m.parameters()], lr=LR)
    return Pipelined(stages, modules, sched, opt, any(s.is_first for s in stages), any(s.is_last for s in stages))


def compare_step(cmp: Compare, pipe: Pipelined, ref: Reference, losses: list, ref_losses: list, offset: int,
                 step: int) -> None:
    """Losses on the last stage, then every gradient of this rank's stages, gathered to full."""
    n_mb = len(ref_losses) if not losses else len(losses)
    if pipe.last:
        if len(losses) != n_mb or not losses:
            raise AssertionError(f"{cmp.api}: step {step}: {len(losses)} microbatch losses [{cmp.where}]")
        for i, loss in enumerate(losses):
            cmp.close(loss, ref_losses[offset + i], f"loss of microbatch {offset + i} (step {step})")
            cmp.counts.losses += 1
    for mod in pipe.modules:
        for name, prm in named_parameters(mod):
            if prm.grad is None:
                raise AssertionError(f"{cmp.api}: {name} has no gradient after step {step} [{cmp.where}]")
            cmp.close(full(prm.grad), ref.params[name].grad, f"gradient of {name} (step {step})")
            cmp.counts.grads += 1
            cmp.counts.names.add(name)


def compare_params(cmp: Compare, pipe: Pipelined, ref: Reference, step: int) -> None:
    for mod in pipe.modules:
        for name, prm in named_parameters(mod):
            cmp.close(full(prm), ref.params[name], f"{name} after optimizer step {step}")
            cmp.counts.params += 1


@register("composition")
def run_composition(ctx: RankContext, params: dict) -> dict:
    """Two training steps of a pipelined, sharded model against the unsplit model on the same global batch."""
    p = params_with_defaults(params)
    if p["mixed_precision"] and (why := tolerances.unsupported(ctx.device_type, "bfloat16")):
        raise Skip(not_applicable(why))
    if p["kind"] == "compile" and (why := compile_unavailable(ctx.device_type)):
        raise Skip(not_applicable(why))
    lay = layout(ctx, p)
    n_mb = p["n_microbatches"]
    n_total = n_mb * lay.data_parallel
    x, y, ids = inputs(ctx, n_total)
    x_mbs, y_mbs, id_mbs = x.chunk(n_total), y.chunk(n_total), ids.chunk(n_total)
    ref = reference(p, ctx.torch_device)
    pipe = build_pipeline(ctx, p, lay)
    d = lay.second_rank if lay.data_parallel > 1 else 0
    rows = slice(d * n_mb * MB_SIZE, (d + 1) * n_mb * MB_SIZE)
    dtype = "bfloat16" if p["mixed_precision"] else "float32"
    api = f"{p['schedule']}+{p['kind']}"
    cmp = Compare(api, ctx.device_type, dtype, f"world {ctx.world_size} rank {ctx.rank} stages {lay.sids}")
    for step in range(STEPS):
        ref_losses = reference_step(ref, list(x_mbs), list(y_mbs), list(id_mbs), p["kind"] == "checkpoint")
        pipe.opt.zero_grad(set_to_none=True)
        losses: list = []
        args = (x[rows],) if pipe.first else ()
        kwargs = {"mb_id": ids[rows]} if p["kind"] == "checkpoint" else {}  # only dropout needs the ids
        pipe.sched.step(*args, target=y[rows] if pipe.last else None, losses=losses, **kwargs)
        compare_step(cmp, pipe, ref, losses, ref_losses, d * n_mb, step)
        reference_update(ref)
        pipe.opt.step()
        compare_params(cmp, pipe, ref, step)
    c = cmp.counts
    return {"losses": c.losses, "grads": c.grads, "params": c.params, "names": sorted(c.names),
            "last": pipe.last, "stages": lay.sids, "pp_rank": lay.pp_rank, "second_rank": lay.second_rank,
            "n_total": n_total}


def _shared_dir(ctx: RankContext) -> str:
    """A fresh folder every rank of this host writes to: made by rank 0, its name broadcast."""
    import torch.distributed as dist

    box = [tempfile.mkdtemp(prefix="conformance-dcp-") if ctx.rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def _assert_equal_tensors(api: str, got, exp, what: str) -> None:
    import torch

    if not torch.equal(got.detach().cpu(), exp.detach().cpu()):
        diff = (got.detach().cpu().float() - exp.detach().cpu().float()).abs().max().item()
        raise AssertionError(f"{api}: {what}: not equal to the saved parameter (max difference {diff:.3g})")


def relayout(ctx: RankContext, p: dict):
    """The whole model under FSDP2 over every rank, (pp=1, dp=world): the layout a resumed run might pick."""
    from torch.distributed.fsdp import fully_shard

    model = build_model(p, ctx.torch_device)
    m = mesh(ctx, (ctx.world_size,), ("dp",))
    for block in model.layers.values():
        fully_shard(block, mesh=m)
    return fully_shard(model, mesh=m)


@register("composition_dcp")
def run_distributed_checkpoint(ctx: RankContext, params: dict) -> dict:
    """Train PP x FSDP2 one step, save it with torch.distributed.checkpoint, load it into the unsplit model and into
    a (pp=1, dp=world) FSDP2 layout: every parameter must equal the saved one exactly."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    p = params_with_defaults({"kind": "fsdp", "schedule": "ScheduleGPipe", **params})
    api = "torch.distributed.checkpoint"
    lay = layout(ctx, p)
    pipe = build_pipeline(ctx, p, lay)
    n_mb = p["n_microbatches"]
    x, y, _ = inputs(ctx, n_mb * lay.data_parallel)
    rows = slice(lay.second_rank * n_mb * MB_SIZE, (lay.second_rank + 1) * n_mb * MB_SIZE)
    pipe.sched.step(*((x[rows],) if pipe.first else ()), target=y[rows] if pipe.last else None)
    pipe.opt.step()  # the saved weights are not the seeded ones, so a load that does nothing cannot pass
    path = _shared_dir(ctx)
    try:
        saved = {name: prm for mod in pipe.modules for name, prm in named_parameters(mod)}
        dcp.save(saved, checkpoint_id=path)
        unsplit = build_model(p, ctx.torch_device)
        loaded = unsplit.state_dict()
        dcp.load(loaded, checkpoint_id=path)
        for name, prm in saved.items():
            _assert_equal_tensors(api, loaded[name], full(prm), f"{name} loaded into the unsplit model")
        other = relayout(ctx, p)
        state = dict(named_parameters(other))
        dcp.load(state, checkpoint_id=path)
        for name, prm in state.items():
            _assert_equal_tensors(api, full(prm), loaded[name], f"{name} loaded into (pp=1, dp={ctx.world_size})")
    finally:
        dist.barrier()
        if ctx.rank == 0:
            shutil.rmtree(path, ignore_errors=True)
    return {"saved": sorted(saved), "unsplit": len(saved), "relayout": len(state), "model": len(loaded)}
