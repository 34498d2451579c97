"""Tracing and splitting: `pipeline`, `Pipe`, `SplitPoint`, `pipe_split` on the env's device."""

import pytest

from conformance.suite import models, splitting
from conformance.suite.applicable import require
from conformance.suite.assertions import assert_close, assert_equal, assert_raises


def test_seed_split_begin_2stages(conformance, torch_device):
    """The seed scenario: 8-layer MLP, {"layers.4": BEGINNING} gives 2 stages that together are the model."""
    import torch
    from torch.distributed.pipelining import SplitPoint, pipeline

    model = models.transformer_like(d_hid=16).to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    expected = model(x)
    pipe = pipeline(model, mb_args=(x,), split_spec={"layers.4": SplitPoint.BEGINNING})
    assert_equal("pipeline", pipe.num_stages, 2, "num_stages for {'layers.4': SplitPoint.BEGINNING}")
    stage_keys = [set(pipe.get_stage_module(i).state_dict()) for i in range(pipe.num_stages)]
    assert_equal("Pipe.get_stage_module", stage_keys[0] & stage_keys[1], set(), "parameters in both stages")
    assert_equal("Pipe.get_stage_module", stage_keys[0] | stage_keys[1], set(model.state_dict()),
                 "union of stage parameters")
    assert_equal("pipeline", sorted({k.split(".")[1] for k in stage_keys[0]}), ["0", "1", "2", "3"],
                 "layers in stage 0")
    out = pipe(x)[0]
    assert_close("Pipe.forward", out, expected, device=conformance.dev.name)


N_LAYERS = 8


def _layer_keys(layers, fmt="layers.{}.net1.{}"):
    return {fmt.format(i, w) for i in layers for w in ("weight", "bias")}


def _expected_membership(n_stages: int, fmt="layers.{}.net1.{}") -> list[set[str]]:
    step = N_LAYERS // n_stages
    return [_layer_keys(range(s * step, (s + 1) * step), fmt) for s in range(n_stages)]


def _check_stages(api_name: str, pipe, expected: list[set[str]], what: str, device: str) -> None:
    __tracebackhide__ = True
    assert_equal(api_name, pipe.num_stages, len(expected), f"num_stages for {what}", device=device)
    got = splitting.stage_keys(pipe)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_equal(api_name, sorted(g), sorted(e), f"state_dict keys of stage {i} for {what}", device=device)


@pytest.mark.parametrize(
    "point,n_stages",
    [(p, n) for p in ("BEGINNING", "END") for n in (2, 4, 8)],
    ids=[f"{p}-{n}" for p in ("BEGINNING", "END") for n in (2, 4, 8)],
)
def test_split_points(conformance, torch_device, point, n_stages):
    """`split_spec` with one SplitPoint kind cuts the 8-layer MLP into equal stages holding exactly their layers."""
    import torch
    from torch.distributed.pipelining import SplitPoint

    step = N_LAYERS // n_stages
    if point == "BEGINNING":
        spec = {f"layers.{k}": SplitPoint.BEGINNING for k in range(step, N_LAYERS, step)}
    else:
        spec = {f"layers.{k - 1}": SplitPoint.END for k in range(step, N_LAYERS, step)}
    model = models.transformer_like().to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    expected = model(x)
    pipe = splitting.split(model, (x,), split_spec=spec)
    _check_stages("pipeline", pipe, _expected_membership(n_stages), f"split_spec {sorted(spec)} ({point})",
                  conformance.dev.name)
    assert_close("Pipe.forward", pipe(x)[0], expected, device=conformance.dev.name,
                 what=f"output of {n_stages} stages split at {point}")


@pytest.mark.parametrize("k", [1, 4, 7], ids=lambda k: f"layers.{k}")
def test_split_begin_matches_end(conformance, torch_device, k):
    """SplitPoint.BEGINNING at layer k cuts where SplitPoint.END at layer k-1 does."""
    import torch
    from torch.distributed.pipelining import SplitPoint

    x = torch.randn(4, 16, device=torch_device)
    begin = splitting.split(models.transformer_like().to(torch_device), (x,),
                            split_spec={f"layers.{k}": SplitPoint.BEGINNING})
    end = splitting.split(models.transformer_like().to(torch_device), (x,),
                          split_spec={f"layers.{k - 1}": SplitPoint.END})
    expected = [_layer_keys(range(k)), _layer_keys(range(k, N_LAYERS))]
    _check_stages("SplitPoint.BEGINNING", begin, expected, f"layers.{k}: BEGINNING", conformance.dev.name)
    _check_stages("SplitPoint.END", end, expected, f"layers.{k - 1}: END", conformance.dev.name)
    assert_close("Pipe.forward", end(x)[0], begin(x)[0], device=conformance.dev.name,
                 what=f"output of END at layers.{k - 1} vs BEGINNING at layers.{k}")


@pytest.mark.parametrize("point,layer", [("BEGINNING", "layers.0"), ("END", "layers.7")],
                         ids=["BEGINNING-layers.0", "END-layers.7"])
def test_split_points_at_edges(conformance, torch_device, point, layer):
    """A split point before the first or after the last layer cuts off nothing: one stage, the whole model."""
    import torch
    from torch.distributed.pipelining import SplitPoint

    model = models.transformer_like().to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    expected = model(x)
    pipe = splitting.split(model, (x,), split_spec={layer: getattr(SplitPoint, point)})
    assert_equal("pipeline", pipe.num_stages, 1, f"num_stages for {{{layer!r}: {point}}}", device=conformance.dev.name)
    # get_stage_module(i) for i < num_stages is the contract every stage builder relies on
    keys = set(pipe.get_stage_module(0).state_dict())
    assert_equal("Pipe.get_stage_module", sorted(keys), sorted(model.state_dict()), "state_dict keys of stage 0",
                 device=conformance.dev.name)
    assert_close("Pipe.forward", pipe(x)[0], expected, device=conformance.dev.name)


def test_pipeline_twice_same_module(conformance, torch_device):
    """Splitting one module a second time follows only the second split_spec (the first call's points are gone)."""
    import torch
    from torch.distributed.pipelining import SplitPoint

    model = models.transformer_like().to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    splitting.split(model, (x,), split_spec={"layers.4": SplitPoint.BEGINNING})
    again = splitting.split(model, (x,), split_spec={"layers.2": SplitPoint.BEGINNING})
    _check_stages("pipeline", again, [_layer_keys(range(2)), _layer_keys(range(2, N_LAYERS))],
                  "a second pipeline() of the same module with {'layers.2': BEGINNING} after {'layers.4': BEGINNING}",
                  conformance.dev.name)


@pytest.mark.parametrize("n_stages", [2, 4, 8], ids=str)
def test_pipe_split_markers(conformance, torch_device, n_stages):
    """`pipe_split()` calls in `forward` (no split_spec) cut the model after the marked layers."""
    import torch

    require("pipe_split")
    step = N_LAYERS // n_stages
    after = tuple(k - 1 for k in range(step, N_LAYERS, step))
    model = models.pipe_split_mlp(split_after=after).to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    expected = model(x)  # eager: pipe_split() is a no-op
    pipe = splitting.split(model, (x,))
    _check_stages("pipe_split", pipe, _expected_membership(n_stages, "layers.{}.{}"),
                  f"pipe_split() after layers {list(after)}", conformance.dev.name)
    assert_close("Pipe.forward", pipe(x)[0], expected, device=conformance.dev.name,
                 what=f"output of {n_stages} stages cut by pipe_split()")


@pytest.mark.parametrize("name", models.SPLIT_MODELS)
def test_split_state_dict(conformance, torch_device, name):
    """No parameter or buffer lost or duplicated; stage keys are the original names, in the right stage, same values."""
    import torch

    spec = models.spec(name)
    model, args, kwargs = splitting.model_and_inputs(name, torch_device)
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pipe = splitting.split(model, args, kwargs, split_spec=spec.split_spec())
    assert_equal("pipeline", pipe.num_stages, len(spec.stage_prefixes), f"num_stages of {name}",
                 device=conformance.dev.name)
    tied = splitting.tied_names(spec)
    keys = splitting.stage_keys(pipe)
    seen: dict[str, list[int]] = {}
    for i, stage_keys in enumerate(keys):
        unknown = sorted(stage_keys - set(original))
        assert_equal("Pipe.get_stage_module", unknown, [], f"{name} stage {i} keys not in the original state_dict",
                     device=conformance.dev.name)
        for key in stage_keys:
            seen.setdefault(key, []).append(i)
    lost = sorted(set(original) - set(seen))
    assert_equal("pipeline", lost, [], f"{name} parameters/buffers in no stage", device=conformance.dev.name)
    dup = {k: v for k, v in seen.items() if len(v) > 1 and k not in tied}
    assert_equal("pipeline", dup, {}, f"{name} parameters/buffers in several stages", device=conformance.dev.name)
    for key, stages in sorted(seen.items()):
        if key in tied:
            continue
        prefixes = spec.stage_prefixes[stages[0]]
        assert_equal("pipeline", key.startswith(prefixes), True,
                     f"{name}: {key!r} in stage {stages[0]} (that stage holds {list(prefixes)})",
                     device=conformance.dev.name)
    for i, mod in enumerate(splitting.stage_modules(pipe)):
        for key, value in mod.state_dict().items():
            if value.device.type != torch_device.type or not torch.equal(value, original[key]):
                raise AssertionError(f"pipeline: {name} stage {i} {key!r} on {conformance.dev.name}: expected the "
                                     f"original value on {torch_device}, got a different value on {value.device}")


def test_split_buffers_follow_stage(conformance, torch_device):
    """Each stage owns the buffers of its layers (the causal masks of TransformerBlock), on the device."""
    spec = models.spec("TransformerBlock")
    model, args, kwargs = splitting.model_and_inputs("TransformerBlock", torch_device)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    pipe = splitting.split(model, args, kwargs, split_spec=spec.split_spec())
    for i, mod in enumerate(splitting.stage_modules(pipe)):
        got = dict(mod.named_buffers())
        want = sorted(k for k in buffers if k.startswith(spec.stage_prefixes[i]))
        assert_equal("pipeline", sorted(got), want, f"buffers of stage {i}", device=conformance.dev.name)
        for k in want:
            assert_close("pipeline", got[k], buffers[k], device=conformance.dev.name, what=f"buffer {k!r} of stage {i}")


def test_split_tied_parameters(conformance, torch_device):
    """A weight shared by the first and last stage (tied embedding/LM head) is replicated, recorded, equal."""
    spec = models.spec("EmbeddingLM")
    model, args, kwargs = splitting.model_and_inputs("EmbeddingLM", torch_device)
    weight = model.embed.weight.detach().clone()
    pipe = splitting.split(model, args, kwargs, split_spec=spec.split_spec())
    first, last = splitting.stage_modules(pipe)[0], splitting.stage_modules(pipe)[-1]
    assert_close("pipeline", first.get_parameter("embed.weight"), weight, device=conformance.dev.name,
                 what="embed.weight in stage 0")
    assert_close("pipeline", last.get_parameter("lm_head.weight"), weight, device=conformance.dev.name,
                 what="lm_head.weight (tied to embed.weight) in the last stage")
    # Each stage accumulates its own gradient of a shared weight; the optimizer step needs to know which
    # stage parameters are one, and Pipe.replicated_params is where it says so.
    mapping = [sorted(m.items()) for m in pipe.replicated_params]
    want = [[(splitting_name(pipe, 0), "embed.weight"), (splitting_name(pipe, pipe.num_stages - 1), "lm_head.weight")]]
    assert_equal("Pipe.replicated_params", mapping, want, "shared parameter records", device=conformance.dev.name)


def splitting_name(pipe, stage: int) -> str:
    """The child name of a stage module in `split_gm` (renamed across releases: submod_i, submod_pp_i)."""
    target = pipe.get_stage_module(stage)
    return next(n for n, m in pipe.split_gm.named_children() if m is target)


@pytest.mark.parametrize("dtype", list(splitting.tolerances.DTYPES))
@pytest.mark.parametrize("name", models.SPLIT_MODELS)
def test_pipe_numerics(conformance, torch_device, name, dtype):
    """`Pipe(...)` equals the unsplit model on the device, keeping the output dtype and device."""
    import torch

    splitting.require_dtype(conformance.dev.name, dtype)
    spec = models.spec(name)
    model, args, kwargs = splitting.model_and_inputs(name, torch_device, dtype)
    with torch.no_grad():
        expected = splitting.as_tuple(model(*args, **kwargs))
    pipe = splitting.split(model, args, kwargs, split_spec=spec.split_spec())
    with torch.no_grad():
        got = splitting.as_tuple(pipe(*args, **kwargs))
    assert_equal("Pipe.forward", len(got), len(expected), f"number of outputs of {name} ({dtype})",
                 device=conformance.dev.name)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_close("Pipe.forward", g, e, device=conformance.dev.name, what=f"{name} output {i}")


def _bad_model():
    import torch.nn as nn

    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: no full graph
                return self.lin(x)
            return x

    return DataDependent()


INVALID = ["missing_submodule", "missing_layer", "unknown_split_point", "spec_and_policy",
           "stage_index_out_of_range", "split_gm_called", "untraceable_model"]


@pytest.mark.parametrize("case", INVALID)
def test_split_invalid(conformance, torch_device, case):
    """Invalid use gets the error `_IR.py` raises for it, not a wrong pipe."""
    import torch
    from torch.distributed.pipelining import SplitPoint

    model = models.transformer_like().to(torch_device)
    x = torch.randn(4, 16, device=torch_device)

    def split(**kw):
        return splitting.split(model, (x,), **kw)

    if case == "missing_submodule":
        assert_raises("pipeline", AttributeError, r"nonexistent module nope", split,
                      split_spec={"nope.layer": SplitPoint.BEGINNING}, what="split_spec naming a missing submodule")
    elif case == "missing_layer":
        assert_raises("pipeline", AttributeError, r"99", split, split_spec={"layers.99": SplitPoint.BEGINNING},
                      what="split_spec naming a missing layer")
    elif case == "unknown_split_point":
        assert_raises("pipeline", ValueError, r"[Uu]nknown split point", split, split_spec={"layers.4": "middle"},
                      what="split_spec with a value that is not a SplitPoint")
    elif case == "spec_and_policy":
        assert_raises("pipeline", ValueError, r"both `?split_spec`? and `?split_policy", split,
                      split_spec={"layers.4": SplitPoint.BEGINNING}, split_policy=lambda gm: gm,
                      what="split_spec and split_policy together")
    elif case == "stage_index_out_of_range":
        pipe = split(split_spec={"layers.4": SplitPoint.BEGINNING})
        assert_raises("Pipe.get_stage_module", ValueError, r"[Ii]nvalid stage index", pipe.get_stage_module, 2,
                      what="stage index 2 of a 2-stage pipe")
        assert_raises("Pipe.get_stage_module", ValueError, r"[Ii]nvalid stage index", pipe.get_stage_module, -1,
                      what="stage index -1")
    elif case == "split_gm_called":
        pipe = split(split_spec={"layers.4": SplitPoint.BEGINNING})
        assert_raises("Pipe.split_gm", RuntimeError, r"invoke the Pipe object directly", pipe.split_gm, x,
                      what="calling split_gm instead of the Pipe")
    elif case == "untraceable_model":
        assert_raises("pipeline", RuntimeError, r"cannot capture your model as a full graph", splitting.split,
                      _bad_model().to(torch_device), (x,), what="model with data-dependent control flow")


def test_numerics_state_unchanged(conformance, torch_device):
    """`pipeline()` and `Pipe.forward` leave torch's global numerics state as they found it (TF32/cuDNN and
    deterministic flags, default dtype, autocast, grad mode), and run each stage under the caller's state."""
    from conformance.suite import numerics_state as ns

    name = "TransformerBlock"
    model, args, kwargs = splitting.model_and_inputs(name, torch_device)
    with ns.guarded([torch_device.type]) as state:
        pipe = splitting.split(model, args, kwargs, split_spec=models.spec(name).split_spec())
        state.assert_unchanged("pipeline", f"while splitting {name}", conformance.dev.name)
        inside: list[dict[str, str]] = []
        hooks = [m.register_forward_pre_hook(lambda *_: inside.append(state.now()))
                 for m in splitting.stage_modules(pipe)]
        try:
            pipe(*args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        assert_equal("Pipe.forward", len(inside), pipe.num_stages, "stage forwards run (their pre-hooks called)",
                     device=conformance.dev.name)
        for i, seen in enumerate(inside):
            state.assert_unchanged("Pipe.forward", f"inside the forward of stage {i}", conformance.dev.name, after=seen)
        state.assert_unchanged("Pipe.forward", "after the forward", conformance.dev.name)
