"""Rank side of the training-loop checks: the paths trainers run (accumulation, eval/train, pre-split inputs, ...).

One task per schedule x world (`training`) runs a sequence of steps and evals on one set of stages, the way a
trainer does, and compares each against an unsplit replica of the model on this rank. Every property is judged
here and recorded under its own name (`props`), so one run serves many check ids and a broken property fails its
own check only. A numeric mismatch is recorded and the sequence goes on (every rank keeps making the same calls);
an exception from pipelining stops the task on a multi-rank world (the ranks would no longer agree on what comes
next), and is recorded and survived at world 1.

The model: layers of Linear + BatchNorm + ReLU (residual) with a forward-call counter buffer and one RNG draw per
forward, plus a side stream `aux` (its own Linear per layer) that only the last stage's head reads, and only on
microbatches whose flag column is positive: a stage input that gets no gradient on some microbatches.
Inputs are (batch, seq, features) so the sequence length can change between steps.
"""

from __future__ import annotations

import functools
import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.pool.scenarios import RankContext, Skip, register
from conformance.protocol.outcomes import not_applicable
from conformance.suite.assertions import assert_close
from conformance.suite.ranks import common
from conformance.suite.ranks import schedules as sch

D = 8  # features of the main stream
D_AUX = 4  # features of the side stream (plus one flag column)
SEQ = 3
LONGER_SEQ = SEQ + 2  # the sequence-length check's second step
MB_SIZE = 2
N_LAYERS = 8  # divisible by every stage count used (1, 2, 4, 8)
SEED = 7
LOSS_SCALE = 0.5  # the loss_kwargs value: loss = scale * mse

# Property names: each is one check id's verdict (conformance/suite/checks/test_training.py).
ACCUMULATION = ("accumulation-scaled", "accumulation-summed")
UNUSED = ("unused_input-some", "unused_input-never")
EVAL = ("eval-first", "eval-between", "eval-return_outputs_false", "eval-loss_kwargs")
LOSSES = ("losses_released-step", "losses_released-eval")
PRESPLIT = ("presplit-step", "presplit-eval", "presplit-mismatch")
METADATA = ("metadata-static", "metadata-buffers", "metadata-rng")
PROPERTIES = ACCUMULATION + UNUSED + EVAL + LOSSES + PRESPLIT + METADATA + ("seq_len",)


def _nn() -> Any:
    import torch.nn as nn

    return nn


def build_layers(device, dtype, n_stages: int) -> Any:
    """The unsplit model (seeded): `layers` (main and side stream) and the `head` that reads the side stream.

    The first layer of every stage normalises with a BatchNorm (running stats are buffers a forward moves); only
    there, since BatchNorm is the costliest op here and one per stage is what the buffer check needs.
    """
    import torch

    nn: Any = _nn()

    class Layer(nn.Module):
        def __init__(self, norm: bool) -> None:
            super().__init__()
            self.lin = nn.Linear(D, D)
            self.bn = nn.BatchNorm1d(D) if norm else nn.Identity()
            self.aux = nn.Linear(D_AUX, D_AUX)
            self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

        def forward(self, x, aux):
            self.calls += 1
            # One draw per forward: a forward that pipelining adds (shape inference) moves the generator.
            noise = torch.rand((), device=x.device, dtype=x.dtype)
            h = torch.relu(self.bn(self.lin(x).reshape(-1, D)).reshape(x.shape))
            side = torch.cat([torch.tanh(self.aux(aux[..., :D_AUX])), aux[..., D_AUX:]], dim=-1)
            return x + h + 0 * noise, side

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(D_AUX, D)

        def forward(self, x, aux):
            # The side stream is read only where the microbatch's flag is positive (conditional/MoE-like layers).
            if bool(aux[..., D_AUX:].amax() > 0):
                return x + self.proj(aux[..., :D_AUX])
            return x

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            per = N_LAYERS // n_stages
            self.layers = nn.ModuleList([Layer(i % per == 0) for i in range(N_LAYERS)])
            self.head = Head()

        def forward(self, x, aux):
            for layer in self.layers:
                x, aux = layer(x, aux)
            return self.head(x, aux)

    torch.manual_seed(SEED)
    return Model().to(device=device, dtype=dtype)


def part_module(model, lo: int, hi: int, last: bool) -> Any:
    """One stage: layers[lo:hi] of a fresh copy of the model; the last stage also runs the head."""
    nn: Any = _nn()

    class Part(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(list(model.layers[lo:hi]))
            if last:
                self.head = model.head

        def forward(self, x, aux):
            for layer in self.layers:
                x, aux = layer(x, aux)
            return self.head(x, aux) if last else (x, aux)

    return Part()


def loss_fn(output, target, scale: float = 1.0):
    """The suite's loss (`common.loss_fn`) times `scale` (the loss-scaling checks)."""
    return scale * common.loss_fn(output, target)


@dataclass
class Batch:
    """One global batch and its microbatches (the same split the schedule makes: equal chunks of dim 0)."""

    x: Any
    aux: Any
    y: Any
    n_mb: int

    def mbs(self, name: str) -> list:
        return list(getattr(self, name).tensor_split(self.n_mb))


def make_batch(seed: int, n_mb: int, device, dtype, *, seq: int = SEQ, flags: str = "on") -> Batch:
    """A seeded batch; `flags` sets the side stream's flag per microbatch: on, off, or alternate (on for even)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    rows = n_mb * MB_SIZE
    x = torch.randn(rows, seq, D, generator=g)
    aux = torch.randn(rows, seq, D_AUX + 1, generator=g)
    for i in range(n_mb):
        on = flags == "on" or (flags == "alternate" and i % 2 == 0)
        aux[i * MB_SIZE:(i + 1) * MB_SIZE, :, D_AUX] = 1.0 if on else -1.0
    y = torch.randn(rows, seq, D, generator=g)
    x, aux, y = (t.to(device=device, dtype=dtype) for t in (x, aux, y))
    return Batch(x, aux, y, n_mb)


@dataclass
class Side:
    """This rank's pipelined side: stages, their parameter name maps to the unsplit model, and the schedule."""

    stages: list
    names: list[dict]
    sched: Any
    first: bool
    last: bool
    scaled: bool


def build_side(ctx: RankContext, name: str, n_mb: int, device, dtype, *, scale_grads: bool = True,
               static: Batch | None = None) -> Side:
    """This rank's stages (runtime shape inference, or static `input_args`/`output_args` from `static`)."""
    import torch
    from torch.distributed.pipelining import PipelineStage

    world = ctx.world_size
    n_st = sch.num_stages(name, world)
    per = N_LAYERS // n_st
    stages, names = [], []
    for s in sch.stage_ids(name, ctx.rank, world):
        lo, hi = s * per, (s + 1) * per
        last = s == n_st - 1
        part = part_module(build_layers(device, dtype, n_st), lo, hi, last)
        kw: dict[str, Any] = {}
        if static is not None:
            with torch.no_grad():
                ref = build_layers(device, dtype, n_st)  # shapes only: a throwaway copy, so no buffer moves
                x, aux = static.mbs("x")[0], static.mbs("aux")[0]
                for layer in ref.layers[:lo]:
                    x, aux = layer(x, aux)
                # Activations a stage receives need gradients (the stage sends them back); the model's inputs do not.
                ins = tuple(torch.zeros_like(t).requires_grad_(s > 0) for t in (x, aux))
                outs = part_module(ref, lo, hi, last)(x, aux)
                # Static metadata carries requires_grad: activations sent on need gradients back.
                outs = torch.zeros_like(outs) if last else tuple(torch.zeros_like(t).requires_grad_() for t in outs)
            kw = {"input_args": ins, "output_args": outs}
        stages.append(PipelineStage(part, s, n_st, device, **kw))
        names.append({n: (n if n.startswith("head.") else f"layers.{lo + int(n.split('.')[1])}.{n.split('.', 2)[2]}")
                      for n, _ in part.named_parameters()})
    cls = common.schedule_class(name)
    sched_kw = {"scale_grads": scale_grads} if "scale_grads" in inspect.signature(cls.__init__).parameters else {}
    arg = stages[0] if name in sch.SINGLE else stages
    sched = cls(arg, n_microbatches=n_mb, loss_fn=loss_fn, **sched_kw)
    return Side(stages, names, sched, any(s.is_first for s in stages), any(s.is_last for s in stages),
                scale_grads)


@dataclass
class Run:
    """Everything one training task works with: the pipelined side, the unsplit replica, verdicts per property."""

    ctx: RankContext
    name: str
    n_mb: int
    device: Any
    dtype: Any
    side: Side
    ref: Any
    props: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    grads_before: dict | None = None  # every stage gradient before the last eval(): eval() must leave them alone

    @property
    def dev(self) -> str:
        return self.ctx.device_type

    def where(self, what: str) -> str:
        return f"{self.name} world {self.ctx.world_size} rank {self.ctx.rank}: {what}"


def ref_params(ref) -> dict:
    return dict(ref.named_parameters())


def reference(run: Run, batch: Batch, *, train: bool, divide: bool, loss_scale: float = 1.0) -> tuple[Any, list]:
    """The unsplit model over the batch's microbatches: merged outputs and losses; gradients accumulate into
    whatever the replica holds, this call's divided by n_microbatches when `divide` (scale_grads=True's contract)."""
    import torch

    ref = run.ref
    before = {n: (p.grad.clone() if p.grad is not None else None) for n, p in ref.named_parameters()}
    if divide:
        ref.zero_grad(set_to_none=True)
    outs, losses = [], []
    with torch.enable_grad() if train else torch.no_grad():
        for x, aux, y in zip(batch.mbs("x"), batch.mbs("aux"), batch.mbs("y"), strict=True):
            out = ref(x, aux)
            loss = loss_fn(out, y, loss_scale)
            if train:
                loss.backward()
            outs.append(out.detach())
            losses.append(loss.detach())
    if train and divide:
        with torch.no_grad():
            for n, p in ref.named_parameters():
                if p.grad is not None:
                    p.grad.div_(run.n_mb)
                if before[n] is not None:
                    p.grad = before[n] if p.grad is None else p.grad + before[n]
    return torch.cat(outs), losses


def call(run: Run, batch: Batch | None, *, train: bool, presplit: bool = False, **extra: Any) -> tuple[Any, list]:
    """One `step()` or `eval()` of the pipelined side on `batch`: (merged outputs or None, losses)."""
    side = run.side
    losses: list = []
    kw: dict[str, Any] = dict(extra)
    args: tuple = ()
    if batch is not None and presplit:
        if side.first:
            kw["arg_mbs"] = list(zip(batch.mbs("x"), batch.mbs("aux"), strict=True))
        if side.last:
            kw["target_mbs"] = batch.mbs("y")
    elif batch is not None:
        args = (batch.x, batch.aux) if side.first else ()
        if side.last:
            kw["target"] = batch.y
    fn = side.sched.step if train else side.sched.eval
    run.grads_before = None if train else snapshot_grads(run)
    try:
        out = fn(*args, losses=losses, **kw)
    except Exception as exc:
        raise PipelineError(f"{run.name}.{fn.__name__}() raised {type(exc).__name__}: {exc}") from exc
    return out, losses


def snapshot_grads(run: Run) -> dict:
    return {(st.stage_index, n): (p.grad.clone() if p.grad is not None else None)
            for st in run.side.stages for n, p in st.submod.named_parameters()}


def compare_numbers(run: Run, what: str, out, losses: list, exp_out, exp_losses: list, *, train: bool,
                    outputs: bool = True) -> int:
    """Losses (last stage), merged outputs (last stage, when returned) and every gradient of this rank's stages
    against the replica; in eval no gradient may appear. Returns how many tensors were compared."""
    n = 0
    api = f"{run.name}.{'step' if train else 'eval'}"
    if run.side.last:
        if len(losses) != run.n_mb:
            raise AssertionError(f"{api}: {len(losses)} microbatch losses, expected {run.n_mb} ({run.where(what)})")
        for i, (got, exp) in enumerate(zip(losses, exp_losses, strict=True)):
            assert_close(api, got.detach(), exp, device=run.dev, what=f"loss of microbatch {i} ({run.where(what)})")
            n += 1
        if outputs:
            if out is None:
                raise AssertionError(f"{api}: the last stage returned no outputs ({run.where(what)})")
            assert_close(api, out.detach(), exp_out, device=run.dev, what=f"merged outputs ({run.where(what)})")
            n += 1
    return n + (compare_grads(run, what, api) if train else grads_untouched(run, what, api))


def grads_untouched(run: Run, what: str, api: str) -> int:
    """eval(): every stage gradient exactly as before the call (None stays None)."""
    import torch

    n = 0
    before = run.grads_before or {}
    for st, names in zip(run.side.stages, run.side.names, strict=True):
        for pname, prm in st.submod.named_parameters():
            old = before.get((st.stage_index, pname))
            same = (old is None and prm.grad is None) or (
                old is not None and prm.grad is not None and torch.equal(old, prm.grad))
            if not same:
                ratio = ""
                if old is not None and prm.grad is not None and prm.grad.abs().sum() > 0:
                    ratio = f" (now {(old.abs().sum() / prm.grad.abs().sum()).item():.3g}x smaller)"
                raise AssertionError(f"{api}: the gradient of {names[pname]} on stage {st.stage_index} changed "
                                     f"during eval(){ratio}, which runs no backward ({run.where(what)})")
            n += 1
    return n


def compare_grads(run: Run, what: str, api: str) -> int:
    n = 0
    refp = ref_params(run.ref)
    for st, names in zip(run.side.stages, run.side.names, strict=True):
        for pname, prm in st.submod.named_parameters():
            exp = refp[names[pname]].grad
            label = f"gradient of {names[pname]} on stage {st.stage_index} ({run.where(what)})"
            if exp is None and prm.grad is None:
                n += 1
                continue
            if exp is None:
                kind = "zeros" if prm.grad.abs().sum().item() == 0 else "a non-zero gradient"
                raise AssertionError(f"{api}: {label}: the unsplit model has no gradient (None), the stage has "
                                     f"{kind} (an optimizer with weight decay or momentum then moves a parameter "
                                     "the unsplit model leaves alone)")
            if prm.grad is None:
                raise AssertionError(f"{api}: {label}: no gradient, the unsplit model has one")
            sch.assert_grad_close(api, prm.grad, exp, device=run.dev, what=label)
            n += 1
    return n


def zero(run: Run) -> None:
    run.ref.zero_grad(set_to_none=True)
    for st in run.side.stages:
        st.submod.zero_grad(set_to_none=True)


def has_param(run: Run, fn: Callable, param: str) -> bool:
    return param in inspect.signature(fn).parameters


class PipelineError(Exception):
    """A pipelining call raised (the cause is the original exception)."""


class Stop(Exception):
    """A pipelining call raised on this rank of a multi-rank world: the ranks no longer agree on what comes next."""


class Recorder:
    """Runs each property, records its verdict: `compared` (how many tensors), `failed` (a mismatch with the
    unsplit model or the documented behaviour), `error` (pipelining raised) or `skip`. An error stops the task on a
    multi-rank world; at world 1 the sequence goes on."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def skip(self, prop: str, reason: str) -> None:
        self.run.props.setdefault(prop, {"skip": reason})

    def __call__(self, prop: str, body: Callable[[], int]) -> None:
        """Run one part of a property; a property judged in several parts passes only if every part does."""
        done = self.run.props.get(prop)
        if done is not None and "compared" not in done:
            return
        try:
            got: dict[str, Any] = {"compared": body() + (done or {}).get("compared", 0)}
        except AssertionError as exc:
            got = {"failed": str(exc)}
        except Skip as exc:
            got = {"skip": str(exc)}
        except Exception as exc:
            got = {"error": f"{self.run.where(prop)}: {exc}", "traceback": traceback.format_exc()}
            self.run.props[prop] = got
            if self.run.ctx.world_size > 1:
                raise Stop(prop) from exc
        self.run.props[prop] = got


def saved_tensors_alive(loss) -> int:
    """Tensors still saved for backward anywhere in the autograd graph behind `loss` (0 once backward freed them,
    or when the loss is detached)."""
    import torch

    alive, seen, todo = 0, set(), [getattr(loss, "grad_fn", None)]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        for attr in dir(node):
            if attr.startswith("_saved_"):
                try:
                    value = getattr(node, attr)
                except RuntimeError:  # freed by backward
                    continue
                alive += sum(isinstance(v, torch.Tensor) for v in (value if isinstance(value, tuple) else (value,)))
        todo.extend(fn for fn, _ in node.next_functions)
    return alive


def losses_hold_graph(run: Run, losses: list, mode: str, source: str = "") -> int:
    """The losses a step (or eval) filled hold no autograd graph with saved tensors: every tensor that graph saved
    (activations, targets) stays alive as long as the caller keeps the losses (torchtitan PR 4430: aggregated
    losses kept every microbatch's graph alive)."""
    if source and "error" in run.props.get(source, {}):
        raise Skip(not_applicable(f"the {mode}() that fills the losses raised here (see the {source} check)"))
    if not run.side.last:
        return 0
    alive = [saved_tensors_alive(loss) for loss in losses]
    if any(alive):
        raise AssertionError(f"{run.name}.{mode}: the losses it filled hold autograd graphs with {sum(alive)} "
                             f"saved tensor(s) alive (per microbatch: {alive}); they live as long as the caller "
                             f"keeps the losses ({run.where(mode)})")
    return len(losses)


def rng_state(device_type: str):
    import torch

    if device_type == "cpu":
        return torch.get_rng_state()
    return getattr(torch, device_type).get_rng_state()


def set_rng_state(device_type: str, state) -> None:
    import torch

    if device_type == "cpu":
        torch.set_rng_state(state)
    else:
        getattr(torch, device_type).set_rng_state(state)


def expected_rng(run: Run, before, draws: int):
    """The generator state after exactly `draws` forward draws from `before` (one per layer forward)."""
    import torch

    now = rng_state(run.dev)
    set_rng_state(run.dev, before)
    for _ in range(draws):
        torch.rand((), device=run.device, dtype=run.dtype)
    want = rng_state(run.dev)
    set_rng_state(run.dev, now)
    return want


def layer_forwards(run: Run) -> int:
    return sum(len(st.submod.layers) for st in run.side.stages)


def compare_buffers(run: Run, batch: Batch, what: str) -> int:
    """Every buffer of this rank's stages (BatchNorm running stats and batch count, the call counter) against
    the replica's after the same forwards."""
    import torch

    n_st = sch.num_stages(run.name, run.ctx.world_size)
    fresh = build_layers(run.device, run.dtype, n_st)  # the main stages' first step is their first forward
    for x, aux in zip(batch.mbs("x"), batch.mbs("aux"), strict=True):
        fresh(x, aux)
    refb = dict(fresh.named_buffers())
    per = N_LAYERS // n_st
    n = 0
    for st in run.side.stages:
        for bname, buf in st.submod.named_buffers():
            j, rest = bname.split(".", 2)[1:]
            rname = f"layers.{st.stage_index * per + int(j)}.{rest}"
            exp = refb[rname]
            label = f"buffer {rname} on stage {st.stage_index} ({run.where(what)})"
            if not exp.is_floating_point():
                if not torch.equal(buf, exp):
                    raise AssertionError(f"{run.name}: {label}: {buf.item()}, the unsplit model's {exp.item()} "
                                         "after the same microbatches (shape inference ran a forward that counted)")
            else:
                assert_close(f"{run.name}", buf, exp, device=run.dev, what=label)
            n += 1
    return n


def judge_rng(run: Run, before, got) -> int:
    """The generator state after the first step is the one its own forwards leave (one draw per layer forward)."""
    import torch

    want = expected_rng(run, before, run.n_mb * layer_forwards(run))
    if not torch.equal(got, want):
        raise AssertionError(f"{run.name}: the random generator after the first step is not where {run.n_mb} "
                             f"microbatch forwards leave it: shape inference drew random numbers "
                             f"({run.where('RNG state')})")
    return 1


def microbatches(name: str, world: int) -> int:
    """As few as every schedule's rule allows (1F1B, V: >= num_stages; interleaved: n % (n // W) == 0), at least 2
    so accumulation and the per-microbatch cases have two microbatches to tell apart: half the schedule area's
    default, for the CPU suite's time budget."""
    return max(2, sch.num_stages(name, world))


@register("training")
def run_training(ctx: RankContext, params: dict) -> dict:
    """The training-loop sequence on one schedule: see the module docstring and each property's check."""
    import torch

    name = params["schedule"]
    dtype = torch.float32
    device = ctx.torch_device
    n_mb = microbatches(name, ctx.world_size)
    side = build_side(ctx, name, n_mb, device, dtype)
    run = Run(ctx, name, n_mb, device, dtype, side, build_layers(device, dtype, sch.num_stages(name, ctx.world_size)))
    rec = Recorder(run)
    has_eval = hasattr(side.sched, "eval")
    why_eval = params.get("eval_unusable", "")
    for prop in (*EVAL, "losses_released-eval", "presplit-eval"):
        if not has_eval:
            rec.skip(prop, api_reason("eval"))
        elif why_eval:
            rec.skip(prop, why_eval)
    # One intra-op thread while the task runs (restored after): on a loaded CPU host, 2 OpenMP threads per rank make
    # a BatchNorm of a few rows 200x slower (threads spinning at the barrier), which is not what this area measures.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu0 = time.process_time()
    try:
        sequence(run, rec, has_eval and not why_eval)
    except Stop:
        pass
    finally:
        torch.set_num_threads(threads)
    cpu_s = time.process_time() - cpu0
    if ctx.world_size > 1:
        rec.skip("seq_len", "not measured: a sequence length change runs at world 1 only")
    for prop in PROPERTIES:
        run.props.setdefault(prop, {"skip": "not measured: the task stopped at an earlier property on this rank"})
    return {"rank": ctx.rank, "stages": side_stages(run), "last": side.last, "n_mb": n_mb, "props": run.props,
            "notes": run.notes, "cpu_s": round(cpu_s, 3)}


def api_reason(name: str) -> str:
    from conformance.torchenv import api

    return api.missing_reason(name) or not_applicable(f"this build's schedules lack {name}")


def side_stages(run: Run) -> list[int]:
    return [st.stage_index for st in run.side.stages]


def recover(run: Run, rec: Recorder, prop: str) -> None:
    """After a call that raised (world 1 only; elsewhere the task stopped): fresh stages for what follows, since
    the failed call leaves the schedule's state half-run."""
    if "error" in run.props.get(prop, {}):
        run.side = build_side(run.ctx, run.name, run.n_mb, run.device, run.dtype, scale_grads=run.side.scaled)


def step_and_compare(run: Run, batch: Batch, what: str, *, train: bool = True, divide: bool = True,
                     zero_first: bool = True, presplit: bool = False, loss_scale: float = 1.0,
                     keep: list | None = None, **extra: Any) -> int:
    """One pipelined call and the same on the replica, compared; `keep` receives the call's losses."""
    if zero_first:
        zero(run)
    out, losses = call(run, batch, train=train, presplit=presplit, **extra)
    exp = reference(run, batch, train=train, divide=divide, loss_scale=loss_scale)
    if keep is not None:
        keep.extend(losses)
    return compare_numbers(run, what, out, losses, *exp, train=train,
                           outputs=extra.get("return_outputs", True))


def sequence(run: Run, rec: Recorder, eval_ok: bool) -> None:
    """What a trainer does, in order, on three sets of stages; each block serves one family of properties."""
    main = run.side
    sched = main.sched
    a, b, c, d = (make_batch(100 + i, run.n_mb, run.device, run.dtype) for i in range(4))
    # Fresh stages, scale_grads=False: eval() as the very first call (3), then accumulation over two steps (1).
    summed = has_param(run, type(sched).__init__, "scale_grads")
    run.side = build_side(run.ctx, run.name, run.n_mb, run.device, run.dtype, scale_grads=not summed)
    if eval_ok:
        rec("eval-first", lambda: step_and_compare(run, a, "eval() before the first step", train=False))
        recover(run, rec, "eval-first")
    if summed:
        rec("accumulation-summed", lambda: step_and_compare(run, a, "step A (scale_grads=False)", divide=False))
        rec("accumulation-summed", lambda: step_and_compare(
            run, b, "step B after step A without zero_grad (scale_grads=False)", divide=False, zero_first=False))
    else:
        rec.skip("accumulation-summed", api_reason("scale_grads"))
    # Main stages (runtime shape inference, scale_grads=True): the first step runs shape inference, so buffers,
    # RNG and the losses it filled are judged right after it (5, 3).
    run.side = main
    state: dict[str, Any] = {}

    def first() -> int:
        state["rng"] = rng_state(run.dev)
        zero(run)
        out, losses = call(run, a, train=True)
        state["rng_after"] = rng_state(run.dev)
        state["losses"] = losses
        return compare_numbers(run, "first step", out, losses, *reference(run, a, train=True, divide=True),
                               train=True)

    rec("first-step", first)
    if "rng_after" in state:
        rec("metadata-buffers", lambda: compare_buffers(run, a, "after the first step (shape inference)"))
        rec("metadata-rng", lambda: judge_rng(run, state["rng"], state["rng_after"]))
        rec("losses_released-step", lambda: losses_hold_graph(run, state.pop("losses"), "step"))
    # 1: step B right after step A without zero_grad, scale_grads=True: each step's mean, summed.
    rec("accumulation-scaled", lambda: step_and_compare(
        run, b, "step B after step A without zero_grad (scale_grads=True)", zero_first=False))
    if eval_ok:
        # 3: step -> eval -> step: eval() leaves the gradients the steps left, and the next step is exact.
        kept: list = []
        rec("eval-between", lambda: step_and_compare(run, c, "eval() after two steps (gradients kept)",
                                                     train=False, zero_first=False, keep=kept))
        recover(run, rec, "eval-between")
        rec("losses_released-eval", lambda: losses_hold_graph(run, kept, "eval", "eval-between"))
        rec("eval-between", lambda: step_and_compare(run, d, "step after eval()"))
        if has_param(run, sched.step, "return_outputs"):
            rec("eval-return_outputs_false", lambda: step_and_compare(
                run, c, "eval(return_outputs=False)", train=False, return_outputs=False))
            recover(run, rec, "eval-return_outputs_false")
        else:
            rec.skip("eval-return_outputs_false", api_reason("return_outputs"))
        if has_param(run, sched.step, "loss_kwargs"):
            rec("eval-loss_kwargs", lambda: step_and_compare(
                run, c, "eval(loss_kwargs=...)", train=False, loss_scale=LOSS_SCALE,
                loss_kwargs={"scale": LOSS_SCALE}))
            recover(run, rec, "eval-loss_kwargs")
        else:
            rec.skip("eval-loss_kwargs", api_reason("loss_kwargs"))
    # 4: pre-split microbatches give the numbers of the schedule's own split; mismatched counts are refused.
    if has_param(run, sched.step, "arg_mbs"):
        rec("presplit-step", lambda: step_and_compare(run, b, "step(arg_mbs=, target_mbs=)", presplit=True))
        recover(run, rec, "presplit-step")
        if eval_ok:
            rec("presplit-eval", lambda: step_and_compare(run, c, "eval(arg_mbs=, target_mbs=)", train=False,
                                                          presplit=True))
            recover(run, rec, "presplit-eval")
        rec("presplit-mismatch", lambda: presplit_errors(run, b))
    else:
        for prop in PRESPLIT:
            rec.skip(prop, api_reason("arg_mbs"))
    # 2: a stage input that gets no gradient on some / all microbatches (the head reads `aux` only where flagged).
    for prop, flags in (("unused_input-some", "alternate"), ("unused_input-never", "off")):
        batch = make_batch(200, run.n_mb, run.device, run.dtype, flags=flags)
        what = f"step with the side input read on {flags} microbatches"
        rec(prop, functools.partial(step_and_compare, run, batch, what))
        recover(run, rec, prop)
    # 5: static shapes (input_args/output_args) give the numbers of runtime inference.
    run.side = build_side(run.ctx, run.name, run.n_mb, run.device, run.dtype, static=a)
    rec("metadata-static", lambda: step_and_compare(run, a, "step with static input_args/output_args"))
    # 5: a sequence length that changes between steps, last (a refusal may leave the ranks out of step), on the
    # main stages that inferred their shapes at the first length: the unsplit model's numbers or a shape error.
    if run.ctx.world_size == 1:
        longer = make_batch(300, run.n_mb, run.device, run.dtype, seq=LONGER_SEQ)
        rec("seq_len", lambda: seq_len_change(run, a, longer))


def seq_len_change(run: Run, first: Batch, batch: Batch) -> int:
    """torchtitan#431: a sequence length that changes between steps gives the unsplit model's numbers, or the
    shape error pipelining documents; never a step that runs on with wrong shapes. Fresh runtime-inferred stages.
    World 1 only: across ranks the receiver's buffer has the first length, and on torch 2.13 it waits until gloo's
    timeout, on 2.14 gloo aborts the rank process (README, "Training loops"): neither fits a shared rank pool."""
    run.side = build_side(run.ctx, run.name, run.n_mb, run.device, run.dtype)
    step_and_compare(run, first, f"step at sequence length {SEQ}")
    zero(run)
    try:
        out, losses = call(run, batch, train=True)
    except PipelineError as exc:
        return documented_shape_error(run, exc.__cause__ or exc)
    exp = reference(run, batch, train=True, divide=True)
    return compare_numbers(run, f"step with sequence length {LONGER_SEQ} after {SEQ}", out, losses, *exp, train=True)


def documented_shape_error(run: Run, exc: BaseException) -> int:
    """A refused shape change must say so: PipeliningShapeError (or a message naming the shape)."""
    text = f"{type(exc).__name__}: {exc}"
    if "Shape" in type(exc).__name__ or "shape" in str(exc).lower():
        run.notes.append(f"sequence length change refused: {text[:300]}")
        return 1
    raise AssertionError(f"{run.name}.step: a sequence length change raised {text[:500]}, not a shape error "
                         f"({run.where('sequence length change')})")


def presplit_errors(run: Run, batch: Batch) -> int:
    """Mismatched pre-split containers are refused on every rank before any communication: ValueError for a
    count that is not n_microbatches, TypeError for a container that is not a list (the step()'s docstring)."""
    cases: list[tuple[str, dict[str, Any]]] = [
             ("ValueError", {"kwarg_mbs": [{}] * (run.n_mb - 1)}),
             ("ValueError", {"kwarg_mbs": [{}] * (run.n_mb + 1)}),
             ("TypeError", {"kwarg_mbs": tuple({} for _ in range(run.n_mb))})]
    if run.side.first:
        cases.append(("TypeError", {"arg_mbs": [t[0] for t in zip(batch.mbs("x"), strict=True)]}))
    n = 0
    for want, kw in cases:
        try:
            run.side.sched.step(**kw)
        except Exception as exc:  # the type is what is judged; every rank raises before communicating
            if type(exc).__name__ != want:
                raise AssertionError(f"{run.name}.step({', '.join(kw)}=...): raised {type(exc).__name__}: {exc}, "
                                     f"the documented error is {want} ({run.where('pre-split inputs')})") from None
            n += 1
            continue
        raise AssertionError(f"{run.name}.step({', '.join(kw)}=<{len(next(iter(kw.values())))} entries for "
                             f"{run.n_mb} microbatches>): accepted; documented: {want} ({run.where('pre-split')})")
    return n
