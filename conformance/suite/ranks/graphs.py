"""Rank side of the graphs area: split backward on real graph shapes, DTensor activations between stages,
checkpoints across pipeline layouts with optimizer state, receive ordering options, plans as data, and FSDP2 with
many local stages per rank.

Every scenario runs the unsplit reference (or the build's default path) itself and compares where the tensors are;
only outcomes per case and counts travel back, so one rank-side run can serve several check ids (the pytest side
caches it). Models are tiny: the point is the graph shape, not the size.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.protocol.outcomes import not_applicable
from conformance.suite import tolerances, torch_private
from conformance.suite.ranks import common, composition, schedules, trace

D = 8  # hidden size of the split-backward models
SEQ = 4  # sequence length (divisible by the tensor-parallel degree 2)
MB = 2  # rows per microbatch
N_MB = 4  # microbatches: >= 4 stages (DualPipeV), and n % (n // 2) == 0 (interleaved)
SPLIT_MODELS = ("shared", "multi_output")  # under every zero-bubble schedule
# the split helpers also take an nn.LSTM (output and final hidden state used): too slow on CPU for every schedule
HELPER_MODELS = (*SPLIT_MODELS, "lstm")
ZERO_BUBBLE = ("ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
CASE_ERROR = 600  # characters of a failing case's message that travel back


# ----------------------------------------------------------------------------------------------------------------
# 1. Split backward on real graph shapes


def split_block_classes() -> dict[str, Any]:
    """Blocks whose autograd graphs reach the corners of the split backward (`stage_backward_input`/`_weight`).

    `shared`: one Linear applied twice on one path and a second Linear tied to its weight (pytorch#180952: a weight
    used at several sites). `multi_output`: a custom autograd Function with two outputs, both used, taking the
    weight directly, so the intermediate that stage_backward_weight starts from has several outputs (pytorch PR
    170416). `lstm`: an `nn.LSTM` whose output and final hidden state are both used (the same path, a built-in op).
    """
    import torch
    import torch.nn as nn

    class Mix(torch.autograd.Function):
        """(x * w, x + w) for a weight vector w: two outputs of one node, both depending on x and w."""

        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w, x + w

        @staticmethod
        def backward(ctx, g_mul, g_add):
            x, w = ctx.saved_tensors
            g_w = (g_mul * x + g_add).reshape(-1, w.shape[-1]).sum(0)
            return g_mul * w + g_add, g_w

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(D, D)
            self.b = nn.Linear(D, D)
            self.b.weight = self.a.weight  # tied inside the stage

        def forward(self, x):
            h = torch.tanh(self.a(x))
            h = torch.tanh(self.b(h))
            return x + self.a(h)  # `a` again: its weight reaches the output along three sites of one path

    class MultiOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(D, D)
            self.w = nn.Parameter(torch.linspace(0.5, 1.5, D))

        def forward(self, x):
            a, b = Mix.apply(self.proj(x), self.w)
            return x + torch.tanh(a) * torch.sigmoid(b)

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(D, D, batch_first=True)

        def forward(self, x):
            out, (h, _c) = self.lstm(x)
            return x + out + h[-1].unsqueeze(1)

    return {"shared": Shared, "multi_output": MultiOutput, "lstm": Recurrent}


def split_model(kind: str, n_blocks: int, device, dtype, keep: range | None = None):
    """The seeded model of `n_blocks` blocks (or only `keep`), under `layers.<global index>` in every copy."""
    import torch
    import torch.nn as nn

    cls = split_block_classes()[kind]
    torch.manual_seed(7)
    blocks = {str(i): cls() for i in range(n_blocks)}
    kept = {k: b for k, b in blocks.items() if keep is None or int(k) in keep}

    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleDict(kept)

        def forward(self, x):
            for b in self.layers.values():
                x = b(x)
            return x

    return Stack().to(device=device, dtype=dtype)


def split_inputs(device, dtype, n_mb: int = N_MB):
    import torch

    g = torch.Generator().manual_seed(99)
    x = torch.randn(n_mb * MB, SEQ, D, generator=g).to(device=device, dtype=dtype)
    y = torch.randn(n_mb * MB, SEQ, D, generator=g).to(device=device, dtype=dtype)
    return x, y


mse = common.loss_fn


def reference_grads(model, x, y, n_mb: int) -> list:
    """The unsplit model over the microbatches in order, gradients summed then divided by n_mb (scale_grads)."""
    import torch

    model.zero_grad(set_to_none=True)
    losses = []
    for xm, ym in zip(x.chunk(n_mb), y.chunk(n_mb), strict=True):
        loss = mse(model(xm), ym)
        loss.backward()
        losses.append(loss.detach())
    with torch.no_grad():
        for prm in model.parameters():
            if prm.grad is not None:
                prm.grad.div_(n_mb)
    return losses


def case_outcome(fn, *args: Any) -> dict:
    """Run one sub-case: {'ok': True, **facts}, {'skip': reason} or {'error': message}; never raises, so the other
    cases of the same rank-side run still report (each check id judges its own case). A case that raised anything but
    a comparison's AssertionError is marked `raised`: it may have stopped inside a step with messages in flight."""
    try:
        return {"ok": True, **(fn(*args) or {})}
    except Skip as exc:
        return {"skip": str(exc)}
    except AssertionError as exc:
        return {"error": f"{exc}"[:CASE_ERROR]}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:CASE_ERROR], "raised": True}


_GROUP: Any = None  # the running task's own process group (task_group), None: the default one


@contextlib.contextmanager
def task_group(ctx: RankContext) -> Iterator[None]:
    """Stages of this task talk over a process group of their own: a case that raised inside a step can leave
    unmatched messages behind, and on the pool's default group they would reach the next check's receives (seen on
    torch 2.12, where the split backward raises mid-step). The group is left, not destroyed: destroying a gloo group
    with messages in flight can block."""
    global _GROUP
    import torch.distributed as dist

    if ctx.world_size == 1 or not dist.is_initialized():
        yield
        return
    _GROUP = dist.new_group(list(range(ctx.world_size)))
    try:
        yield
    finally:
        _GROUP = None


def run_cases(cases: dict[str, tuple]) -> dict[str, dict]:
    """{case: outcome} of `(fn, *args)` per case, in order. After a case raised inside a step, the ranks may be out
    of step (one waiting on a message the other never sends, or a stale one queued), so the later cases are not run
    but reported as errors naming the case that stopped them; a comparison failing after its step stops nothing."""
    out: dict[str, dict] = {}
    stopped = ""
    for name, (fn, *args) in cases.items():
        if stopped:
            out[name] = {"error": f"not run: case {stopped} of the same run raised before it ({out[stopped]['error']})"
                                  [:CASE_ERROR]}
            continue
        out[name] = case_outcome(fn, *args)
        if out[name].get("raised"):
            stopped = name
    return out


def split_case(ctx: RankContext, schedule: str, kind: str, dtype_id: str) -> dict:
    """One zero-bubble schedule step on the split model against the unsplit model: losses and every gradient."""
    import torch
    from torch.distributed.pipelining import PipelineStage

    dtype_name = DTYPES[dtype_id]
    if why := tolerances.unsupported(ctx.device_type, dtype_name):
        raise Skip(not_applicable(why))
    dtype = getattr(torch, dtype_name)
    cls = common.schedule_class(schedule)
    world = ctx.world_size
    n_st = schedules.num_stages(schedule, world)
    sids = schedules.stage_ids(schedule, ctx.rank, world)
    device = ctx.torch_device
    x, y = split_inputs(device, dtype)
    ref = split_model(kind, n_st, device, dtype)
    ref_losses = reference_grads(ref, x, y, N_MB)
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    mods = [split_model(kind, n_st, device, dtype, range(s, s + 1)) for s in sids]
    stages = [PipelineStage(m, s, n_st, device, group=_GROUP) for m, s in zip(mods, sids, strict=True)]
    sched = cls(stages, n_microbatches=N_MB, loss_fn=mse)
    losses: list = []
    first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
    sched.step(*((x,) if first else ()), target=y if last else None, losses=losses)
    cmp = composition.Compare(f"{schedule} split backward ({kind})", ctx.device_type, dtype_name,
                              f"world {world} rank {ctx.rank} stages {sids}")
    n_grads = 0
    if last:
        if len(losses) != N_MB:
            raise AssertionError(f"{cmp.api}: {len(losses)} microbatch losses, expected {N_MB} [{cmp.where}]")
        for i, (got, exp) in enumerate(zip(losses, ref_losses, strict=True)):
            cmp.close(got, exp, f"loss of microbatch {i}")
    for m in mods:
        for name, prm in m.named_parameters():
            if prm.grad is None:
                raise AssertionError(f"{cmp.api}: {name} has no gradient [{cmp.where}]")
            cmp.close(prm.grad, ref_grads[name], f"gradient of {name}")
            n_grads += 1
    return {"grads": n_grads, "losses": len(losses) if last else 0, "model_params": len(ref_grads)}


def helper_case(ctx: RankContext, kind: str, dtype_id: str) -> dict:
    """`stage_backward_input` then `stage_backward_weight` on a whole two-block stage: the input gradient and every
    weight gradient equal one plain autograd backward."""
    import torch

    dtype_name = DTYPES[dtype_id]
    if why := tolerances.unsupported(ctx.device_type, dtype_name):
        raise Skip(not_applicable(why))
    dt = getattr(torch, dtype_name)
    device = ctx.torch_device
    x, y = split_inputs(device, dt, 1)
    ref = split_model(kind, 2, device, dt)
    xr = x.clone().requires_grad_(True)
    mse(ref(xr), y).backward()
    mod = split_model(kind, 2, device, dt)
    xs = x.clone().requires_grad_(True)
    bw = torch_private.pipelining_backward()
    dinputs, groups = bw.stage_backward_input([mse(mod(xs), y)], None, [xs], mod.parameters())
    bw.stage_backward_weight(mod.parameters(), groups)
    cmp = composition.Compare(f"stage_backward_input/_weight ({kind})", ctx.device_type, dtype_name,
                              f"rank {ctx.rank}")
    if dinputs[0] is None:
        raise AssertionError(f"{cmp.api}: no input gradient")
    cmp.close(dinputs[0], xr.grad, "input gradient")
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    n = 0
    for name, prm in mod.named_parameters():
        if prm.grad is None:
            raise AssertionError(f"{cmp.api}: {name} has no gradient (the unsplit model has one)")
        cmp.close(prm.grad, ref_grads[name], f"gradient of {name}")
        n += 1
    return {"grads": n}


@register("graphs_split_helpers")
def run_split_helpers(ctx: RankContext, params: dict) -> dict:
    """The split-backward helpers on every model x dtype: one outcome per case."""
    return {"rank": ctx.rank,
            # one process, no messages in flight: a case that raised cannot put the next one out of step
            "cases": {f"{k}-{d}": case_outcome(helper_case, ctx, k, d) for k in HELPER_MODELS for d in DTYPES}}


@register("graphs_split")
def run_split(ctx: RankContext, params: dict) -> dict:
    """Every split model x dtype under one zero-bubble schedule: one outcome per case."""
    schedule = params["schedule"]
    common.schedule_class(schedule)
    with task_group(ctx):
        cases = run_cases({f"{k}-{d}": (split_case, ctx, schedule, k, d) for k in SPLIT_MODELS for d in DTYPES})
    return {"rank": ctx.rank, "cases": cases}


# ----------------------------------------------------------------------------------------------------------------
# 2. DTensor activations between stages


def dtensor_stage_class():
    """A stage of composition blocks under TP with sequence parallelism: activations are DTensors sharded on the
    sequence dimension, so what crosses a stage boundary is a DTensor. The first stage shards its plain input, the
    last gathers its output for the loss."""
    import torch.nn as nn
    from torch.distributed.tensor import DTensor, Shard

    class SeqParallelStage(nn.Module):
        def __init__(self, layers: dict, tp_mesh, first: bool, last: bool) -> None:
            super().__init__()
            self.layers = nn.ModuleDict(layers)
            self.tp_mesh, self.first, self.last = tp_mesh, first, last
            self.received: set[str] = set()  # what crossed the boundary into this stage: type and placements

        def forward(self, x, mb_id=None):
            if not self.first:
                self.received.add(f"{type(x).__name__}{list(getattr(x, 'placements', []))}")
            else:
                tp = self.tp_mesh.size()
                local = x.chunk(tp, dim=1)[self.tp_mesh.get_local_rank()]
                x = DTensor.from_local(local, self.tp_mesh, [Shard(1)], run_check=False)
            for b in self.layers.values():
                x = b(x)
            return x.full_tensor() if self.last else x

    return SeqParallelStage


def dtensor_example(tp_mesh, shape: tuple[int, ...], device, requires_grad: bool):
    """A DTensor of the boundary's global shape, sharded on the sequence dimension."""
    import torch
    from torch.distributed.tensor import DTensor, Shard

    local = list(shape)
    local[1] //= tp_mesh.size()
    t = torch.zeros(local, device=device, requires_grad=requires_grad)
    return DTensor.from_local(t, tp_mesh, [Shard(1)], run_check=False)


@register("graphs_dtensor")
def run_dtensor(ctx: RankContext, params: dict) -> dict:
    """(pp=2, tp=world/2): TP with sequence parallel, DTensor activations between the stages, static or
    runtime-inferred metadata; losses, full gradients and parameters over two SGD steps against the unsplit model."""
    import torch
    from torch.distributed.pipelining import PipelineStage
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    from conformance.torchenv import api

    if reason := api.missing_reason("dtensor_stages"):
        raise Skip(reason)
    metadata = params["metadata"]
    p = composition.params_with_defaults({"kind": "tp", "schedule": "Schedule1F1B"})
    if ctx.world_size % composition.PP:
        raise Skip(not_applicable(f"world {ctx.world_size} is not a multiple of the pipeline degree"))
    m = composition.mesh(ctx, (composition.PP, ctx.world_size // composition.PP), ("pp", "tp"))
    pp_rank, tp_mesh = m["pp"].get_local_rank(), m["tp"]
    device = ctx.torch_device
    n_st = composition.PP
    full_model = composition.build_model(p, device, composition.stage_layers(pp_rank, n_st))
    for block in full_model.layers.values():
        parallelize_module(block, tp_mesh, {
            "w_in": ColwiseParallel(input_layouts=Shard(1)),
            "w_out": RowwiseParallel(output_layouts=Shard(1), use_local_output=False)})
    first, last = pp_rank == 0, pp_rank == n_st - 1
    mod = dtensor_stage_class()(dict(full_model.layers.items()), tp_mesh, first, last)
    shape = (MB, SEQ, composition.D_MODEL)
    kw: dict[str, Any] = {}
    if metadata == "static":
        plain_in = torch.zeros(shape, device=device)
        kw["input_args"] = plain_in if first else dtensor_example(tp_mesh, shape, device, True)
        kw["output_args"] = torch.zeros(shape, device=device) if last else dtensor_example(tp_mesh, shape, device,
                                                                                          True)
        if not first:
            kw["input_grads"] = dtensor_example(tp_mesh, shape, device, False)
        if not last:
            kw["output_grads"] = dtensor_example(tp_mesh, shape, device, False)
    else:
        names = tuple(tp_mesh.mesh_dim_names or ())
        kw["get_mesh"] = lambda dim_names, layout: tp_mesh if tuple(dim_names) == names else None
    stage = PipelineStage(mod, pp_rank, n_st, device, group=m["pp"].get_group(), **kw)
    sched = common.schedule_class(p["schedule"])(stage, n_microbatches=N_MB, loss_fn=mse)
    opt = torch.optim.SGD(mod.parameters(), lr=composition.LR)
    ref = composition.reference(p, device)
    g = torch.Generator().manual_seed(4321)
    x = torch.randn(N_MB * MB, SEQ, composition.D_MODEL, generator=g).to(device)
    y = torch.randn(N_MB * MB, SEQ, composition.D_MODEL, generator=g).to(device)
    cmp = composition.Compare(f"PipelineStage(DTensor, {metadata} metadata)", ctx.device_type, "float32",
                              f"world {ctx.world_size} pp rank {pp_rank} tp rank {tp_mesh.get_local_rank()}")
    counts = {"losses": 0, "grads": 0, "params": 0}
    for step in range(composition.STEPS):
        ref_losses = reference_grads(ref.model, x, y, N_MB)
        opt.zero_grad(set_to_none=True)
        losses: list = []
        sched.step(*((x,) if first else ()), target=y if last else None, losses=losses)
        if last:
            if len(losses) != N_MB:
                raise AssertionError(f"{cmp.api}: step {step}: {len(losses)} losses [{cmp.where}]")
            for i, loss in enumerate(losses):
                cmp.close(composition.full(loss), ref_losses[i], f"loss of microbatch {i} (step {step})")
                counts["losses"] += 1
        for name, prm in mod.named_parameters():
            if prm.grad is None:
                raise AssertionError(f"{cmp.api}: {name} has no gradient after step {step} [{cmp.where}]")
            cmp.close(composition.full(prm.grad), ref.params[name].grad, f"gradient of {name} (step {step})")
            counts["grads"] += 1
        ref.opt.step()
        opt.step()
        for name, prm in mod.named_parameters():
            cmp.close(composition.full(prm), ref.params[name], f"{name} after optimizer step {step}")
            counts["params"] += 1
    if not first and mod.received != {"DTensor[Shard(dim=1)]"}:
        raise AssertionError(f"{cmp.api}: the stage received {sorted(mod.received)} across the boundary, not the "
                             f"DTensor sharded on the sequence dimension the previous stage sent [{cmp.where}]")
    return {"rank": ctx.rank, "last": last, "pp_rank": pp_rank, **counts, "received": sorted(mod.received),
            "n_params": sum(1 for _ in mod.parameters())}


# ----------------------------------------------------------------------------------------------------------------
# 3. Checkpoints across pipeline layouts, with optimizer state

# case -> (source layout, destination layout); a layout is (schedule or "unsplit", pp degree, reshard)
RELAYOUTS: dict[str, tuple[tuple[str, int, bool], tuple[str, int, bool]]] = {
    "pp2_to_pp4": (("ScheduleGPipe", 2, True), ("ScheduleGPipe", 4, True)),
    # ZBV with FSDP2 resharding after forward loses gradients (expectations, composition): the V side keeps them
    "looped_to_v": (("ScheduleInterleaved1F1B", 2, True), ("ScheduleZBVZeroBubble", 2, False)),
    "pp_to_unsplit": (("Schedule1F1B", 2, True), ("unsplit", 1, False)),
}
ADAM_LR = 0.01
RELAYOUT_MICROBATCHES = 8  # global microbatches of every layout (pp=4 GPipe, 4-stage V and looped need >= 4)


class TrainedLayout:
    """One pipeline layout of the composition model under FSDP2, with one Adam per stage module (torchtitan's
    model parts), or the unsplit model with one Adam."""

    def __init__(self, ctx: RankContext, spec: tuple[str, int, bool]) -> None:
        import torch

        schedule, pp, reshard = spec
        self.ctx, self.schedule, self.pp = ctx, schedule, pp
        dp = 1 if schedule == "unsplit" else ctx.world_size // pp
        # every layout runs the same RELAYOUT_MICROBATCHES microbatches of the global batch, split over its replicas
        p = composition.params_with_defaults({"kind": "fsdp", "schedule": "ScheduleGPipe", "reshard": reshard,
                                              "n_microbatches": RELAYOUT_MICROBATCHES // dp})
        self.p = p
        if schedule == "unsplit":
            self.modules = [composition.build_model(p, ctx.torch_device)]
            self.dp, self.dp_rank, self.first, self.last, self.sched = 1, 0, True, True, None
        else:
            m = composition.mesh(ctx, (pp, dp), ("pp", "dp"))
            pp_rank = m["pp"].get_local_rank()
            sids = schedules.stage_ids(schedule, pp_rank, pp)
            n_st = len(sids) * pp
            lay = composition.Layout(m["pp"].get_group(), pp_rank, m["dp"], m["dp"].get_local_rank(), dp, dp,
                                     sids, n_st)
            pipe = composition.build_pipeline(ctx, {**p, "schedule": schedule}, lay)
            self.modules, self.sched = pipe.modules, pipe.sched
            self.dp, self.dp_rank, self.first, self.last = dp, lay.second_rank, pipe.first, pipe.last
        self.opts = [torch.optim.Adam(mod.parameters(), lr=ADAM_LR) for mod in self.modules]

    def step(self, x, y) -> None:
        """One optimizer step on the global batch (this replica's rows)."""
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)
        if self.sched is None:
            reference_grads_2d(self.modules[0], x, y, RELAYOUT_MICROBATCHES)
        else:
            rows = slice(self.dp_rank * len(x) // self.dp, (self.dp_rank + 1) * len(x) // self.dp)
            self.sched.step(*((x[rows],) if self.first else ()), target=y[rows] if self.last else None)
        for opt in self.opts:
            opt.step()

    def state_dicts(self) -> list[dict]:
        """Per stage module: {'model': ..., 'optim': ...} as distributed checkpoints key them (flattened FQNs)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(flatten_optimizer_state_dict=True)
        return [{"model": get_model_state_dict(mod, options=opts),
                 "optim": get_optimizer_state_dict(mod, opt, options=opts)}
                for mod, opt in zip(self.modules, self.opts, strict=True)]

    def load_state_dicts(self, sds: list[dict]) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(flatten_optimizer_state_dict=True)
        for mod, opt, sd in zip(self.modules, self.opts, sds, strict=True):
            set_model_state_dict(mod, sd["model"], options=opts)
            set_optimizer_state_dict(mod, opt, sd["optim"], options=opts)

    def full_state(self) -> dict:
        """Every parameter and optimizer state entry of this rank's stages, gathered to full, on the host."""
        out: dict[str, Any] = {}
        for mod, opt in zip(self.modules, self.opts, strict=True):
            for name, prm in composition.named_parameters(mod):
                out[name] = composition.full(prm).detach().cpu()
                for key, value in opt.state.get(prm, {}).items():
                    if hasattr(value, "detach"):
                        out[f"{name}:{key}"] = composition.full(value).detach().cpu()
        return out


def reference_grads_2d(model, x, y, n_mb: int) -> None:
    """The unsplit composition model over the microbatches in order, gradients divided by n_mb."""
    import torch

    for xm, ym in zip(x.chunk(n_mb), y.chunk(n_mb), strict=True):
        common.loss_fn(model(xm), ym).backward()
    with torch.no_grad():
        for prm in model.parameters():
            prm.grad.div_(n_mb)


def gathered(state: dict) -> dict:
    """The union of every rank's full state (dp replicas hold the same values)."""
    import torch.distributed as dist

    boxes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(boxes, state)
    out: dict = {}
    for box in boxes:
        for k, v in box.items():
            out.setdefault(k, v)
    return out


def compare_exact(api: str, got: dict, exp: dict, what: str) -> int:
    import torch

    if set(got) != set(exp):
        raise AssertionError(f"{api}: {what}: entries differ: missing {sorted(set(exp) - set(got))[:6]}, "
                             f"extra {sorted(set(got) - set(exp))[:6]}")
    for k in sorted(exp):
        if not torch.equal(got[k], exp[k]):
            diff = (got[k].float() - exp[k].float()).abs().max().item()
            raise AssertionError(f"{api}: {what}: {k} is not bit-equal (max difference {diff:.3g})")
    return len(exp)


def compare_close(api: str, device_type: str, got: dict, exp: dict, what: str) -> int:
    if set(got) != set(exp):
        return compare_exact(api, got, exp, what)  # names the missing and extra entries
    cmp = composition.Compare(api, device_type, "float32", what)
    for k in sorted(exp):
        cmp.close(got[k], exp[k], k)
    return len(exp)


@register("graphs_relayout")
def run_relayout(ctx: RankContext, params: dict) -> dict:
    """Train a PP x FSDP2 layout one Adam step, save model and optimizer with torch.distributed.checkpoint, load
    into another layout, then one more step on both: parameters and optimizer state bit-equal after the load and
    after the step."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    case = params["case"]
    src_spec, dst_spec = RELAYOUTS[case]
    api = f"torch.distributed.checkpoint {case}"
    for spec in (src_spec, dst_spec):
        if spec[0] != "unsplit":
            common.schedule_class(spec[0])
        if ctx.world_size % spec[1]:
            raise Skip(not_applicable(f"world {ctx.world_size} is not a multiple of pp={spec[1]}"))
    src = TrainedLayout(ctx, src_spec)
    x, y, _ = composition.inputs(ctx, RELAYOUT_MICROBATCHES)
    src.step(x, y)
    path = composition._shared_dir(ctx)
    try:
        saved = src.state_dicts()
        dcp.save({k: v for sd in saved for k, v in _flat(sd).items()}, checkpoint_id=path)
        dst = TrainedLayout(ctx, dst_spec)
        dst_sds = dst.state_dicts()
        dcp.load({k: v for sd in dst_sds for k, v in _flat(sd).items()}, checkpoint_id=path)
        dst.load_state_dicts(dst_sds)
    finally:
        dist.barrier()
        if ctx.rank == 0:
            shutil.rmtree(path, ignore_errors=True)
    n_loaded = compare_exact(api, gathered(dst.full_state()), gathered(src.full_state()), "after loading")
    src.step(x, y)
    dst.step(x, y)
    after = "after one more step on both layouts"
    if src.dp == dst.dp:
        n_stepped = compare_exact(api, gathered(dst.full_state()), gathered(src.full_state()), after)
    else:
        # Another data-parallel degree sums the microbatch gradients in another order (FSDP's reduce-scatter of
        # replica means vs one replica's running sum): equal within the fp32 tolerance, not bit for bit.
        n_stepped = compare_close(api, ctx.device_type, gathered(dst.full_state()), gathered(src.full_state()),
                                  f"{after} (dp {src.dp} -> {dst.dp})")
    return {"rank": ctx.rank, "loaded": n_loaded, "stepped": n_stepped, "exact_step": src.dp == dst.dp}


def _flat(sd: dict) -> dict:
    """A stage's {'model': {...}, 'optim': {...}} as one level of prefixed keys (stage keys are disjoint FQNs)."""
    return {f"{part}.{k}": v for part, entries in sd.items() for k, v in entries.items()}


# ----------------------------------------------------------------------------------------------------------------
# 4. Receive ordering options

# option -> (torch.distributed.config flag, the stage attribute that says it took effect); defer_pp_recv is a kwarg.
# 2.15 replaced per-direction communicators (one per direction) with per-edge ones (one per directed rank pair).
RECV_OPTIONS: dict[str, tuple[str, str] | None] = {
    "defer_pp_recv": None,
    "per_direction_p2p": ("pipeline_per_direction_p2p", "p2p_per_direction"),
    "per_edge_p2p": ("pipeline_per_edge_p2p", "p2p_per_edge"),
}
RECV_SCHEDULES = ("ScheduleInterleaved1F1B", "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble")
UNBOUND_GROUP = "No device associated with the default pg"


def _build_run(ctx: RankContext, schedule: str, sched_kw: dict | None = None) -> dict:
    """The schedule checks' model and stages, one training step: losses, outputs and gradients by name."""
    import torch

    p = schedules.schedule_params({"schedule": schedule, "reference": False})
    cls = common.schedule_class(schedule)
    world = ctx.world_size
    n_st, sids = schedules.num_stages(schedule, world), schedules.stage_ids(schedule, ctx.rank, world)
    n_mb = schedules.default_microbatches(schedule, world)
    inputs = schedules.make_inputs(p, ctx.torch_device, torch.float32, n_mb)
    from torch.distributed.pipelining import PipelineStage

    stages, names = [], []
    for s in sids:  # the schedule checks' hand-cut stages, on this task's own group
        lo, hi = schedules._block_bounds(n_st, s)
        part = schedules.part_module(list(schedules.build_model(p, ctx.torch_device, torch.float32).layers[lo:hi]),
                                     False)
        stages.append(PipelineStage(part, s, n_st, ctx.torch_device, group=_GROUP))
        names.append({n: f"layers.{lo + int(n.split('.')[1])}.{n.split('.', 2)[2]}"
                      for n, _ in part.named_parameters()})
    sched = cls(stages, n_microbatches=n_mb, loss_fn=common.loss_fn, **(sched_kw or {}))
    return {"sched": sched, "stages": stages, "names": names, "inputs": inputs, "dev_type": ctx.device_type,
            "first": any(s.is_first for s in stages), "last": any(s.is_last for s in stages)}


def _step(run: dict, sched=None) -> dict:
    """One step of `run` (or of `sched` over its stages): {'losses': [...], 'out': t, name: grad}."""
    sched = sched or run["sched"]
    losses: list = []
    out = sched.step(*((run["inputs"]["x"],) if run["first"] else ()),
                     target=run["inputs"]["y"] if run["last"] else None, losses=losses)
    got: dict[str, Any] = {"losses": [t.detach() for t in losses], "out": out}
    for st, mapping in zip(run["stages"], run["names"], strict=True):
        for n, prm in st.submod.named_parameters():
            got[mapping[n]] = None if prm.grad is None else prm.grad.detach().clone()
    return got


def _same_numbers(api: str, got: dict, exp: dict, where: str) -> int:
    """Bit-equal losses, merged outputs and gradients: the option changes when things run, not what they compute."""
    import torch

    n = 0
    if len(got["losses"]) != len(exp["losses"]):
        raise AssertionError(f"{api}: {len(got['losses'])} losses, the default gave {len(exp['losses'])} [{where}]")
    pairs = [(f"loss of microbatch {i}", a, b)
             for i, (a, b) in enumerate(zip(got["losses"], exp["losses"], strict=True))]
    if exp["out"] is not None:
        if got["out"] is None:
            raise AssertionError(f"{api}: no merged outputs where the default has them [{where}]")
        pairs.append(("merged outputs", got["out"], exp["out"]))
    pairs += [(f"gradient of {k}", got.get(k), v) for k, v in exp.items() if k not in ("losses", "out")]
    for what, a, b in pairs:
        if a is None or b is None:
            if a is not b:
                raise AssertionError(f"{api}: {what}: {(a is None and 'missing') or 'present'} where the default "
                                     f"run has {(b is None and 'none') or 'one'} [{where}]")
            continue
        if not torch.equal(a.detach(), b.detach()):
            diff = (a.detach().float() - b.detach().float()).abs().max().item()
            raise AssertionError(f"{api}: {what} differs from the default receive order (max difference "
                                 f"{diff:.3g}) [{where}]")
        n += 1
    return n


def recv_case(ctx: RankContext, option: str, schedule: str) -> dict:
    from conformance.torchenv import api

    if reason := api.missing_reason(option):
        raise Skip(reason)
    where = f"{schedule} world {ctx.world_size} rank {ctx.rank}"
    default = _step(_build_run(ctx, schedule))
    if option == "defer_pp_recv":
        cls = common.schedule_class(schedule)
        if "defer_pp_recv" not in inspect.signature(cls.__init__).parameters:
            raise Skip(not_applicable(f"{schedule} takes no defer_pp_recv in this build"))
        got = _step(_build_run(ctx, schedule, {"defer_pp_recv": True}))
    else:
        import torch.distributed.config as dist_config

        flag, attr = RECV_OPTIONS[option] or ("", "")
        if not hasattr(dist_config, flag):
            others = [f for f, _ in filter(None, RECV_OPTIONS.values()) if hasattr(dist_config, f)]
            raise Skip(not_applicable(f"torch.distributed.config has no {flag} in this build ({api.torch_version()}"
                                      f"{'; it has ' + ', '.join(others) if others else ''})"))
        old = getattr(dist_config, flag)
        setattr(dist_config, flag, True)
        try:
            run = _build_run(ctx, schedule)  # stages read the flag when they are built
        except RuntimeError as exc:
            # Documented precondition (torch.distributed.config): split_group needs a device-bound default group.
            if UNBOUND_GROUP in str(exc):
                raise Skip(not_applicable(f"{flag} splits the pipeline group (split_group), which needs a "
                                          f"device-bound default process group; this {ctx.backend} group has no "
                                          f"device ({exc})")) from None
            raise
        finally:
            setattr(dist_config, flag, old)
        if not all(getattr(st, attr, False) for st in run["stages"]):
            raise AssertionError(f"{option}: the stages do not use their own communicators ({attr} is not set) "
                                 f"[{where}]")
        got = _step(run)
    return {"compared": _same_numbers(f"{schedule}({option})", got, default, where)}


@register("graphs_recv")
def run_recv(ctx: RankContext, params: dict) -> dict:
    option = params["option"]
    with task_group(ctx):
        return {"rank": ctx.rank, "cases": run_cases({s: (recv_case, ctx, option, s) for s in RECV_SCHEDULES})}


# ----------------------------------------------------------------------------------------------------------------
# 5. Plans as data

PLAN_SCHEDULES = ("ScheduleInterleaved1F1B", "ScheduleZBVZeroBubble")
CUSTOM_TYPES = ("BACKWARD_WEIGHT", "UNSHARD", "RESHARD", "REDUCE_GRAD")


def _traced_step(run: dict, sched=None) -> tuple[dict, list]:
    tracer = trace.Tracer(run["dev_type"])
    tracer.attach_all(run["stages"])
    try:
        tracer.begin()
        got = _step(run, sched)
        actions = [(s, k, mb) for s, k, mb, _a, _b in tracer.end()]
    finally:
        tracer.detach()
    return got, actions


def csv_case(ctx: RankContext, schedule: str, original: dict, plan_actions: list) -> dict:
    """The original schedule's plan dumped to CSV, loaded into a bare runtime over fresh stages: the runtime
    executes the same compute actions in the same order and computes the same numbers."""
    from conformance.torchenv import api

    if reason := api.missing_reason("_load_csv"):
        raise Skip(reason)
    runtime = torch_private.schedule_runtime()
    if runtime is None:
        raise Skip(not_applicable("torch.distributed.pipelining.schedules has no _PipelineScheduleRuntime"))
    where = f"{schedule} world {ctx.world_size} rank {ctx.rank}"
    run = _build_run(ctx, schedule)
    fd, path = tempfile.mkstemp(prefix="conformance-plan-", suffix=".csv")
    os.close(fd)
    try:
        dump = run["sched"]._dump_csv
        if "format" in inspect.signature(dump).parameters:  # a runtime's default dumps the lowered plan
            dump(path, format="compute_only")
        else:
            dump(path)
        loaded = runtime(run["stages"], n_microbatches=run["sched"]._n_microbatches, loss_fn=common.loss_fn)
        loaded._load_csv(path, format="compute_only")
    finally:
        os.unlink(path)
    got, actions = _traced_step(run, loaded)
    if actions != original["actions"]:
        first = next((i for i, (a, b) in enumerate(zip(actions, original["actions"], strict=False)) if a != b),
                     min(len(actions), len(original["actions"])))
        raise AssertionError(f"_load_csv({schedule} plan): the loaded runtime executed {len(actions)} actions, the "
                             f"original {len(original['actions'])}; first difference at #{first}: "
                             f"{actions[first:first + 3]} vs {original['actions'][first:first + 3]} [{where}]")
    if actions != plan_actions:
        raise AssertionError(f"_load_csv({schedule} plan): executed actions differ from the dumped plan [{where}]")
    return {"actions": len(actions), "compared": _same_numbers(f"_load_csv({schedule})", got, original["numbers"],
                                                                where)}


def custom_case(ctx: RankContext, schedule: str, original: dict) -> dict:
    """Custom handlers for W, UNSHARD, RESHARD and REDUCE_GRAD that do the built-in's work: each fires exactly once
    per such action of the lowered plan, in plan order, and the step computes the original numbers."""
    from conformance.torchenv import api

    if reason := api.missing_reason("register_custom_function"):
        raise Skip(reason)
    where = f"{schedule} world {ctx.world_size} rank {ctx.rank}"
    run = _build_run(ctx, schedule)
    sched = run["sched"]
    if not hasattr(sched, "register_custom_function"):
        raise Skip(not_applicable(f"{schedule} is not a _PipelineScheduleRuntime in this build"))
    by_index = {st.stage_index: st for st in run["stages"]}
    fired: list[str] = []
    types = torch_private.action_types(CUSTOM_TYPES)

    def handler(action, pctx) -> None:
        fired.append(str(action))
        ctype, stage = action.computation_type, by_index[action.stage_index]
        s = pctx.schedule_ref
        if ctype == types.get("BACKWARD_WEIGHT"):
            s.backward_counter[action.stage_index] += 1
            stage.backward_weight_one_chunk(action.microbatch_index,
                                            last_backward=s.backward_counter[action.stage_index] == s._n_microbatches)
        elif ctype == types.get("REDUCE_GRAD"):
            stage.perform_reduce_grad(s._n_microbatches if s.scale_grads else 1)
        # UNSHARD / RESHARD: the built-in does nothing for stages without FSDP

    for t in types.values():
        sched.register_custom_function(t, handler)
    plan = [str(a) for a in sched.pipeline_order_with_comms[ctx.rank] if a.computation_type in types.values()]
    got = _step(run)
    if fired != plan:
        extra = sorted({a for a in fired if fired.count(a) > 1})
        missing = [a for a in plan if a not in fired]
        raise AssertionError(f"register_custom_function({schedule}): handlers fired {len(fired)} times for "
                             f"{len(plan)} plan actions (twice: {extra[:4]}, never: {missing[:4]}) [{where}]")
    return {"fired": len(fired), "compared": _same_numbers(f"register_custom_function({schedule})", got,
                                                           original["numbers"], where)}


@register("graphs_plan")
def run_plan(ctx: RankContext, params: dict) -> dict:
    """One schedule run traced, then its plan through a CSV round trip and with custom action handlers."""
    schedule = params["schedule"]
    with task_group(ctx):
        run = _build_run(ctx, schedule)
        numbers, actions = _traced_step(run)
        plan, why = trace.declared_plan(run["sched"], ctx.rank)
        original = {"numbers": numbers, "actions": actions}
        cases = run_cases({"csv": (csv_case, ctx, schedule, original, plan or []),
                           "custom": (custom_case, ctx, schedule, original)})
    return {"rank": ctx.rank, "actions": len(actions), "plan_reason": why, "cases": cases}


COMPILED_PLACEMENTS = ("top", "nested")
COMPILE_REFUSAL = "not supported with stage modules that have used torch.compile"


def compiled_case(ctx: RankContext, schedule: str, placement: str) -> dict:
    """A zero-bubble schedule over stages holding a `torch.compile`d module (the stage module itself, or a block
    inside it) must refuse it at construction. `torch.compile` wraps lazily: nothing is compiled here."""
    import torch
    from torch.distributed.pipelining import PipelineStage

    cls = common.schedule_class(schedule)
    n_st = schedules.num_stages(schedule, ctx.world_size)
    sids = schedules.stage_ids(schedule, ctx.rank, ctx.world_size)
    stages = []
    for s in sids:
        mod = split_model("shared", n_st, ctx.torch_device, torch.float32, range(s, s + 1))
        if placement == "top":
            mod = torch.compile(mod)
        else:
            for k in list(mod.layers.keys()):
                mod.layers[k] = torch.compile(mod.layers[k])
        stages.append(PipelineStage(mod, s, n_st, ctx.torch_device))
    try:
        cls(stages, n_microbatches=max(2, n_st), loss_fn=mse)
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)[:300]}
    return {"raised": None, "message": ""}


@register("graphs_compiled")
def run_compiled(ctx: RankContext, params: dict) -> dict:
    return {"cases": {f"{s}-{p}": case_outcome(compiled_case, ctx, s, p)
                      for s in ZERO_BUBBLE for p in COMPILED_PLACEMENTS}}


# ----------------------------------------------------------------------------------------------------------------
# 6. FSDP2 with many local stages per rank

LOCAL_STAGES = 4
MANY_STAGE_SCHEDULES = ("ScheduleInterleaved1F1B", "ScheduleLoopedBFS", "ScheduleInterleavedZeroBubble")


@register("graphs_fsdp_stages")
def run_fsdp_many_stages(ctx: RankContext, params: dict) -> dict:
    """A looped schedule with LOCAL_STAGES FSDP2 stages per rank (one block each) against the unsplit model: losses,
    full gradients and parameters over two SGD steps (pytorch PR 165467)."""
    p = composition.params_with_defaults({"kind": "fsdp", "reshard": True, **params})
    common.schedule_class(p["schedule"])
    pp = composition.PP
    if ctx.world_size % pp:
        raise Skip(not_applicable(f"world {ctx.world_size} is not a multiple of the pipeline degree {pp}"))
    m = composition.mesh(ctx, (pp, ctx.world_size // pp), ("pp", "dp"))
    pp_rank, dp = m["pp"].get_local_rank(), m["dp"].size()
    n_st = pp * LOCAL_STAGES
    sids = [pp_rank + k * pp for k in range(LOCAL_STAGES)]
    lay = composition.Layout(m["pp"].get_group(), pp_rank, m["dp"], m["dp"].get_local_rank(), dp, dp, sids, n_st)
    n_mb = p["n_microbatches"]
    n_total = n_mb * dp
    x, y, ids = composition.inputs(ctx, n_total)
    x_mbs, y_mbs, id_mbs = x.chunk(n_total), y.chunk(n_total), ids.chunk(n_total)
    ref = composition.reference(p, ctx.torch_device)
    pipe = composition.build_pipeline(ctx, p, lay)
    d = lay.second_rank
    rows = slice(d * n_mb * composition.MB_SIZE, (d + 1) * n_mb * composition.MB_SIZE)
    cmp = composition.Compare(f"{p['schedule']}+fully_shard, {LOCAL_STAGES} stages per rank", ctx.device_type,
                              "float32", f"world {ctx.world_size} rank {ctx.rank} stages {sids}")
    for step in range(composition.STEPS):
        ref_losses = composition.reference_step(ref, list(x_mbs), list(y_mbs), list(id_mbs), False)
        pipe.opt.zero_grad(set_to_none=True)
        losses: list = []
        pipe.sched.step(*((x[rows],) if pipe.first else ()), target=y[rows] if pipe.last else None, losses=losses)
        composition.compare_step(cmp, pipe, ref, losses, ref_losses, d * n_mb, step)
        composition.reference_update(ref)
        pipe.opt.step()
        composition.compare_params(cmp, pipe, ref, step)
    c = cmp.counts
    return {"losses": c.losses, "grads": c.grads, "params": c.params, "names": sorted(c.names),
            "last": pipe.last, "stages": sids}
