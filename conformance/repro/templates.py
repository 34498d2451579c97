"""The text of the reproduction scripts, in pieces: `scripts.py` joins the pieces a scenario needs.

`@NAME@` is filled in by `scripts.fill`; a line ending in `  # [feature]` is kept only when the scenario has that
feature (the tag is dropped), so each script holds only the code its check runs. Text only: no torch here.
"""

HEADER = '''#!/usr/bin/env python3
"""@TITLE@

Reproduces the pp-conformance check @CHECK_ID@ with plain torch only: `python @FILENAME@`
exits 1 when the problem reproduces (expected vs actual printed), 0 when it does not, 2 when it cannot run here."""
import faulthandler, inspect, os, queue, socket, sys, time, traceback
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

CHECK, DEVICE_TYPE, BACKEND, WORLD = @CHECK_ID_R@, @TORCH_TYPE@, @BACKEND@, @WORLD@
IMPORT_FIRST, RANK_ENV, PROCESS_GROUP, TIMEOUT, GRACE = @IMPORT_FIRST@, @RANK_ENV@, @PROCESS_GROUP@, 600, 3  # seconds
'''

COMMON = '''

class NotApplicable(Exception): pass  # this build or host cannot run the scenario (exit 2)


def close(got, exp, what, grad=False):  # the check's tolerance; low-precision gradients scale atol by max|exp|  # [close]
    atol = max(ATOL, RTOL * exp.detach().abs().max().item()) if grad and exp.dtype != torch.float32 else ATOL  # [close]
    try:  # [close]
        torch.testing.assert_close(got.detach().to(exp.dtype), exp.detach(), rtol=RTOL, atol=atol)  # [close]
    except AssertionError as exc:  # [close]
        raise AssertionError(f"{what} differs from the unsplit model (rtol={RTOL}, atol={atol:.3g}): {exc}") from None  # [close]
'''

LAUNCHER = '''

def _rank(rank, port, results):
    os.environ.update({k: v for k, v in RANK_ENV.items() if k not in os.environ})
    try:
        if DEVICE_TYPE != "cpu":  # one device per rank
            getattr(torch, DEVICE_TYPE).set_device(rank)
        if PROCESS_GROUP:
            dist.init_process_group(BACKEND, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)  # [nobind]
            bind = {} if DEVICE_TYPE == "cpu" else {"device_id": torch.device(DEVICE_TYPE, rank)}  # a device-bound group, as the suite's  # [bind]
            dist.init_process_group(BACKEND, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, **bind)  # [bind]
        results.put((rank, "ok", run_rank(rank, torch.device(DEVICE_TYPE, None if DEVICE_TYPE == "cpu" else rank))))
    except NotApplicable as exc:
        results.put((rank, "n/a", str(exc)))
    except Exception as exc:  # any exception fails the check, as in the suite
        why = " <- caused by ".join(f"{type(e).__name__}: {' '.join(str(e).split())[:700]}"
                                    for e in (exc, exc.__cause__ or exc.__context__) if e is not None)
        at = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__))
        results.put((rank, "failed", f"{why} [at {at}]"))


def launch():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if WORLD == 1:  # in this process, as the suite runs world 1; a hang ends it with exit 1
        faulthandler.dump_traceback_later(TIMEOUT, exit=True)
        _rank(0, port, got := queue.SimpleQueue())
        return {0: got.get()[1:]}
    ctx = mp.get_context("spawn")
    results, out, deadline = ctx.Queue(), {}, time.monotonic() + TIMEOUT
    for p in (procs := [ctx.Process(target=_rank, args=(r, port, results), daemon=True) for r in range(WORLD)]):
        p.start()
    while len(out) < WORLD and time.monotonic() < deadline:
        try:
            r, status, payload = results.get(timeout=0.5)
            out[r] = (status, payload)
        except queue.Empty:  # a rank that died without a word (a crash)
            out.update({r: ("failed", f"died with exit code {p.exitcode}") for r, p in enumerate(procs)
                        if r not in out and p.exitcode not in (None, 0)})
        if any(s != "ok" for s, _ in out.values()):  # after a failure the others get GRACE s to report, not TIMEOUT
            deadline = min(deadline, time.monotonic() + GRACE)
    for r, p in enumerate(procs):
        out.setdefault(r, ("failed", f"no result after {TIMEOUT} s, or {GRACE} s after another rank failed"))
        p.join(timeout=1 if all(s == "ok" for s, _ in out.values()) else 0)
        p.kill()
    return out


def main():
    try:
        for name in IMPORT_FIRST:  # modules that register the device with torch
            __import__(name)
        found, why = WORLD if DEVICE_TYPE == "cpu" else getattr(torch, DEVICE_TYPE).device_count(), ""
    except (ImportError, AttributeError) as exc:
        found, why = 0, f" ({type(exc).__name__}: {exc})"
    if found < WORLD:
        print(f"cannot run here: needs {WORLD} {DEVICE_TYPE} device(s), found {found}{why}")
        return 2
    print(f"{CHECK}: torch {torch.__version__}, {DEVICE_TYPE}/{BACKEND}, world {WORLD}")
    out = launch()
    failed = {r: msg for r, (status, msg) in sorted(out.items()) if status == "failed"}
    if not failed and any(status == "n/a" for status, _ in out.values()):
        print("cannot run here: " + "; ".join(sorted({m for s, m in out.values() if s == "n/a"})))
        return 2
    problem = None if failed else judge([payload for _, (_, payload) in sorted(out.items())])
    if not (failed or problem):
        print(f"not reproduced: the check passes here ({EXPECTED})")
        return 0
    lines = [f"actual (rank {r}): {m}" for r, m in failed.items()] or [f"actual: {problem}"]
    print("\\n".join([f"REPRODUCED: {TITLE}", f"expected: {EXPECTED}", *lines]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''

# The schedule checks' model: blocks of Linear + ReLU (upstream's pipelining tests use the same shape).
TRANSFORMER_LIKE = '''

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.net1, self.relu = nn.Linear(D_HID, D_HID), nn.ReLU()

    def forward(self, x):
        return self.relu(self.net1(x))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(SEED)
        self.layers = nn.Sequential(*[Block() for _ in range(N_LAYERS)])

    def forward(self, x, scale=None):
        for b in self.layers:
            x = b(x) if scale is None else b(x) * scale  # scale: a per-sample keyword argument (kwargs checks)
        return x
'''

STAGES = '''

def build_stages(rank, device, x0, s0, **options):
    """This rank's stages (hand-built PipelineStages over slices of the model, or pipeline() + build_stage)."""
    from torch.distributed import pipelining as pp

    cls = getattr(pp, SCHEDULE, None)
    if cls is None:
        raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{SCHEDULE}")
    per, stages = N_LAYERS // N_STAGES, []
    spec = {f"layers.{s * per}": pp.SplitPoint.BEGINNING for s in range(1, N_STAGES)}  # [tracer]
    kw = {"scale": s0} if s0 is not None else None  # [tracer]
    pipe = pp.pipeline(Model().to(device, DTYPE), mb_args=(x0,), mb_kwargs=kw, split_spec=spec)  # [tracer]
    if pipe.num_stages != N_STAGES:  # [tracer]
        raise AssertionError(f"pipeline(): {pipe.num_stages} stages for {sorted(spec)}, expected {N_STAGES}")  # [tracer]
    for s in STAGES[rank]:
        stages.append(pipe.build_stage(s, device, None))  # [tracer]
        part = Model().to(device, DTYPE)  # [manual]
        part.layers = part.layers[s * per:(s + 1) * per]  # a slice keeps the blocks' names: layers.4, ...  # [manual]
        stages.append(pp.PipelineStage(part, s, N_STAGES, device))  # [manual]
    names = [{n: n.replace("_", ".") for n, _ in st.submod.named_parameters()} for st in stages]  # the model's names
    kw = {"scale_grads": SCALE_GRADS} if "scale_grads" in inspect.signature(cls.__init__).parameters else {}
    if set(options) - set(inspect.signature(cls.__init__).parameters):  # [options]
        raise NotApplicable(f"{SCHEDULE} takes no {', '.join(options)} in torch {torch.__version__}")  # [options]
    sched = cls(stages[0] if len(stages) == 1 else stages, n_microbatches=N_MB, loss_fn=F.mse_loss, **kw, **options)
    return stages, names, sched, bool(kw) and SCALE_GRADS  # gradients averaged over microbatches (torch >= 2.7)
'''

SCHEDULE_RUN = '''

def run_rank(rank, device):
    g = torch.Generator().manual_seed(1234 + SEED)
    x, y = (torch.randn(N_MB * MB_SIZE, D_HID, generator=g).to(device, DTYPE) for _ in range(2))
    scale = (torch.rand(N_MB * MB_SIZE, 1, generator=g) + 0.5).to(device, DTYPE) if KWARGS else None
    ref = Model().to(device, DTYPE)  # the unsplit model, run over the same microbatches
    stages, names, sched, averaged = build_stages(rank, device, x[:MB_SIZE], scale[:MB_SIZE] if KWARGS else None)
    first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
    counts = {"losses": 0, "outputs": 0, "grads": 0, "no_grads": 0, "stages": STAGES[rank]}
    for it in range(ITERATIONS):
        for m in [ref, *(st.submod for st in stages)]:
            m.zero_grad(set_to_none=True)
        exp_outs, exp_losses = [], []
        with torch.set_grad_enabled(TRAIN):
            for xm, ym, sm in zip(x.chunk(N_MB), y.chunk(N_MB), scale.chunk(N_MB) if KWARGS else [None] * N_MB):
                exp_outs.append(ref(xm, sm))
                exp_losses.append(F.mse_loss(exp_outs[-1], ym))
                if TRAIN:
                    exp_losses[-1].backward()
        for prm in ref.parameters() if averaged and TRAIN else ():
            prm.grad.div_(N_MB)
        losses, kw, where = [], {"scale": scale} if KWARGS else {}, f"rank {rank}, iteration {it}"
        if not TRAIN and not hasattr(sched, "eval"):
            raise NotApplicable(f"torch {torch.__version__} has no schedule eval() (needs torch >= 2.9)")
        out = (sched.step if TRAIN else sched.eval)(*([x] if first else []), target=y if last else None,
                                                    losses=losses, **kw)
        if last:
            if len(losses) != N_MB:
                raise AssertionError(f"{len(losses)} microbatch losses, expected {N_MB} ({where})")
            for i, (got, exp) in enumerate(zip(losses, exp_losses)):
                close(got, exp, f"loss of microbatch {i} ({where})")
            if out is None:
                raise AssertionError(f"the last stage returned no outputs ({where})")
            close(out, torch.cat(exp_outs), f"merged outputs ({where})")
            counts.update(losses=counts["losses"] + N_MB, outputs=counts["outputs"] + 1)
        for st, mapping in zip(stages, names):
            for pname, prm in st.submod.named_parameters():
                what = f"{mapping[pname]} on stage {st.stage_index} ({where})"
                if not TRAIN:
                    if prm.grad is not None and prm.grad.abs().sum().item() != 0:
                        raise AssertionError(f"eval() wrote a gradient of {what}")
                elif prm.grad is None:
                    raise AssertionError(f"no gradient of {what}")
                else:
                    close(prm.grad, ref.get_parameter(mapping[pname]).grad, f"gradient of {what}", grad=True)
                counts["grads" if TRAIN else "no_grads"] += 1
        if TRAIN and it + 1 < ITERATIONS:  # the same SGD update on both sides before the next iteration
            with torch.no_grad():
                for prm in [*ref.parameters(), *(p for st in stages for p in st.submod.parameters())]:
                    prm.sub_(LR * prm.grad)
    return counts


def judge(data):
    """Together the ranks compared every loss, the outputs and every gradient, and held every stage once."""
    n = 2 * N_LAYERS * ITERATIONS
    want = {"losses": N_MB * ITERATIONS, "outputs": ITERATIONS, "grads": n * TRAIN, "no_grads": n * (not TRAIN)}
    got = {k: sum(d[k] for d in data) for k in want}
    held = sorted(s for d in data for s in d["stages"])
    return (f"the ranks compared {got}, expected {want}" if got != want else None if held == list(range(N_STAGES))
            else f"stages held {held}, expected 0..{N_STAGES - 1}")
'''

CONSTRUCTOR_ERROR = '''

def run_rank(rank, device):
    from torch.distributed import pipelining as pp

    cls = getattr(pp, SCHEDULE, None)
    if cls is None:
        raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{SCHEDULE}")
    stages = [pp.PipelineStage(nn.Linear(4, 4).to(device), s, N_STAGES, device) for s in STAGES[rank]]
    try:
        cls(stages[0] if len(stages) == 1 else stages, n_microbatches=N_MB, loss_fn=F.mse_loss)
    except (ValueError, RuntimeError, AssertionError, TypeError) as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"[:200]}
    raise AssertionError(f"{SCHEDULE}({CASE}: {len(stages)} local stage(s) of {N_STAGES}, n_microbatches={N_MB}) "
                         "was accepted")


def judge(data):
    return None
'''

BEHAVIOUR_RUN = '''

def trace(stages, log):
    """Record (stage, kind, microbatch, start_ns, end_ns) of each compute action, wrapping this rank's stages where every
    schedule computes: forward_one_chunk (F), backward_one_chunk (B; I if full_backward=False), backward_weight_one_chunk (W)."""
    def wrap(st, name, orig):
        def run(*a, **k):
            kind = {"forward_one_chunk": "F", "backward_weight_one_chunk": "W"}.get(name)
            kind = kind or ("B" if (a[2] if len(a) > 2 else k.get("full_backward", True)) else "I")
            if not log.on or (kind != "F" and not getattr(st, "has_backward", True)):
                return orig(*a, **k)  # eval(): the schedule still calls backward, which returns at once
            grads = lambda: [None if p.grad is None else (id(p.grad), p.grad._version) for p in st.submod.parameters()]  # [split]
            before, t0 = grads() if kind in "IW" else None, time.monotonic_ns()  # [split]
            t0 = time.monotonic_ns()  # [nosplit]
            try:
                return orig(*a, **k)
            finally:
                getattr(torch, DEVICE_TYPE).synchronize() if DEVICE_TYPE != "cpu" else None
                log.append((st.stage_index, kind, int(a[0] if a else next(iter(k.values()))), t0, time.monotonic_ns()))
                log.split.append((log[-1][:3], before, grads())) if before is not None else None  # [split]
        setattr(st, name, run)

    for st in stages:
        for name in ("forward_one_chunk", "backward_one_chunk", "backward_weight_one_chunk"):
            if callable(getattr(st, name, None)):
                wrap(st, name, getattr(st, name))


class Log(list):  # the trace; `on` while a step is traced; `split`: weight gradients before and after I and W
    on, split = False, []


def run_rank(rank, device):
    g = torch.Generator().manual_seed(1234 + SEED)
    x, y = (torch.randn(N_MB * MB_SIZE, D_HID, generator=g).to(device, DTYPE) for _ in range(2))
    stages, _, sched, _ = build_stages(rank, device, x[:MB_SIZE], None)
    first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
    trace(stages, log := Log())
    out = {"rank": rank, "stages": STAGES[rank]}

    def step(mode="train"):
        for st in stages:
            st.submod.zero_grad(set_to_none=True)
        args, kw = [x] if first else [], {"target": y if last else None, "losses": []}
        if mode != "train" and (not hasattr(sched, "eval") or "return_outputs" not in inspect.signature(sched.step).parameters):  # [growth]
            raise NotApplicable(f"torch {torch.__version__} lacks eval() (2.9) or step(return_outputs=) (2.10)")  # [growth]
        if mode == "return_outputs_false":  # [growth]
            kw["return_outputs"] = False  # [growth]
        return sched.eval(*args, **kw) if mode == "eval" else sched.step(*args, **kw)

    if MODE != "eval":  # the first step also initialises the stages: the second one is traced
        step()
        log.on = True
        step()
        out.update(trace=list(log), split=Log.split)
        out["plan"] = PLAN(sched, rank)  # [plan]
    live, log.on = [], False  # [growth]
    import gc  # [growth]
    gc.freeze()  # [growth]
    for _ in range(4):  # live tensors (made after the freeze) after each of 4 steps  # [growth]
        step(MODE)  # [growth]
        gc.collect()  # [growth]
        live.append(sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor)))  # [growth]
    out["live"] = live  # [growth]
    return out
'''

PLAN_FN = '''

def PLAN(sched, rank):
    """This rank's compute actions as the schedule declares them (pipeline_order)."""
    order = getattr(sched, "pipeline_order", None)
    if order is None and callable(getattr(sched, "_get_pipeline_order", None)):
        order = sched._get_pipeline_order()
    if order is None or order.get(rank) is None:
        raise NotApplicable(f"{SCHEDULE} declares no pipeline_order for rank {rank} in torch {torch.__version__}")
    subs = [sub for a in order[rank] if a is not None for sub in (getattr(a, "sub_actions", None) or (a,))]
    kinds = [getattr(sub.computation_type, "value", str(sub.computation_type)) for sub in subs]
    return [(int(sub.stage_index), k, int(sub.microbatch_index)) for sub, k in zip(subs, kinds)
            if k in ("F", "I", "W", "B") and sub.microbatch_index is not None]
'''


RULES = {
    "declared_plan": '''

def judge(data):
    """Each rank executed exactly its declared compute actions, in order."""
    for d in data:
        ran = [tuple(a[:3]) for a in d["trace"]]
        for i, (got, want) in enumerate(zip(ran, d["plan"])):
            if got != want:
                return (f"rank {d['rank']}: compute action #{i} ran as {got[0]}{got[1]}{got[2]}, the plan "
                        f"(pipeline_order) declares {want[0]}{want[1]}{want[2]}; ran {ran}, planned {d['plan']}")
        if len(ran) != len(d["plan"]):
            return f"rank {d['rank']}: {len(ran)} compute actions ran, {len(d['plan'])} planned"
    return None
''',
    "activation_bound": '''

def judge(data):
    """Microbatches in flight (F done, B or W not yet) per stage and per rank within the documented bound."""
    for d in data:
        per_stage = {}
        for s, k, mb, _, _ in d["trace"]:
            per_stage[s] = per_stage.get(s, 0) + (1 if k == "F" else -1 if k in "BW" else 0)
            if per_stage[s] > STAGE_LIMIT[s]:
                return (f"rank {d['rank']}: action {s}{k}{mb} puts {per_stage[s]} microbatches in flight on stage "
                        f"{s}, at most {STAGE_LIMIT[s]} = {STAGE_TEXT} ({SOURCE})")
            if sum(per_stage.values()) > RANK_LIMIT[d["rank"]]:
                return (f"rank {d['rank']}: action {s}{k}{mb} puts {sum(per_stage.values())} microbatches in "
                        f"flight on the rank, at most {RANK_LIMIT[d['rank']]} = {RANK_TEXT} ({SOURCE})")
    return None
''',
    "dependencies": '''

def judge(data):
    """F(s) after F(s-1); B/I after F on the stage and after B/I on s+1; W after I; each exactly once."""
    acts = {}
    for d in data:
        for i, (s, k, mb, t0, t1) in enumerate(d["trace"]):
            if (s, k, mb) in acts:
                return f"action {s}{k}{mb} ran twice"
            acts[(s, k, mb)] = (d["rank"], i, t0, t1)
    for s in range(N_STAGES):
        for mb in range(N_MB):
            kinds = {k for k in "FIWB" if (s, k, mb) in acts}
            if kinds not in ({"F", "B"}, {"F", "I", "W"}):
                return f"stage {s}, microbatch {mb} ran {sorted(kinds)}: expected F and B, or F, I and W"
    for (s, k, mb), (r, i, t0, _) in acts.items():
        needs = [(s - 1, "F", mb)] if k == "F" and s > 0 else []
        if k in "BI":
            needs.append((s, "F", mb))
            if s + 1 < N_STAGES:
                needs.append((s + 1, "B", mb) if (s + 1, "B", mb) in acts else (s + 1, "I", mb))
        needs += [(s, "I", mb)] if k == "W" else []
        for dep in needs:
            dr, di, _, d1 = acts[dep]
            if (di > i) if dr == r else (d1 > t0):
                return f"rank {r}: {s}{k}{mb} started before {dep[0]}{dep[1]}{dep[2]} (rank {dr}) finished"
    return None
''',
    "zero_bubble_split": '''

def judge(data):
    """An I step leaves every weight gradient untouched; its W step writes all of them; I steps run at all."""
    for d in data:
        for (s, k, mb), before, after in d["split"]:
            changed = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
            if k == "I" and changed:
                return f"rank {d['rank']}: the I step {s}I{mb} wrote weight gradients (parameters {changed})"
            if k == "W" and len(changed) < len(before):
                return f"rank {d['rank']}: the W step {s}W{mb} left weight gradients unwritten"
    return None if any(a[0][1] == "I" for d in data for a in d["split"]) else "no rank ran an I step"
''',
    "no_growth": '''

def judge(data):
    """The live state after every step from the 2nd on equals the state after step 2."""
    for d in data:
        if any(v != d["live"][1] for v in d["live"][2:]):
            return f"rank {d['rank']}: live tensors after steps 1-4 of {MODE}: {d['live']} (grows)"
    return None
''',
}

# The composition checks' model: residual MLP blocks keyed by their global index, so stage parameters keep the
# unsplit model's names.
COMPOSITION_MODEL = '''

class Block(nn.Module):  # w_in (d -> 2d), ReLU, w_out (2d -> d), residual
    def __init__(self, index):
        super().__init__()
        self.w_in, self.w_out, self.index = nn.Linear(D_MODEL, 2 * D_MODEL), nn.Linear(2 * D_MODEL, D_MODEL), index

    def inner(self, x):  # [checkpoint]
        return x + self.w_out(F.dropout(F.relu(self.w_in(x)), DROPOUT, training=True))  # [checkpoint]
  # [checkpoint]
    def forward(self, x, mb_id=None):
        torch.manual_seed(10_000 * (self.index + 1) + int(mb_id.reshape(-1)[0].item()))  # masks by microbatch  # [checkpoint]
        return torch.utils.checkpoint.checkpoint(self.inner, x, use_reentrant=False)  # [checkpoint]
        return x + self.w_out(F.relu(self.w_in(x)))  # [nocheckpoint]


class Stack(nn.Module):
    def __init__(self, keep=range(N_LAYERS)):
        super().__init__()
        torch.manual_seed(SEED)
        blocks = {str(i): Block(i) for i in range(N_LAYERS)}
        self.layers = nn.ModuleDict({k: b for k, b in blocks.items() if int(k) in keep})

    def forward(self, x, mb_id=None):
        for b in self.layers.values():
            x = b(x, mb_id)
        return x


def loss_fn(output, target):  # the target stays fp32 under mixed precision  # [mixed]
    return F.mse_loss(output, target.to(output.dtype))  # [mixed]
loss_fn = F.mse_loss  # [nomixed]


def named(mod):  # (name in the unsplit model, parameter): DDP's `module.` and compile's `_orig_mod.` dropped
    return [(n.replace("_orig_mod.", ""), p) for n, p in getattr(mod, "module", mod).named_parameters()]
'''

WRAP = '''

def wrap(module, sub, device):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # [fsdp]
    from torch.nn.parallel import DistributedDataParallel  # [ddp]
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module  # [tp]

    for name, block in list(module.layers.items()):  # [compile,tp]
        module.layers[name] = torch.compile(block)  # [compile]
        parallelize_module(block, sub, {"w_in": ColwiseParallel(), "w_out": RowwiseParallel()})  # [tp]
    return module  # [tp]
    return DistributedDataParallel(module, process_group=sub.get_group(),  # [ddp]
                                   device_ids=None if DEVICE_TYPE == "cpu" else [device])  # [ddp]
    kw = {"mesh": sub, "reshard_after_forward": RESHARD}  # [fsdp]
    kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)  # [mixed]
    for block in module.layers.values():  # [fsdp]
        fully_shard(block, **kw)  # [fsdp]
    return fully_shard(module, **kw)  # [fsdp]
'''

COMPOSITION_RUN = '''

def run_rank(rank, device):
    import copy  # [mixed]
    from torch.distributed import pipelining as pp
    from torch.distributed.device_mesh import init_device_mesh

    cls = getattr(pp, SCHEDULE, None)
    if cls is None:
        raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{SCHEDULE}")
    mesh = init_device_mesh(DEVICE_TYPE, (PP, WORLD // PP), mesh_dim_names=("pp", OTHER))
    pp_rank, sub = mesh["pp"].get_local_rank(), mesh[OTHER]
    d, n_total = (sub.get_local_rank(), N_MB * sub.size()) if OTHER == "dp" else (0, N_MB)
    g = torch.Generator().manual_seed(1234)
    x, y = (torch.randn(n_total * MB_SIZE, D_MODEL, generator=g).to(device) for _ in range(2))
    ids = torch.arange(n_total, dtype=torch.float32).repeat_interleave(MB_SIZE).reshape(-1, 1).to(device)
    ref = compute = Stack().to(device)  # the unsplit model on the whole global batch, same optimizer
    compute = copy.deepcopy(ref).to(torch.bfloat16)  # its forward runs in bf16 under mixed precision  # [mixed]
    ref_params, ref_opt = dict(ref.named_parameters()), torch.optim.SGD(ref.parameters(), lr=LR)
    sids, per = STAGES[pp_rank], N_LAYERS // N_STAGES
    modules = [wrap(Stack(range(s * per, (s + 1) * per)).to(device), sub, device) for s in sids]
    stages = [pp.PipelineStage(m, s, N_STAGES, device, group=mesh["pp"].get_group()) for m, s in zip(modules, sids)]
    sched = cls(stages[0] if len(stages) == 1 else stages, n_microbatches=N_MB, loss_fn=loss_fn)
    opt = torch.optim.SGD([p for m in modules for p in m.parameters()], lr=LR)
    first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
    rows, where = slice(d * N_MB * MB_SIZE, (d + 1) * N_MB * MB_SIZE), f"rank {rank}, stages {sids}"
    counts = {"losses": 0, "grads": 0, "params": 0, "names": set(), "last": last, "stages": sids}
    for step in range(STEPS):
        ref.zero_grad(set_to_none=True)
        ref_losses, src = [], dict(compute.named_parameters())
        for xm, ym, im in zip(x.chunk(n_total), y.chunk(n_total), ids.chunk(n_total)):
            compute.zero_grad(set_to_none=True)  # [mixed]
            ref_losses.append(loss_fn(compute(xm.to(next(compute.parameters()).dtype), im), ym))
            ref_losses[-1].backward()
            for n, p in ref_params.items():  # FSDP accumulates bf16 microbatch gradients in fp32  # [mixed]
                p.grad = src[n].grad.float() if p.grad is None else p.grad + src[n].grad.float()  # [mixed]
        with torch.no_grad():
            for p in ref_params.values():
                p.grad.div_(n_total)
        opt.zero_grad(set_to_none=True)
        losses = []  # the pipelined step on this rank's replica
        sched.step(*([x[rows]] if first else []), target=y[rows] if last else None, losses=losses,
                   **({"mb_id": ids[rows]} if DROPOUT else {}))
        if last and len(losses) != N_MB:
            raise AssertionError(f"step {step}: {len(losses)} microbatch losses, expected {N_MB} [{where}]")
        for i, loss in enumerate(losses if last else []):
            close(loss, ref_losses[d * N_MB + i], f"loss of microbatch {d * N_MB + i} (step {step}) [{where}]")
            counts["losses"] += 1
        for n, p in [np for m in modules for np in named(m)]:
            if p.grad is None:
                raise AssertionError(f"{n} has no gradient after step {step} [{where}]")
            close(getattr(p.grad, "full_tensor", lambda: p.grad)(), ref_params[n].grad, f"gradient of {n} (step "
                  f"{step}) [{where}]", grad=True)
            counts["grads"] += 1
            counts["names"].add(n)
        ref_opt.step()
        with torch.no_grad():  # [mixed]
            for n, p in compute.named_parameters():  # [mixed]
                p.copy_(ref_params[n])  # [mixed]
        opt.step()
        for n, p in [np for m in modules for np in named(m)]:
            close(getattr(p, "full_tensor", lambda: p)(), ref_params[n], f"{n} after SGD step {step} [{where}]", True)
            counts["params"] += 1
    return counts


def judge(data):
    """Together the ranks covered the model: each loss of their replica, each gradient and parameter per step."""
    names, replicas = {n for d in data for n in d["names"]}, WORLD // PP if OTHER == "dp" else 1
    if sum(d["last"] for d in data) != replicas or len(names) != 4 * N_LAYERS:
        return f"{sum(d['last'] for d in data)} last-stage ranks (expected {replicas}), {len(names)} parameters"
    for d in data:
        held = 4 * (N_LAYERS // N_STAGES) * len(d["stages"])  # two Linear layers per block
        want = {"grads": held * STEPS, "params": held * STEPS, "losses": N_MB * STEPS if d["last"] else 0}
        if {k: d[k] for k in want} != want:
            return f"the rank holding stages {d['stages']} compared {({k: d[k] for k in want})}, expected {want}"
    return None
'''

# The receive-order options given through torch.distributed.config: stages read the flag when they are built.
CONFIG_FLAG = '''

def build_flagged(rank, device, x0, s0):
    """build_stages with torch.distributed.config.FLAG on, restored after; the stages must have taken it."""
    import torch.distributed.config as dist_config

    if not hasattr(dist_config, FLAG):
        others = [f for f in ("pipeline_per_direction_p2p", "pipeline_per_edge_p2p") if hasattr(dist_config, f)]
        raise NotApplicable(f"torch.distributed.config has no {FLAG} in torch {torch.__version__}"
                            + (f" (it has {', '.join(others)})" if others else ""))
    old = getattr(dist_config, FLAG)
    setattr(dist_config, FLAG, True)
    try:
        built = build_stages(rank, device, x0, s0)
    except RuntimeError as exc:  # documented: split_group needs a device-bound default process group
        if UNBOUND not in str(exc):
            raise
        raise NotApplicable(f"{FLAG} splits the pipeline group (split_group), which needs a device-bound default "
                            f"process group; this {BACKEND} group has no device ({exc})") from None
    finally:
        setattr(dist_config, FLAG, old)
    if not all(getattr(st, ATTR, False) for st in built[0]):
        raise AssertionError(f"{FLAG}=True: the stages do not use their own communicators ({ATTR} is not set)")
    return built
'''

RECEIVE_ORDER = '''

def run_rank(rank, device):
    """One training step with the default receive order, then one with the option on fresh stages: bit-equal."""
    g = torch.Generator().manual_seed(1234 + SEED)
    x, y = (torch.randn(N_MB * MB_SIZE, D_HID, generator=g).to(device, DTYPE) for _ in range(2))
    runs, how = [], f"torch.distributed.config.{FLAG}=True"  # [config]
    runs, how = [], OPTIONS  # [kwarg]
    for option in (False, True):
        stages, names, sched, _ = (build_flagged if option else build_stages)(rank, device, x[:MB_SIZE], None)  # [config]
        stages, names, sched, _ = build_stages(rank, device, x[:MB_SIZE], None, **(OPTIONS if option else {}))  # [kwarg]
        first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
        losses = []
        out = sched.step(*([x] if first else []), target=y if last else None, losses=losses)
        got = {f"loss of microbatch {i}": t for i, t in enumerate(losses)} | {"merged outputs": out}
        runs.append(got | {f"gradient of {names[i][n]}": p.grad for i, st in enumerate(stages)
                           for n, p in st.submod.named_parameters()})
    for what, exp in runs[0].items():
        got = runs[1].get(what)
        if (got is None) != (exp is None):
            raise AssertionError(f"{what}: {'missing' if got is None else 'present'} with {how}, not by default")
        if exp is not None and not torch.equal(got.detach(), exp.detach()):
            diff = (got.detach().float() - exp.detach().float()).abs().max().item()
            raise AssertionError(f"{what} with {how} differs from the default receive order (max difference "
                                 f"{diff:.3g}) on rank {rank}")
    return {"compared": sum(v is not None for v in runs[0].values())}


def judge(data):
    return None if all(d["compared"] for d in data) else "a rank compared nothing"
'''

# The graphs area's plans as data: one step of the schedule as built, then fresh stages (the same weights) run by the
# plan through a CSV round trip or with custom action handlers; the same numbers, bit for bit.
PLAN_RUN = '''

def traced_step(stages, names, sched, x, y):
    """One step: its numbers by name, and this rank's compute actions (stage, F/B/I/W, microbatch) as they returned."""
    ran = []
    for st in stages:
        for attr in ("forward_one_chunk", "backward_one_chunk", "backward_weight_one_chunk"):
            if callable(orig := getattr(st, attr, None)):
                def traced(*a, _orig=orig, _attr=attr, _s=st.stage_index, **k):
                    kind = {"forward_one_chunk": "F", "backward_weight_one_chunk": "W"}.get(_attr) or ("B" if (a[2] if len(a) > 2 else k.get("full_backward", True)) else "I")
                    try:
                        return _orig(*a, **k)
                    finally:
                        ran.append((_s, kind, int(a[0] if a else next(iter(k.values())))))
                setattr(st, attr, traced)
    first, last, losses = any(s.is_first for s in stages), any(s.is_last for s in stages), []
    out = sched.step(*([x] if first else []), target=y if last else None, losses=losses)
    got = {f"loss of microbatch {i}": t for i, t in enumerate(losses)} | {"merged outputs": out}
    return got | {f"gradient of {names[i][n]}": p.grad for i, st in enumerate(stages)
                  for n, p in st.submod.named_parameters()}, ran


def run_rank(rank, device):
    import tempfile  # [csv]
    from torch.distributed.pipelining import schedules

    g = torch.Generator().manual_seed(1234 + SEED)
    x, y = (torch.randn(N_MB * MB_SIZE, D_HID, generator=g).to(device, DTYPE) for _ in range(2))
    stages, names, sched, _ = build_stages(rank, device, x[:MB_SIZE], None)
    exp, ran = traced_step(stages, names, sched, x, y)  # the schedule as built
    plan = PLAN(sched, rank)  # [csv]
    stages, names, sched, _ = build_stages(rank, device, x[:MB_SIZE], None)  # fresh stages, the same weights
    runtime = getattr(schedules, "_PipelineScheduleRuntime", None)  # [csv]
    if runtime is None or not hasattr(sched, "_dump_csv"):  # [csv]
        raise NotApplicable(f"torch {torch.__version__} has no _PipelineScheduleRuntime with _dump_csv/_load_csv")  # [csv]
    path, how = os.path.join(tempfile.mkdtemp(), "plan.csv"), f"_load_csv({SCHEDULE} plan) into a bare _PipelineScheduleRuntime"  # [csv]
    sched._dump_csv(path, **({"format": "compute_only"} if "format" in inspect.signature(sched._dump_csv).parameters else {}))  # a runtime's default: the lowered plan  # [csv]
    loaded = runtime(stages, n_microbatches=N_MB, loss_fn=F.mse_loss)  # [csv]
    loaded._load_csv(path, format="compute_only")  # [csv]
    got, actions = traced_step(stages, names, loaded, x, y)  # [csv]
    if actions != ran or not actions:  # [csv]
        i = next((i for i, (a, b) in enumerate(zip(actions, ran)) if a != b), min(len(actions), len(ran)))  # [csv]
        raise AssertionError(f"{how}: rank {rank} executed {len(actions)} compute actions, the schedule {len(ran)}; first difference at #{i}: {actions[i:i + 3]} vs {ran[i:i + 3]}")  # [csv]
    if actions != plan:  # [csv]
        raise AssertionError(f"{how}: rank {rank} executed {actions}, the dumped plan declares {plan}")  # [csv]
    if not hasattr(sched, "register_custom_function"):  # [custom]
        raise NotApplicable(f"{SCHEDULE} is not a _PipelineScheduleRuntime with register_custom_function in torch {torch.__version__}")  # [custom]
    types = [getattr(schedules, n) for n in CUSTOM_TYPES if hasattr(schedules, n)]  # [custom]
    by_index, fired, how = {st.stage_index: st for st in stages}, [], f"{SCHEDULE} with register_custom_function handlers"  # [custom]
  # [custom]
    def handler(action, ctx):  # the built-in's work: W runs the weight backward, REDUCE_GRAD scales; UNSHARD/RESHARD do nothing without FSDP  # [custom]
        fired.append(str(action))  # [custom]
        s, stage = ctx.schedule_ref, by_index[action.stage_index]  # [custom]
        if action.computation_type == getattr(schedules, "BACKWARD_WEIGHT", None):  # [custom]
            s.backward_counter[action.stage_index] += 1  # [custom]
            stage.backward_weight_one_chunk(action.microbatch_index, last_backward=s.backward_counter[action.stage_index] == s._n_microbatches)  # [custom]
        elif action.computation_type == getattr(schedules, "REDUCE_GRAD", None):  # [custom]
            stage.perform_reduce_grad(s._n_microbatches if s.scale_grads else 1)  # [custom]
  # [custom]
    for t in types:  # [custom]
        sched.register_custom_function(t, handler)  # [custom]
    plan = [str(a) for a in sched.pipeline_order_with_comms[rank] if a.computation_type in types]  # [custom]
    got, _ = traced_step(stages, names, sched, x, y)  # [custom]
    if fired != plan or not fired:  # [custom]
        twice, never = sorted({a for a in fired if fired.count(a) > 1}), [a for a in plan if a not in fired]  # [custom]
        raise AssertionError(f"{how}: on rank {rank} the handlers fired {len(fired)} times for the plan's {len(plan)} {'/'.join(CUSTOM_TYPES)} actions, in plan order expected (twice: {twice[:4]}, never: {never[:4]}; fired {fired[:8]})")  # [custom]
    for what, e in exp.items():
        if (got.get(what) is None) != (e is None):
            raise AssertionError(f"{how}: {what} {'missing' if got.get(what) is None else 'present'}, not so in the schedule's own step")
        if e is not None and not torch.equal(got[what].detach(), e.detach()):
            diff = (got[what].detach().float() - e.detach().float()).abs().max().item()
            raise AssertionError(f"{how}: {what} differs from the schedule's own step (max difference {diff:.3g}) on rank {rank}")
    return {"compared": sum(e is not None for e in exp.values()), "actions": len(ran)}


def judge(data):
    return None if all(d["compared"] for d in data) else "a rank compared nothing"
'''

# The zero-bubble schedules' refusal of torch.compile'd stage modules (the graphs area's shared-weight block).
COMPILED_RUN = '''

class Block(nn.Module):  # compiled or not, it never runs here: the schedule's constructor must refuse it
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(D, D), nn.Linear(D, D)
        self.b.weight = self.a.weight  # tied inside the stage

    def forward(self, x):
        return x + self.a(torch.tanh(self.b(torch.tanh(self.a(x)))))


class Stack(nn.Module):  # the seeded model, only the blocks in `keep`, under layers.<global index>
    def __init__(self, keep):
        super().__init__()
        torch.manual_seed(7)
        blocks = {str(i): Block() for i in range(N_STAGES)}
        self.layers = nn.ModuleDict({k: v for k, v in blocks.items() if int(k) in keep})

    def forward(self, x):
        for b in self.layers.values():
            x = b(x)
        return x


def run_rank(rank, device):
    from torch.distributed import pipelining as pp

    cls = getattr(pp, SCHEDULE, None)
    if cls is None:
        raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{SCHEDULE}")
    stages = []
    for s in STAGES[rank]:
        mod = Stack(range(s, s + 1)).to(device)
        if PLACEMENT == "top":  # torch.compile wraps lazily: nothing is compiled
            mod = torch.compile(mod)
        else:
            for k in list(mod.layers.keys()):
                mod.layers[k] = torch.compile(mod.layers[k])
        stages.append(pp.PipelineStage(mod, s, N_STAGES, device))
    try:
        cls(stages, n_microbatches=N_MB, loss_fn=F.mse_loss)
    except Exception as exc:
        if type(exc).__name__ != "RuntimeError" or REFUSAL not in str(exc):
            raise AssertionError(f"{SCHEDULE} refused compiled stages ({PLACEMENT}) with {type(exc).__name__}: "
                                 f"{str(exc)[:300]!r}, not the documented RuntimeError ('...{REFUSAL}...')") from None
        return {"raised": f"{type(exc).__name__}: {str(exc)[:200]}"}
    raise AssertionError(f"{SCHEDULE} accepted stages with a torch.compile'd module ({PLACEMENT}); the split backward "
                         "does not support them, so the documented RuntimeError was expected")


def judge(data):
    return None
'''

# The graphs area's DTensor activations: TP with sequence parallelism inside each stage of a (pp=2, tp) mesh, so what
# crosses the stage boundary is a DTensor sharded on the sequence dimension.
DTENSOR_RUN = '''

class SeqParallelStage(nn.Module):  # the first stage shards its plain input, the last gathers its output for the loss
    def __init__(self, layers, tp, first, last):
        super().__init__()
        self.layers, self.tp, self.first, self.last, self.received = nn.ModuleDict(layers), tp, first, last, set()

    def forward(self, x, mb_id=None):
        from torch.distributed.tensor import DTensor, Shard

        if not self.first:  # what crossed the boundary into this stage: type and placements
            self.received.add(f"{type(x).__name__}{list(getattr(x, 'placements', []))}")
        else:
            x = DTensor.from_local(x.chunk(self.tp.size(), dim=1)[self.tp.get_local_rank()], self.tp, [Shard(1)], run_check=False)
        for b in self.layers.values():
            x = b(x)
        return x.full_tensor() if self.last else x


def run_rank(rank, device):
    from torch.distributed import pipelining as pp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    mesh = init_device_mesh(DEVICE_TYPE, (PP, WORLD // PP), mesh_dim_names=("pp", "tp"))
    pp_rank, tp = mesh["pp"].get_local_rank(), mesh["tp"]
    first, last, per = pp_rank == 0, pp_rank == PP - 1, N_LAYERS // PP
    mod = SeqParallelStage(dict(Stack(range(pp_rank * per, (pp_rank + 1) * per)).to(device).layers.items()), tp, first, last)
    for block in mod.layers.values():
        parallelize_module(block, tp, {"w_in": ColwiseParallel(input_layouts=Shard(1)), "w_out": RowwiseParallel(output_layouts=Shard(1), use_local_output=False)})
    plain = torch.zeros(MB_SIZE, SEQ, D_MODEL, device=device)
    shard = lambda grad: DTensor.from_local(torch.zeros(MB_SIZE, SEQ // tp.size(), D_MODEL, device=device, requires_grad=grad), tp, [Shard(1)], run_check=False)
    kw = {"input_args": plain if first else shard(True), "output_args": plain if last else shard(True)}  # [static]
    kw |= ({} if first else {"input_grads": shard(False)}) | ({} if last else {"output_grads": shard(False)})  # [static]
    kw = {"get_mesh": lambda names, layout: tp if tuple(names) == ("tp",) else None}  # [runtime]
    stage = pp.PipelineStage(mod, pp_rank, PP, device, group=mesh["pp"].get_group(), **kw)
    sched, opt = pp.Schedule1F1B(stage, n_microbatches=N_MB, loss_fn=F.mse_loss), torch.optim.SGD(mod.parameters(), lr=LR)
    ref = Stack().to(device)  # the unsplit model, same optimizer
    ref_params, ref_opt = dict(ref.named_parameters()), torch.optim.SGD(ref.parameters(), lr=LR)
    g = torch.Generator().manual_seed(4321)
    x, y = (torch.randn(N_MB * MB_SIZE, SEQ, D_MODEL, generator=g).to(device) for _ in range(2))
    full, where = (lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t), f"rank {rank}, pp rank {pp_rank}"
    counts = {"losses": 0, "grads": 0, "params": 0, "last": last, "n_params": len(list(mod.parameters()))}
    for step in range(STEPS):
        ref.zero_grad(set_to_none=True)
        ref_losses = [F.mse_loss(ref(xm), ym) for xm, ym in zip(x.chunk(N_MB), y.chunk(N_MB))]
        [loss.backward() for loss in ref_losses]
        [p.grad.div_(N_MB) for p in ref.parameters()]
        opt.zero_grad(set_to_none=True)
        losses = []
        sched.step(*([x] if first else []), target=y if last else None, losses=losses)
        if last and len(losses) != N_MB:
            raise AssertionError(f"step {step}: {len(losses)} microbatch losses, expected {N_MB} [{where}]")
        for i, loss in enumerate(losses if last else []):
            close(full(loss), ref_losses[i], f"loss of microbatch {i} (step {step}) [{where}]")
            counts["losses"] += 1
        for n, p in mod.named_parameters():
            if p.grad is None:
                raise AssertionError(f"{n} has no gradient after step {step} [{where}]")
            close(full(p.grad), ref_params[n].grad, f"gradient of {n} (step {step}) [{where}]")
            counts["grads"] += 1
        ref_opt.step()
        opt.step()
        for n, p in mod.named_parameters():
            close(full(p), ref_params[n], f"{n} after optimizer step {step} [{where}]")
            counts["params"] += 1
    if not first and mod.received != {"DTensor[Shard(dim=1)]"}:
        raise AssertionError(f"the stage received {sorted(mod.received)} across the boundary, not the DTensor sharded on the sequence dimension the previous stage sent [{where}]")
    return counts


def judge(data):
    """The last-stage ranks compared every loss; every rank its half of the parameters, gradients and values per step."""
    lasts = [d for d in data if d["last"]]
    if len(lasts) != WORLD // PP or any(d["losses"] != N_MB * STEPS for d in lasts):
        return f"losses compared: {[d['losses'] for d in lasts]}"
    want = {"n_params": 2 * N_LAYERS, "grads": 2 * N_LAYERS * STEPS, "params": 2 * N_LAYERS * STEPS}
    return next((f"rank {r} compared {d}, expected {want}" for r, d in enumerate(data) if {k: d[k] for k in want} != want), None)
'''

# The graphs area's checkpoints across pipeline layouts: PP x FSDP2 trained one Adam step, saved with
# torch.distributed.checkpoint, loaded into another layout (or the unsplit model); then one more step on both.
RELAYOUT_RUN = '''

class Block(nn.Module):  # the composition checks' block: w_in (d -> 2d), ReLU, w_out (2d -> d), residual
    def __init__(self):
        super().__init__()
        self.w_in, self.w_out = nn.Linear(D_MODEL, 2 * D_MODEL), nn.Linear(2 * D_MODEL, D_MODEL)

    def forward(self, x):
        return x + self.w_out(F.relu(self.w_in(x)))


class Stack(nn.Module):  # the seeded model, only the blocks in `keep`, under layers.<global index> in every copy
    def __init__(self, keep=range(N_LAYERS)):
        super().__init__()
        torch.manual_seed(SEED)
        self.layers = nn.ModuleDict({str(i): b for i, b in enumerate([Block() for _ in range(N_LAYERS)]) if i in keep})

    def forward(self, x):
        for b in self.layers.values():
            x = b(x)
        return x


class Layout:  # a pipeline layout of the model under FSDP2, one Adam per stage module (torchtitan's model parts), or the unsplit model with one Adam
    def __init__(self, spec, device):
        from torch.distributed import pipelining as pp
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        self.modules, self.sched, self.dp, self.dp_rank, self.first, self.last = [Stack().to(device)], None, 1, 0, True, True
        if spec["schedule"] != "unsplit":
            if (cls := getattr(pp, spec["schedule"], None)) is None:
                raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{spec['schedule']}")
            mesh = init_device_mesh(DEVICE_TYPE, (spec["pp"], WORLD // spec["pp"]), mesh_dim_names=("pp", "dp"))
            pp_rank, self.dp_rank, self.dp = mesh["pp"].get_local_rank(), mesh["dp"].get_local_rank(), mesh["dp"].size()
            sids, self.modules, stages = spec["stages"][pp_rank], [], []
            n_st = len(sids) * spec["pp"]
            for s in sids:
                mod = Stack(range(s * N_LAYERS // n_st, (s + 1) * N_LAYERS // n_st)).to(device)
                for block in mod.layers.values():
                    fully_shard(block, mesh=mesh["dp"], reshard_after_forward=spec["reshard"])
                self.modules.append(fully_shard(mod, mesh=mesh["dp"], reshard_after_forward=spec["reshard"]))
                stages.append(pp.PipelineStage(self.modules[-1], s, n_st, device, group=mesh["pp"].get_group()))
            self.sched = cls(stages[0] if len(stages) == 1 else stages, n_microbatches=N_MB // self.dp, loss_fn=F.mse_loss)  # N_MB in all
            self.first, self.last = any(s.is_first for s in stages), any(s.is_last for s in stages)
        self.opts = [torch.optim.Adam(m.parameters(), lr=ADAM_LR) for m in self.modules]

    def step(self, x, y):  # one optimizer step on the global batch (this replica's rows)
        [opt.zero_grad(set_to_none=True) for opt in self.opts]
        if self.sched is None:
            [F.mse_loss(self.modules[0](xm), ym).backward() for xm, ym in zip(x.chunk(N_MB), y.chunk(N_MB))]
            [p.grad.div_(N_MB) for p in self.modules[0].parameters()]
        else:
            rows = slice(self.dp_rank * len(x) // self.dp, (self.dp_rank + 1) * len(x) // self.dp)
            self.sched.step(*([x[rows]] if self.first else []), target=y[rows] if self.last else None)
        [opt.step() for opt in self.opts]

    def state_dicts(self, load=None):  # per stage module as checkpoints key them (flattened names); with `load`, set them
        from torch.distributed.checkpoint import state_dict as sd
        o = sd.StateDictOptions(flatten_optimizer_state_dict=True)
        if load is not None:
            for m, opt, d in zip(self.modules, self.opts, load):
                sd.set_model_state_dict(m, d["model"], options=o)
                sd.set_optimizer_state_dict(m, opt, d["optim"], options=o)
        return [{"model": sd.get_model_state_dict(m, options=o), "optim": sd.get_optimizer_state_dict(m, opt, options=o)} for m, opt in zip(self.modules, self.opts)]

    def full_state(self):  # every parameter and optimizer state entry, gathered to full on the host, union of the ranks
        out, full = {}, lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t
        for m, opt in zip(self.modules, self.opts):
            for n, p in m.named_parameters():
                out[n] = full(p).detach().cpu()
                out |= {f"{n}:{k}": full(v).detach().cpu() for k, v in opt.state.get(p, {}).items() if hasattr(v, "detach")}
        dist.all_gather_object(boxes := [None] * WORLD, out)
        return {k: v for box in reversed(boxes) for k, v in box.items()}


def compare(got, exp, what, exact):
    if set(got) != set(exp):
        raise AssertionError(f"{CASE}: {what}: entries differ: missing {sorted(set(exp) - set(got))[:6]}, extra {sorted(set(got) - set(exp))[:6]}")
    for k in sorted(exp):
        if exact and not torch.equal(got[k], exp[k]):
            raise AssertionError(f"{CASE}: {what}: {k} is not bit-equal (max difference {(got[k].float() - exp[k].float()).abs().max().item():.3g})")
        close(got[k], exp[k], f"{CASE}: {what}: {k}")
    return len(exp)


def run_rank(rank, device):
    import shutil, tempfile, torch.distributed.checkpoint as dcp
    g = torch.Generator().manual_seed(1234)
    x, y = (torch.randn(N_MB * MB_SIZE, D_MODEL, generator=g).to(device) for _ in range(2))
    (src := Layout(SRC, device)).step(x, y)
    box, flat = [tempfile.mkdtemp() if rank == 0 else None], lambda sds: {f"{part}.{k}": v for d in sds for part, e in d.items() for k, v in e.items()}
    dist.broadcast_object_list(box, src=0)  # one folder every rank writes to
    try:
        dcp.save(flat(src.state_dicts()), checkpoint_id=box[0])
        dst = Layout(DST, device)
        dcp.load(flat(sds := dst.state_dicts()), checkpoint_id=box[0])
        dst.state_dicts(load=sds)
    finally:
        dist.barrier(), (shutil.rmtree(box[0], ignore_errors=True) if rank == 0 else None)
    loaded = compare(dst.full_state(), src.full_state(), "after loading", exact=True)
    src.step(x, y), dst.step(x, y)  # another data-parallel degree sums in another order: within the fp32 tolerance
    return {"loaded": loaded, "stepped": compare(dst.full_state(), src.full_state(), "after one more step on both layouts", exact=src.dp == dst.dp)}


def judge(data, want=4 * 4 * N_LAYERS):  # (w_in, w_out) x (weight, bias) per block, with Adam's step, exp_avg, exp_avg_sq
    return next((f"rank {r} compared {d}, expected {want} entries each" for r, d in enumerate(data) if d != {"loaded": want, "stepped": want}), None)
'''

SPLIT_RUN = '''

def run_rank(rank, device):
    """pipeline() of the 8-block model: stages that hold exactly their layers and compute the model's output."""
    from torch.distributed.pipelining import SplitPoint, pipeline

    model = Model().to(device)
    x = torch.randn(4, D_HID, generator=torch.Generator().manual_seed(1)).to(device)
    expected = model(x)
    for spec in SPECS:  # more than one: pipeline() called again on the same module
        pipe = pipeline(model, mb_args=(x,), split_spec={k: getattr(SplitPoint, v) for k, v in spec.items()})
    want = [sorted(f"layers.{i}.net1.{w}" for i in range(a, b) for w in ("weight", "bias")) for a, b in STAGE_LAYERS]
    if pipe.num_stages != len(want):
        raise AssertionError(f"num_stages {pipe.num_stages} for split_spec {SPECS[-1]}, expected {len(want)}")
    for i, w in enumerate(want):  # get_stage_module(i) for i < num_stages is what every stage builder relies on
        got = sorted(pipe.get_stage_module(i).state_dict())
        if got != w:
            raise AssertionError(f"stage {i} holds {got}, expected {w}")
    out = pipe(x) if CHECK_OUTPUT else expected
    close(out[0] if isinstance(out, (tuple, list)) else out, expected, "pipe(x)")
    return {}


def judge(data):
    return None
'''

# The training checks' model (conformance/suite/ranks/training.py): Linear + BatchNorm (first layer of each stage) +
# ReLU, residual, a forward counter buffer and one RNG draw per forward, and a side stream that only the head reads,
# and only on microbatches whose flag column is positive (a stage input without gradient on those microbatches).
TRAINING_MODEL = '''

class Layer(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.lin, self.aux, self.bn = nn.Linear(D, D), nn.Linear(D_AUX, D_AUX), nn.BatchNorm1d(D) if norm else nn.Identity()
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x, aux):
        self.calls += 1
        h = torch.relu(self.bn(self.lin(x).reshape(-1, D)).reshape(x.shape)) + 0 * torch.rand((), device=x.device)  # one RNG draw per forward
        return x + h, torch.cat([torch.tanh(self.aux(aux[..., :D_AUX])), aux[..., D_AUX:]], dim=-1)


class Model(nn.Module):  # layers[lo:hi] of the seeded model; the part holding the last layer has the head
    def __init__(self, lo=0, hi=N_LAYERS):
        super().__init__()
        torch.manual_seed(SEED)
        self.layers = nn.ModuleList([Layer(i % (N_LAYERS // N_STAGES) == 0) for i in range(N_LAYERS)])[lo:hi]
        self.head, self.lo = nn.Linear(D_AUX, D) if hi == N_LAYERS else None, lo  # head: built after every layer

    def forward(self, x, aux):
        for layer in self.layers:
            x, aux = layer(x, aux)
        flagged = self.head is not None and bool(aux[..., D_AUX:].amax() > 0)  # the head reads the side stream if flagged
        return (x, aux) if self.head is None else x + self.head(aux[..., :D_AUX]) if flagged else x

    def full(self, name):  # a parameter's or buffer's name in the unsplit model
        return name if not name.startswith("layers.") else f"layers.{self.lo + int(name.split('.')[1])}.{name.split('.', 2)[2]}"


def loss_fn(output, target, scale=1.0):
    return scale * F.mse_loss(output, target)


def batch(seed, device, flags="on", seq=SEQ):  # x, aux (flag column: the head reads the side stream), y
    g = torch.Generator().manual_seed(seed)
    x, aux = torch.randn(N_MB * MB_SIZE, seq, D, generator=g), torch.randn(N_MB * MB_SIZE, seq, D_AUX + 1, generator=g)
    for i in range(N_MB):
        aux[i * MB_SIZE:(i + 1) * MB_SIZE, :, D_AUX] = 1.0 if flags == "on" or (flags == "some" and i % 2 == 0) else -1.0
    return [t.to(device) for t in (x, aux, torch.randn(N_MB * MB_SIZE, seq, D, generator=g))]


def static_args(s, bt, device, per=N_LAYERS // N_STAGES):  # stage s's input_args/output_args from the first microbatch, through throwaway copies  # [static]
    with torch.no_grad():  # [static]
        ins = Model(0, s * per).to(device)(*(t.tensor_split(N_MB)[0] for t in bt[:2]))  # [static]
        outs = Model(s * per, (s + 1) * per).to(device)(*ins)  # [static]
    return {"input_args": tuple(torch.zeros_like(t).requires_grad_(s > 0) for t in ins),  # activations a stage receives need gradients back, the model's inputs do not  # [static]
            "output_args": torch.zeros_like(outs) if s == N_STAGES - 1 else tuple(torch.zeros_like(t).requires_grad_() for t in outs)}  # [static]


def build(rank, device, scale_grads=True):
    from torch.distributed import pipelining as pp  # this rank's stages (runtime shape inference) and schedule
    cls = getattr(pp, SCHEDULE, None)
    missing = [f"{api} (torch >= {v})" for api, v in NEEDS.items() if cls and api not in inspect.signature(cls.step).parameters and not hasattr(cls, api)]
    if cls is None or missing:
        raise NotApplicable(f"torch {torch.__version__} has no {SCHEDULE if cls is None else ', '.join(missing)}")
    per = N_LAYERS // N_STAGES
    stages = [pp.PipelineStage(Model(s * per, (s + 1) * per).to(device), s, N_STAGES, device) for s in STAGES[rank]]  # [runtime]
    stages = [pp.PipelineStage(Model(s * per, (s + 1) * per).to(device), s, N_STAGES, device, **static_args(s, batch(100, device), device)) for s in STAGES[rank]]  # static shapes  # [static]
    kw = {"scale_grads": scale_grads} if "scale_grads" in inspect.signature(cls.__init__).parameters else {}
    if not scale_grads and not kw:  # [summed]
        raise NotApplicable(f"torch {torch.__version__}: {SCHEDULE} takes no scale_grads (needs torch >= 2.7)")  # [summed]
    return stages, cls(stages[0] if len(stages) == 1 else stages, n_microbatches=N_MB, loss_fn=loss_fn, **kw)


def reference(ref, b, train=True, divide=True, scale=1.0):  # the unsplit model; its gradients add to what it holds  # [compare]
    before, outs, losses = {n: p.grad for n, p in ref.named_parameters()}, [], []  # [compare]
    ref.zero_grad(set_to_none=True)  # [compare]
    with torch.set_grad_enabled(train):  # [compare]
        for xm, am, ym in zip(*(t.tensor_split(N_MB) for t in b)):  # [compare]
            outs.append(ref(xm, am))  # [compare]
            losses.append(loss_fn(outs[-1], ym, scale))  # [compare]
            losses[-1].backward() if train else None  # [compare]
    for n, p in ref.named_parameters():  # [compare]
        p.grad = p.grad / N_MB if p.grad is not None and divide else p.grad  # [compare]
        p.grad = before[n] if p.grad is None else p.grad if before[n] is None else p.grad + before[n]  # [compare]
    return torch.cat(outs).detach(), [loss.detach() for loss in losses]  # [compare]
'''

TRAINING_RUN = '''

def run_rank(rank, device):
    torch.set_num_threads(1)  # as the suite's task: tiny BatchNorms on a loaded CPU
    stages, sched = build(rank, device, scale_grads=CASE != "accumulation-summed")
    first, last = any(s.is_first for s in stages), any(s.is_last for s in stages)
    ref, (a, b, c, d), seen, kept = Model().to(device), (batch(100 + i, device) for i in range(4)), {"compared": 0}, []
    gen = torch if DEVICE_TYPE == "cpu" else getattr(torch, DEVICE_TYPE)  # [rng]

    def call(bt, what, train=True, presplit=False, outputs=True, scale=1.0, **kw):  # step()/eval() and the unsplit model
        grads, losses = {(st.stage_index, n): p.grad if p.grad is None else p.grad.clone() for st in stages for n, p in st.submod.named_parameters()}, []  # [evalcheck]
        losses = []  # [notevalcheck]
        kw.update(({"arg_mbs": list(zip(*(t.tensor_split(N_MB) for t in bt[:2])))} if first else {}) | ({"target_mbs": list(bt[2].tensor_split(N_MB))} if last else {}) if presplit else {})  # [presplit]
        kw.update({} if presplit or not last else {"target": bt[2]})
        out = (sched.step if train else sched.eval)(*(tuple(bt[:2]) if first and not presplit else ()), losses=losses, **kw)
        seen.setdefault("rng", gen.get_rng_state())  # after the first step, before the unsplit model draws  # [rng]
        seen["stepped"] = what  # the pipelined call returned: what follows judges its numbers  # [seqlen]
        kept.extend(losses)  # [losses]
        exp_out, exp_losses = reference(ref, bt, train=train, divide=CASE != "accumulation-summed", scale=scale)  # [compare]
        if last:  # [compare]
            if len(losses) != N_MB:  # [compare]
                raise AssertionError(f"{len(losses)} microbatch losses, expected {N_MB} ({what})")  # [compare]
            for i, (got, exp) in enumerate(zip(losses, exp_losses)):  # [compare]
                close(got, exp, f"loss of microbatch {i} ({what})")  # [compare]
            if outputs and out is None:  # [compare]
                raise AssertionError(f"the last stage returned no outputs ({what})")  # [compare]
            close(out, exp_out, f"merged outputs ({what})") if outputs else None  # [compare]
        for st in stages:  # [compare]
            for n, p in st.submod.named_parameters():  # [compare]
                exp, label = ref.get_parameter(st.submod.full(n)).grad, f"gradient of {st.submod.full(n)} on stage {st.stage_index} ({what})"  # [compare]
                if not train and not ((old := grads[(st.stage_index, n)]) is p.grad is None or (old is not None and p.grad is not None and torch.equal(old, p.grad))):  # [evalcheck]
                    raise AssertionError(f"{label} changed during eval(), which runs no backward" + (f" (now {(old.abs().sum() / p.grad.abs().sum()).item():.3g}x smaller)" if old is not None and p.grad is not None else ""))  # [evalcheck]
                if train and (exp is None) != (p.grad is None):  # [traincheck]
                    raise AssertionError(f"{label}: the unsplit model has {'no gradient (None)' if exp is None else 'one'}, the stage has {'none' if p.grad is None else 'zeros' if p.grad.abs().sum().item() == 0 else 'a non-zero gradient'}")  # [traincheck]
                close(p.grad, exp, label, grad=True) if train and exp is not None else None  # [traincheck]
                seen["compared"] += 1  # [compare]

    call(a, "eval() as the first call", train=False)  # [evalfirst]
    start = gen.get_rng_state()  # [rng]
    call(a, "first step")  # [stepone]
    if not torch.equal(seen.pop("rng"), (gen.set_rng_state(start), [torch.rand((), device=device) for _ in range(N_MB * sum(len(st.submod.layers) for st in stages))], gen.get_rng_state())[-1]):  # [rng]
        raise AssertionError(f"the random generator after the first step is not where its {N_MB} microbatch forwards (one draw per layer) leave it: shape inference drew random numbers")  # [rng]
    fresh = Model().to(device)  # [buffers]
    [fresh(xm, am) for xm, am in zip(a[0].tensor_split(N_MB), a[1].tensor_split(N_MB))]  # the step's own forwards  # [buffers]
    for st, (n, buf) in ((st, nb) for st in stages for nb in st.submod.named_buffers()):  # [buffers]
        if not torch.allclose(buf, exp := fresh.get_buffer(st.submod.full(n)), rtol=RTOL, atol=ATOL):  # [buffers]
            raise AssertionError(f"buffer {st.submod.full(n)} on stage {st.stage_index}: {buf.tolist()}, the unsplit model's {exp.tolist()} after the same microbatches (shape inference ran a forward that moved it)")  # [buffers]
    call(b, "step B after step A without zero_grad")  # [accumulation]
    kept.clear()  # [between]
    call(c, "eval() after a step (gradients kept)", train=False)  # [between]
    call(a, "step with static input_args/output_args")  # [static]
    call(a, f"step at sequence length {SEQ}")  # [seqlen]
    [m.zero_grad(set_to_none=True) for m in [ref, *(st.submod for st in stages)]]  # zero_grad  # [between,returnoutputs,losskwargs,presplit,unused,seqlen]
    call(d, "step after eval()")  # [evalbetween]
    call(c, "eval(return_outputs=False)", train=False, outputs=False, return_outputs=False)  # [returnoutputs]
    call(c, "eval(loss_kwargs=...)", train=False, scale=LOSS_SCALE, loss_kwargs={"scale": LOSS_SCALE})  # [losskwargs]
    call(b, f"{'step' if PRESPLIT_TRAIN else 'eval'}(arg_mbs=, target_mbs=)", train=PRESPLIT_TRAIN, presplit=True)  # [presplit]
    call(batch(200, device, FLAGS), f"step with the side input read on {FLAGS} microbatches")  # [unused]
    try:  # [seqlen]
        call(batch(300, device, seq=LONGER_SEQ), what := f"step at sequence length {LONGER_SEQ} after {SEQ}")  # [seqlen]
    except Exception as exc:  # the step ran on and its numbers differ, or it raised: documented is PipeliningShapeError or a message naming the shape  # [seqlen]
        if seen.get("stepped") == what or ("Shape" not in type(exc).__name__ and "shape" not in str(exc).lower()):  # [seqlen]
            raise exc if seen.get("stepped") == what else AssertionError(f"the {what} raised {type(exc).__name__}: {exc}, not a shape error") from None  # [seqlen]
        print(f"the {what} was refused with a shape error: {type(exc).__name__}: {str(exc)[:300]}")  # [seqlen]
    for want, kw in [("ValueError", {"kwarg_mbs": [{}] * (N_MB - 1)}), ("ValueError", {"kwarg_mbs": [{}] * (N_MB + 1)}), ("TypeError", {"kwarg_mbs": tuple({} for _ in range(N_MB))})] + ([("TypeError", {"arg_mbs": list(b[0].tensor_split(N_MB))})] if first else []):  # [mismatch]
        try:  # every rank must raise before communicating  # [mismatch]
            sched.step(**kw)  # [mismatch]
        except Exception as exc:  # [mismatch]
            if type(exc).__name__ != want:  # [mismatch]
                raise AssertionError(f"step({', '.join(kw)}=...) raised {type(exc).__name__}: {exc}; documented: {want}") from None  # [mismatch]
            seen["compared"] += 1  # [mismatch]
            continue  # [mismatch]
        raise AssertionError(f"step({', '.join(kw)}=<{type(next(iter(kw.values()))).__name__} of {len(next(iter(kw.values())))} for {N_MB} microbatches>) was accepted; documented: {want}")  # [mismatch]
    if last and any(alive := [saved(loss.grad_fn, set()) for loss in kept]):  # [losses]
        raise AssertionError(f"the losses {CASE.split('-')[1]}() filled hold autograd graphs with {sum(alive)} saved tensor(s) (per microbatch {alive}): they stay alive as long as the caller keeps the losses")  # [losses]
    return seen | {"stages": STAGES[rank], "compared": seen["compared"] + len(kept)}


def saved(node, seen):  # tensors still saved for backward in the graph behind `node` (backward frees them)  # [losses]
    def one(attr):  # [losses]
        try:  # [losses]
            v = getattr(node, attr)  # [losses]
        except RuntimeError:  # freed  # [losses]
            return 0  # [losses]
        return sum(isinstance(t, torch.Tensor) for t in (v if isinstance(v, tuple) else (v,)))  # [losses]
    if node is None or id(node) in seen or seen.add(id(node)):  # [losses]
        return 0  # [losses]
    return sum(one(a) for a in dir(node) if a.startswith("_saved_")) + sum(saved(f, seen) for f, _ in node.next_functions)  # [losses]


def judge(data):  # every stage held once, something compared
    return None if sorted(s for d in data for s in d["stages"]) == list(range(N_STAGES)) and sum(d["compared"] for d in data) else f"compared {data}"
'''

# The graphs area's split-backward models (conformance/suite/ranks/graphs.py): blocks whose autograd graphs reach the
# corners of stage_backward_input/_weight; only the scenario's block is written out.
SPLIT_BACKWARD = '''

class Mix(torch.autograd.Function):  # (x * w, x + w): two outputs of one node, both depending on x and w  # [multioutput]
    @staticmethod  # [multioutput]
    def forward(ctx, x, w):  # [multioutput]
        ctx.save_for_backward(x, w)  # [multioutput]
        return x * w, x + w  # [multioutput]
  # [multioutput]
    @staticmethod  # [multioutput]
    def backward(ctx, g_mul, g_add):  # [multioutput]
        x, w = ctx.saved_tensors  # [multioutput]
        return g_mul * w + g_add, (g_mul * x + g_add).reshape(-1, w.shape[-1]).sum(0)  # [multioutput]


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(D, D), nn.Linear(D, D)  # [shared]
        self.b.weight = self.a.weight  # tied inside the stage  # [shared]
        self.proj, self.w = nn.Linear(D, D), nn.Parameter(torch.linspace(0.5, 1.5, D))  # [multioutput]
        self.lstm = nn.LSTM(D, D, batch_first=True)  # [lstm]

    def forward(self, x):
        h = torch.tanh(self.b(torch.tanh(self.a(x))))  # [shared]
        return x + self.a(h)  # `a` again: its weight reaches the output at three sites of one path  # [shared]
        a, b = Mix.apply(self.proj(x), self.w)  # [multioutput]
        return x + torch.tanh(a) * torch.sigmoid(b)  # [multioutput]
        out, (h, _) = self.lstm(x)  # [lstm]
        return x + out + h[-1].unsqueeze(1)  # output and final hidden state both used  # [lstm]


class Stack(nn.Module):  # the seeded model, only the blocks in `keep`, under layers.<global index> in every copy
    def __init__(self, keep=None):
        super().__init__()
        torch.manual_seed(7)
        blocks = {str(i): Block() for i in range(N_BLOCKS)}
        self.layers = nn.ModuleDict({k: v for k, v in blocks.items() if keep is None or int(k) in keep})

    def forward(self, x):
        for b in self.layers.values():
            x = b(x)
        return x


def run_rank(rank, device):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(99)
    x, y = (torch.randn(N_MB * MB, SEQ, D, generator=g).to(device, DTYPE) for _ in range(2))
    ref = Stack().to(device, DTYPE)
    xr, losses = x.clone().requires_grad_(True), []
    for xm, ym in zip(xr.chunk(N_MB), y.chunk(N_MB)):  # the unsplit model, gradients averaged over microbatches
        losses.append(F.mse_loss(ref(xm), ym))
        losses[-1].backward()
    for p in ref.parameters():
        p.grad /= N_MB
    try:  # [helpers]
        from torch.distributed.pipelining._backward import stage_backward_input, stage_backward_weight  # [helpers]
    except ImportError as exc:  # [helpers]
        raise NotApplicable(f"torch {torch.__version__} has no stage_backward_input/_weight ({exc})")  # [helpers]
    mods = [Stack()]  # [helpers]
    mods[0].to(device, DTYPE)  # [helpers]
    xs = x.clone().requires_grad_(True)  # [helpers]
    dinputs, groups = stage_backward_input([F.mse_loss(mods[0](xs), y)], None, [xs], mods[0].parameters())  # [helpers]
    stage_backward_weight(mods[0].parameters(), groups)  # [helpers]
    if dinputs[0] is None:  # [helpers]
        raise AssertionError("stage_backward_input returned no input gradient")  # [helpers]
    close(dinputs[0], xr.grad, "input gradient", grad=True)  # [helpers]
    from torch.distributed import pipelining as pp  # [schedule]
  # [schedule]
    cls = getattr(pp, SCHEDULE, None)  # [schedule]
    if cls is None:  # [schedule]
        raise NotApplicable(f"torch {torch.__version__} has no torch.distributed.pipelining.{SCHEDULE}")  # [schedule]
    mods = [Stack(range(s, s + 1)).to(device, DTYPE) for s in STAGES[rank]]  # [schedule]
    stages = [pp.PipelineStage(m, s, N_BLOCKS, device) for m, s in zip(mods, STAGES[rank])]  # [schedule]
    got = []  # [schedule]
    last = any(s.is_last for s in stages)  # [schedule]
    cls(stages, n_microbatches=N_MB, loss_fn=F.mse_loss).step(*([x] if any(s.is_first for s in stages) else []), target=y if last else None, losses=got)  # [schedule]
    if last and len(got) != N_MB:  # [schedule]
        raise AssertionError(f"{len(got)} microbatch losses, expected {N_MB}")  # [schedule]
    for i, (loss, exp) in enumerate(zip(got if last else [], losses)):  # [schedule]
        close(loss, exp, f"loss of microbatch {i}", grad=True)  # [schedule]
    refp, n = dict(ref.named_parameters()), 0
    for m in mods:
        for name, p in m.named_parameters():
            if p.grad is None:
                raise AssertionError(f"{name} has no gradient (the unsplit model has one) on rank {rank}")
            close(p.grad, refp[name].grad, f"gradient of {name} on rank {rank}", grad=True)
            n += 1
    return {"grads": n, "model_params": len(refp)}


def judge(data):
    n = sum(d["grads"] for d in data)
    return None if n == data[0]["model_params"] else f"the ranks compared {n} gradients of {data[0]['model_params']}"
'''
