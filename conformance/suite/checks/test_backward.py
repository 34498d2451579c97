"""Backward: the stage backward helpers give every stage module the gradients autograd gives the unsplit model.

`torch.distributed.pipelining._backward` is what every schedule calls per stage and microbatch: `stage_backward`
(input and weight gradients together), `stage_backward_input` then `stage_backward_weight` (the zero-bubble
split, weight gradients deferred). Each check drives the stages of a split model one by one, as ranks do
(detached stage inputs, output gradients handed back), and compares every parameter gradient and every input
gradient with plain autograd on an identical unsplit model.
"""

from collections.abc import Callable
from typing import Any

import pytest

from conformance.suite import models, splitting
from conformance.suite.applicable import require
from conformance.suite.assertions import assert_grads_close
from conformance.suite.torch_private import pipelining_backward, tree_flatten
from conformance.torchenv import api

DTYPES = ["fp32", "bf16"]


def _loss(outputs, seed=7):
    """A loss with a fixed random weight per output element, so every gradient entry is distinct."""
    import torch

    total = 0
    for i, o in enumerate(outputs):
        g = torch.Generator().manual_seed(seed + i)
        w = torch.randn(o.shape, generator=g).to(device=o.device, dtype=o.dtype)
        total = total + (o * w).sum()
    return total


def _inputs_requiring_grad(args, kwargs):
    """Floating inputs become leaves that require grad, so input gradients are compared too."""
    import torch

    def leaf(v):
        return v.detach().clone().requires_grad_(True) if isinstance(v, torch.Tensor) and v.is_floating_point() else v

    return tuple(leaf(a) for a in args), {k: leaf(v) for k, v in kwargs.items()}


def _input_grads(args, kwargs) -> dict:
    import torch

    named = {f"arg{i}": a for i, a in enumerate(args)} | {f"kwarg {k}": v for k, v in kwargs.items()}
    return {k: v.grad for k, v in named.items() if isinstance(v, torch.Tensor) and v.requires_grad}


def _reference(name, torch_device, dtype):
    """Gradients of plain autograd on a fresh unsplit model (same seed, same weights)."""
    model, args, kwargs = splitting.model_and_inputs(name, torch_device, dtype)
    args, kwargs = _inputs_requiring_grad(args, kwargs)
    _loss(splitting.as_tuple(model(*args, **kwargs))).backward()
    return {n: p.grad for n, p in model.named_parameters()}, _input_grads(args, kwargs)


def _split_model(name, torch_device, dtype):
    spec = models.spec(name)
    model, args, kwargs = splitting.model_and_inputs(name, torch_device, dtype)
    pipe = splitting.split(model, args, kwargs, split_spec=spec.split_spec())
    args, kwargs = _inputs_requiring_grad(args, kwargs)
    return spec, pipe, args, kwargs


def _stage_param_grads(spec, pipe) -> dict:
    """Parameter gradients of all stages by original name; a shared weight's per-stage gradients are summed."""
    canonical = {n: group[0] for group in spec.tied for n in group}
    grads: dict = {}
    for mod in splitting.stage_modules(pipe):
        for n, p in mod.named_parameters():
            n = canonical.get(n, n)
            if p.grad is None:
                grads.setdefault(n, None)
            else:
                grads[n] = p.grad.clone() if grads.get(n) is None else grads[n] + p.grad
    return grads


def _backward_order(calls):
    return sorted(calls, key=lambda c: c.index, reverse=True)


def _flat_outputs_with_grads(call, grads):
    """The stage's output tensors that some later stage sent a gradient for, with those gradients."""
    import torch

    outs, out_grads = [], []
    for t in tree_flatten(call.output)[0]:
        if isinstance(t, torch.Tensor) and id(t) in grads:
            outs.append(t)
            out_grads.append(grads[id(t)])
    return outs, out_grads


def _hand_back(call, dinputs, grads):
    """Accumulate the input gradients of a stage onto the values its producers made (what send/recv does)."""
    for (orig, _), g in zip(call.inputs, dinputs, strict=True):
        if g is not None:
            grads[id(orig)] = g if id(orig) not in grads else grads[id(orig)] + g


def _run_stage_backward(pipe, args, kwargs, loss_scale=1.0):
    """Forward all stages, then `stage_backward` from the last stage to the first."""
    stage_backward = pipelining_backward().stage_backward

    outputs, calls = splitting.run_stages(pipe, args, kwargs)
    grads: dict = {}
    last = max(c.index for c in calls)
    for call in _backward_order(calls):
        leaves = [d for _, d in call.inputs]
        if call.index == last:
            dinputs = stage_backward(_loss(outputs) * loss_scale, None, leaves)
        else:
            outs, out_grads = _flat_outputs_with_grads(call, grads)
            dinputs = stage_backward(outs, out_grads, leaves)
        _hand_back(call, dinputs, grads)
    return {f"arg{i}": a for i, a in enumerate(args)} | {f"kwarg {k}": v for k, v in kwargs.items()}, grads


def _model_input_grads(named_inputs, grads) -> dict:
    import torch

    return {k: grads.get(id(v)) for k, v in named_inputs.items() if isinstance(v, torch.Tensor) and v.requires_grad}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", models.SPLIT_MODELS)
def test_stage_backward(conformance, torch_device, name, dtype):
    """`stage_backward` per stage, last to first: parameter and input gradients equal the unsplit model's."""
    require("stage_backward")
    splitting.require_dtype(conformance.dev.name, dtype)
    ref_params, ref_inputs = _reference(name, torch_device, dtype)
    spec, pipe, args, kwargs = _split_model(name, torch_device, dtype)
    named_inputs, grads = _run_stage_backward(pipe, args, kwargs)
    dev = f"{conformance.dev.name} ({dtype})"
    assert_grads_close("stage_backward", _stage_param_grads(spec, pipe), ref_params, device=dev,
                       what=f"{name} parameter gradient")
    assert_grads_close("stage_backward", _model_input_grads(named_inputs, grads), ref_inputs, device=dev,
                       what=f"{name} input gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", models.SPLIT_MODELS)
def test_stage_backward_input_weight(conformance, torch_device, name, dtype):
    """`stage_backward_input` for every stage, then deferred `stage_backward_weight`: same gradients as autograd."""
    require("stage_backward_input", "stage_backward_weight")
    splitting.require_dtype(conformance.dev.name, dtype)
    ref_params, ref_inputs = _reference(name, torch_device, dtype)
    spec, pipe, args, kwargs = _split_model(name, torch_device, dtype)
    grads = _run_stage_backward_input_weight(pipe, args, kwargs)
    named_inputs = {f"arg{i}": a for i, a in enumerate(args)} | {f"kwarg {k}": v for k, v in kwargs.items()}
    dev = f"{conformance.dev.name} ({dtype})"
    assert_grads_close("stage_backward_weight", _stage_param_grads(spec, pipe), ref_params, device=dev,
                       what=f"{name} parameter gradient")
    assert_grads_close("stage_backward_input", _model_input_grads(named_inputs, grads), ref_inputs, device=dev,
                       what=f"{name} input gradient")


def _run_stage_backward_input_weight(pipe, args, kwargs) -> dict:
    """Forward all stages, `stage_backward_input` from the last stage to the first, then the deferred weights."""
    bw = pipelining_backward()
    stage_backward, stage_backward_input, stage_backward_weight = (
        bw.stage_backward, bw.stage_backward_input, bw.stage_backward_weight)
    outputs, calls = splitting.run_stages(pipe, args, kwargs)
    grads: dict = {}
    deferred: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    last = max(c.index for c in calls)
    for call in _backward_order(calls):
        leaves = [d for _, d in call.inputs]
        params = list(call.module.parameters())
        outs, out_grads = ([_loss(outputs)], None) if call.index == last else _flat_outputs_with_grads(call, grads)
        if call.index == 0:
            # As PipelineStage.backward_weight_one_chunk does: the first stage's inputs may not require grad
            # (token ids), so it runs one full stage_backward in the weight phase instead of the I/W split.
            deferred.append((stage_backward, (outs, out_grads, leaves)))
            continue
        dinputs, groups = stage_backward_input(outs, out_grads, leaves, iter(params))
        _hand_back(call, dinputs, grads)
        deferred.append((stage_backward_weight, (iter(params), groups)))
    # weight gradients only after every input gradient, the zero-bubble order
    for fn, fn_args in deferred:
        result = fn(*fn_args)
        if fn is stage_backward:
            _hand_back(calls[[c.index for c in calls].index(0)], result, grads)
    return grads


@pytest.mark.parametrize("n_microbatches", [2, 4])
@pytest.mark.parametrize("name", models.SPLIT_MODELS)
def test_stage_backward_microbatches(conformance, torch_device, name, n_microbatches):
    """The training path of a schedule: split the batch with `split_args_kwargs_into_chunks`, run forward and
    `stage_backward` per microbatch on the stages; accumulated gradients equal one full-batch autograd pass."""
    require("stage_backward", "split_args_kwargs_into_chunks")
    from torch.distributed.pipelining.microbatch import split_args_kwargs_into_chunks

    spec = models.spec(name)
    model, args, kwargs = splitting.model_and_inputs(name, torch_device, batch=8)
    ref, ref_args, ref_kwargs = splitting.model_and_inputs(name, torch_device, batch=8)
    # the loss weights depend on the output shape, so the reference sums per-microbatch losses the same way
    ref_chunks = split_args_kwargs_into_chunks(ref_args, ref_kwargs, n_microbatches)
    for a, k in zip(*ref_chunks, strict=True):
        _loss(splitting.as_tuple(ref(*a, **k))).backward()
    mb_args, mb_kwargs = split_args_kwargs_into_chunks(args, kwargs, n_microbatches)
    pipe = splitting.split(model, mb_args[0], mb_kwargs[0], split_spec=spec.split_spec())
    for a, k in zip(mb_args, mb_kwargs, strict=True):
        _run_stage_backward(pipe, a, k)
    assert_grads_close("stage_backward", _stage_param_grads(spec, pipe),
                       {n: p.grad for n, p in ref.named_parameters()},
                       device=conformance.dev.name,
                       what=f"{name} parameter gradient over {n_microbatches} microbatches")


def test_numerics_state_unchanged(conformance, torch_device):
    """`stage_backward` (and, where the build has them, `stage_backward_input`/`_weight`) leave torch's global
    numerics state as they found it: TF32/cuDNN/deterministic flags, default dtype, autocast, grad mode."""
    from conformance.suite import numerics_state as ns

    _, pipe, args, kwargs = _split_model("TransformerBlock", torch_device, "fp32")
    with ns.guarded([torch_device.type]) as state:
        _run_stage_backward(pipe, args, kwargs)
        state.assert_unchanged("stage_backward", "after the backward of every stage", conformance.dev.name)
        if api.available("stage_backward_input") and api.available("stage_backward_weight"):
            _run_stage_backward_input_weight(pipe, args, kwargs)
            state.assert_unchanged("stage_backward_input", "after stage_backward_input and stage_backward_weight",
                                   conformance.dev.name)
