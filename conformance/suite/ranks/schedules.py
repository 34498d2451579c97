"""Rank side of the schedule checks: build this rank's stages, run a schedule, compare with the unsplit model.

Every rank builds the same seeded model and runs it unsplit on its own device as the reference, so nothing but a
small summary travels back to pytest: the comparisons happen where the tensors are. The summary counts what was
compared (losses, outputs, parameter gradients) so the pytest side can prove a check compared everything.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.protocol.outcomes import not_applicable
from conformance.suite import models
from conformance.suite.assertions import assert_close, assert_equal
from conformance.suite.ranks import trace
from conformance.suite.ranks.common import loss_fn, schedule_class

SINGLE = ("ScheduleGPipe", "Schedule1F1B")
LOOPED = ("ScheduleInterleaved1F1B", "ScheduleLoopedBFS", "ScheduleInterleavedZeroBubble")
V_SHAPED = ("ScheduleZBVZeroBubble", "ScheduleDualPipeV")
SCHEDULES = SINGLE + LOOPED + V_SHAPED
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
N_LAYERS = 8  # divisible by every stage count used (1, 2, 4, 8)


def stage_ids(schedule: str, rank: int, world: int) -> list[int]:
    """The stages rank `rank` holds: one per rank, looped (r, r+W), or a V (r, 2W-1-r)."""
    if schedule in SINGLE:
        return [rank]
    if schedule in LOOPED:
        return [rank, rank + world]
    if schedule in V_SHAPED:
        return [rank, 2 * world - 1 - rank]
    raise ValueError(f"unknown schedule {schedule!r}")


def num_stages(schedule: str, world: int) -> int:
    return world if schedule in SINGLE else 2 * world


def default_microbatches(schedule: str, world: int) -> int:
    """Satisfies every schedule's rule: >= num_stages (1F1B, DualPipeV) and n % max(1, n // W) == 0 (interleaved)."""
    return max(4, 2 * num_stages(schedule, world))


def _nn() -> Any:
    import torch.nn as nn

    return nn


def part_module(blocks, with_kwargs: bool):
    """A hand-cut stage: the given blocks in order; with `scale`, each block's output is multiplied by it."""
    nn: Any = _nn()

    class Part(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(blocks)

        def forward(self, x, scale=None):
            for b in self.blocks:
                x = b(x) if scale is None else b(x) * scale
            return x

    return Part()


class KwargsModel:
    """Factory of the kwargs variant: transformer_like's blocks, each output scaled by a per-sample `scale` kwarg."""

    @staticmethod
    def build(d_hid: int, seed: int):
        nn: Any = _nn()
        base = models.transformer_like(d_hid=d_hid, n_layers=N_LAYERS, seed=seed)

        class TransformerLikeKwargs(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.layers = base.layers

            def forward(self, x, scale=None):
                for b in self.layers:
                    x = b(x) if scale is None else b(x) * scale
                return x

        return TransformerLikeKwargs()


def gelu_mlp(d_hid: int, n_layers: int, seed: int):
    """The step-cost model: `layers` of Linear+GELU blocks (compute-bound at large d_hid)."""
    import torch

    nn: Any = _nn()

    class GeluBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net1 = nn.Linear(d_hid, d_hid)
            self.act = nn.GELU()

        def forward(self, x):
            return self.act(self.net1(x))

    class GeluMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*[GeluBlock() for _ in range(n_layers)])

        def forward(self, x):
            return self.layers(x)

    torch.manual_seed(seed)
    return GeluMLP()


def build_model(p: dict, device, dtype):
    import torch

    if p.get("model") == "gelu_mlp":
        with torch.device(device):  # initialised where it runs: too large to build on the host in time
            m = gelu_mlp(p["d_hid"], p["n_layers"], p["seed"])
    elif p["kwargs"]:
        m = KwargsModel.build(p["d_hid"], p["seed"])
    else:
        m = models.transformer_like(d_hid=p["d_hid"], n_layers=N_LAYERS, seed=p["seed"])
    return m.to(device=device, dtype=dtype)


def _block_bounds(n_stages: int, sid: int, n_layers: int = N_LAYERS) -> tuple[int, int]:
    per = n_layers // n_stages
    return sid * per, (sid + 1) * per


def build_stages(p: dict, ctx: RankContext, sids: list[int], n_stages: int, device, dtype, inputs):
    """This rank's stages, by hand (`PipelineStage` over a slice of blocks) or by the tracer (`pipeline` +
    `build_stage`); returns (stages, {stage param name: reference param name} per stage)."""
    from torch.distributed.pipelining import PipelineStage

    if p["builder"] == "tracer":
        from torch.distributed.pipelining import SplitPoint, pipeline

        model = build_model(p, device, dtype)  # fresh: pipeline() rewrites forward in place
        spec = {f"layers.{_block_bounds(n_stages, s)[0]}": SplitPoint.BEGINNING for s in range(1, n_stages)}
        mb_kwargs = {"scale": inputs["scale_mbs"][0]} if p["kwargs"] else None
        pipe = pipeline(model, mb_args=(inputs["x_mbs"][0],), mb_kwargs=mb_kwargs, split_spec=spec)
        assert_equal("pipeline", pipe.num_stages, n_stages, f"num_stages for split_spec {sorted(spec)}")
        stages: list[Any] = []
        names = []
        for s in sids:
            st = pipe.build_stage(s, device, None)
            stages.append(st)
            # The tracer keeps qualified names ("layers.4.net1.weight"), but may flatten dots into underscores.
            names.append({n: n for n, _ in st.submod.named_parameters()})
        return stages, names
    stages, names = [], []
    for s in sids:
        lo, hi = _block_bounds(n_stages, s, p.get("n_layers", N_LAYERS))
        full = build_model(p, device, dtype)
        part = part_module(list(full.layers[lo:hi]), p["kwargs"])
        # No input_args: a stage given static shapes skips runtime shape inference while its neighbour without
        # them waits for the metadata (a deadlock on torch 2.11, seen on gloo and nccl); all stages infer at run time.
        stages.append(PipelineStage(part, s, n_stages, device))
        names.append({n: f"layers.{lo + int(n.split('.')[1])}.{n.split('.', 2)[2]}"
                      for n, _ in part.named_parameters()})
    return stages, names


def make_inputs(p: dict, device, dtype, n_mb: int):
    import torch

    g = torch.Generator().manual_seed(1234 + p["seed"])
    batch = n_mb * p["mb_size"]
    x = torch.randn(batch, p["d_hid"], generator=g).to(device=device, dtype=dtype)
    y = torch.randn(batch, p["d_hid"], generator=g).to(device=device, dtype=dtype)
    scale = (torch.rand(batch, 1, generator=g) + 0.5).to(device=device, dtype=dtype)
    return {"x": x, "y": y, "scale": scale, "x_mbs": list(x.chunk(n_mb)), "y_mbs": list(y.chunk(n_mb)),
            "scale_mbs": list(scale.chunk(n_mb))}


def reference_step(ref, inputs: dict, n_mb: int, *, train: bool, scale_grads: bool, with_kwargs: bool):
    """The unsplit model over the same microbatches: per-microbatch losses, merged outputs, gradients.

    Gradients are accumulated over microbatches and divided by n_microbatches at the end, in the order the
    schedules do it, so fp32 agrees to rounding.
    """
    import torch

    outs, losses = [], []
    ctxm = torch.enable_grad() if train else torch.no_grad()
    with ctxm:
        for i in range(n_mb):
            kw = {"scale": inputs["scale_mbs"][i]} if with_kwargs else {}
            out = ref(inputs["x_mbs"][i], **kw)
            loss = loss_fn(out, inputs["y_mbs"][i])
            if train:
                loss.backward()
            outs.append(out.detach())
            losses.append(loss.detach())
    if train and scale_grads:
        with torch.no_grad():
            for prm in ref.parameters():
                if prm.grad is not None:
                    prm.grad.div_(n_mb)
    return torch.cat(outs), losses


def assert_grad_close(api: str, actual, expected, *, device: str, what: str) -> None:
    """Gradients: the suite's tolerance, but in fp16/bf16 the absolute part scales with the tensor's largest entry.

    A schedule accumulates microbatch gradients in its own order (LoopedBFS runs all of one stage's backwards
    before the next), and in a low-precision dtype each addition rounds at the scale of the running sum, so an
    element near zero can differ by a few ulps of the largest summand. fp32 keeps the plain table.
    """
    __tracebackhide__ = True
    import torch

    from conformance.suite import tolerances

    if expected.dtype == torch.float32:
        assert_close(api, actual, expected, device=device, what=what)
        return
    t = tolerances.tol(device, str(expected.dtype))
    atol = max(t.atol, t.rtol * expected.detach().abs().max().item())
    try:
        torch.testing.assert_close(actual, expected, rtol=t.rtol, atol=atol)
    except AssertionError as exc:
        raise AssertionError(f"{api}: {what} differs from the unsplit model on {device} ({expected.dtype}, "
                             f"rtol={t.rtol}, atol={atol:.3g} = rtol x max|grad|): {exc}") from None


@dataclass
class ScheduleRun:
    """One schedule built on this rank: its stages, the unsplit reference, the inputs and the facts checks need."""

    p: dict
    name: str
    world: int
    rank: int
    dev_type: str
    n_mb: int
    sids: list[int]
    train: bool
    scaled: bool
    inputs: dict
    ref: Any
    ref_params: dict
    stages: list
    names: list[dict]
    sched: Any
    first: bool
    last: bool


def schedule_params(params: dict) -> dict:
    """The scenario's parameters with their defaults filled in."""
    return {"dtype": "fp32", "d_hid": 16, "mb_size": 2, "seed": 0, "iterations": 1, "mode": "train",
            "builder": "manual", "kwargs": False, "scale_grads": None, "n_microbatches": None, "lr": 0.1,
            "reference": True, **params}


def prepare(ctx: RankContext, params: dict) -> ScheduleRun:
    """Build the reference model, this rank's stages and the schedule over them."""
    import torch

    p = schedule_params(params)
    name = p["schedule"]
    cls = schedule_class(name)
    dtype = getattr(torch, DTYPES[p["dtype"]])
    device = ctx.torch_device
    world = ctx.world_size
    n_st = num_stages(name, world)
    n_mb = p["n_microbatches"] or default_microbatches(name, world)
    sids = stage_ids(name, ctx.rank, world)
    sched_kw = {}
    has_scale_arg = "scale_grads" in inspect.signature(cls.__init__).parameters
    if p["scale_grads"] is not None and has_scale_arg:
        sched_kw["scale_grads"] = p["scale_grads"]
    # Before 2.7 (no scale_grads argument) gradients are summed over microbatches.
    scaled = (p["scale_grads"] if p["scale_grads"] is not None else True) if has_scale_arg else False

    inputs = make_inputs(p, device, dtype, n_mb)
    ref = build_model(p, device, dtype) if p["reference"] else None
    stages, names = build_stages(p, ctx, sids, n_st, device, dtype, inputs)
    if name in SINGLE:
        sched = cls(stages[0], n_microbatches=n_mb, loss_fn=loss_fn, **sched_kw)
    else:
        sched = cls(stages, n_microbatches=n_mb, loss_fn=loss_fn, **sched_kw)
    ref_params = dict(ref.named_parameters()) if ref is not None else {}
    return ScheduleRun(p=p, name=name, world=world, rank=ctx.rank, dev_type=ctx.device_type, n_mb=n_mb,
                       sids=sids, train=p["mode"] == "train", scaled=scaled, inputs=inputs, ref=ref,
                       ref_params=ref_params, stages=stages, names=names, sched=sched,
                       first=any(s.is_first for s in stages), last=any(s.is_last for s in stages))


def zero_grads(run: ScheduleRun) -> None:
    if run.ref is not None:
        run.ref.zero_grad(set_to_none=True)
    for st in run.stages:
        st.submod.zero_grad(set_to_none=True)


def run_step(run: ScheduleRun, *, train: bool | None = None, return_outputs: bool = True) -> tuple[Any, list]:
    """One `step()` (or `eval()`) of the schedule over the whole batch; returns (merged outputs, losses)."""
    train = run.train if train is None else train
    args = (run.inputs["x"],) if run.first else ()
    kwargs = {"scale": run.inputs["scale"]} if run.p["kwargs"] else {}
    if not return_outputs:
        kwargs["return_outputs"] = False
    losses: list = []
    target = run.inputs["y"] if run.last else None
    if train:
        return run.sched.step(*args, target=target, losses=losses, **kwargs), losses
    if not hasattr(run.sched, "eval"):
        raise Skip(not_applicable("eval needs torch >= 2.9"))
    return run.sched.eval(*args, target=target, losses=losses, **kwargs), losses


def check_last_stage(run: ScheduleRun, out, losses: list, exp_out, exp_losses: list, where: str, counts: dict) -> None:
    """The last stage: one loss per microbatch and the merged outputs, each equal to the unsplit model's."""
    name = run.name
    assert_equal(f"{name}.step", len(losses), run.n_mb, f"number of microbatch losses ({where})")
    for i, (got, exp) in enumerate(zip(losses, exp_losses, strict=True)):
        assert_close(f"{name}.step", got.detach(), exp, device=run.dev_type, what=f"loss of microbatch {i} ({where})")
        counts["losses"] += 1
    if out is None:
        raise AssertionError(f"{name}.step: last stage returned no outputs ({where})")
    assert_close(f"{name}.step", out.detach(), exp_out, device=run.dev_type, what=f"merged outputs ({where})")
    counts["outputs"] += 1


def check_gradients(run: ScheduleRun, where: str, counts: dict) -> None:
    """Every parameter of this rank's stages: the unsplit model's gradient in train mode, none in eval."""
    name = run.name
    for st, mapping in zip(run.stages, run.names, strict=True):
        for pname, prm in st.submod.named_parameters():
            rname = mapping[pname]
            if rname not in run.ref_params:
                rname = rname.replace("_", ".")
            if rname not in run.ref_params:
                raise AssertionError(f"stage {st.stage_index} parameter {pname!r} has no counterpart in the model")
            if not run.train:
                if prm.grad is not None and prm.grad.abs().sum().item() != 0:
                    raise AssertionError(f"{name}.eval: stage {st.stage_index} {pname} got a gradient ({where})")
                counts["no_grads"] += 1
                continue
            if prm.grad is None:
                raise AssertionError(f"{name}.step: stage {st.stage_index} {pname} has no gradient ({where})")
            assert_grad_close(f"{name}.step", prm.grad, run.ref_params[rname].grad, device=run.dev_type,
                              what=f"gradient of {rname} on stage {st.stage_index} ({where})")
            counts["grads"] += 1


def sgd_update(run: ScheduleRun) -> None:
    """Same SGD update on both sides so the next iteration starts from the same (moved) weights."""
    import torch

    lr = run.p["lr"]
    with torch.no_grad():
        for prm in run.ref.parameters():
            prm.sub_(lr * prm.grad)
        for st in run.stages:
            for prm in st.submod.parameters():
                prm.sub_(lr * prm.grad)


@register("schedule")
def run_schedule(ctx: RankContext, params: dict) -> dict:
    """One schedule, on this rank's stages, for `iterations` steps, checked against the unsplit model."""
    run = prepare(ctx, params)
    tracer = trace.Tracer(ctx.device_type)
    tracer.attach_all(run.stages)  # every schedule check records what it executed (cheap: a tuple per action)
    counts = {"losses": 0, "outputs": 0, "grads": 0, "no_grads": 0, "stages": run.sids, "last": run.last,
              "n_mb": run.n_mb}
    for it in range(run.p["iterations"]):
        zero_grads(run)
        exp_out, exp_losses = reference_step(run.ref, run.inputs, run.n_mb, train=run.train, scale_grads=run.scaled,
                                             with_kwargs=run.p["kwargs"])
        tracer.begin()
        out, losses = run_step(run)
        tracer.end()
        where = f"{run.name} world {run.world} rank {run.rank} iteration {it}"
        if run.last:
            check_last_stage(run, out, losses, exp_out, exp_losses, where, counts)
        check_gradients(run, where, counts)
        if run.train and it + 1 < run.p["iterations"]:
            sgd_update(run)
    counts["actions"] = len(tracer.actions)
    return counts


@register("schedule_error")
def schedule_error(ctx: RankContext, params: dict) -> dict:
    """A documented constructor error: the schedule must refuse the configuration with an exception."""
    import torch
    from torch.distributed.pipelining import PipelineStage

    name, case = params["schedule"], params["case"]
    cls = schedule_class(name)
    device = ctx.torch_device
    world = ctx.world_size
    if case == "too_few_microbatches":
        n_st, sids, n_mb = num_stages(name, world), stage_ids(name, ctx.rank, world), 1
    elif case == "one_local_stage":
        n_st, sids, n_mb = world, [ctx.rank], 2 * world
    elif case == "three_local_stages":
        n_st = 3 * world
        sids, n_mb = [ctx.rank, 2 * world - 1 - ctx.rank, 2 * world + ctx.rank], 2 * n_st
    else:
        raise ValueError(f"unknown case {case!r}")
    stages = []
    for s in sids:
        mod = torch.nn.Linear(4, 4).to(device)
        stages.append(PipelineStage(mod, s, n_st, device))
    arg = stages[0] if name in SINGLE else stages
    try:
        cls(arg, n_microbatches=n_mb, loss_fn=loss_fn)
    except (ValueError, RuntimeError, AssertionError, TypeError) as exc:
        return {"raised": type(exc).__name__, "message": str(exc)[:300]}
    raise AssertionError(f"{name}({case}: {len(sids)} local stage(s) of {n_st}, n_microbatches={n_mb}) "
                         "was accepted; expected a constructor error")

