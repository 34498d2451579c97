"""Shared steps of the split and backward checks: build a registry model on a device/dtype, split it, read stages.

Imports torch only inside functions (check modules import this at module level).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.suite import models, tolerances


def torch_dtype(short: str):
    import torch

    return getattr(torch, tolerances.DTYPES[short])


def require_dtype(device: str, short: str) -> None:
    """Skip when the device lacks the dtype (a stated hardware/build limit, never a caught error)."""
    __tracebackhide__ = True
    reason = tolerances.unsupported(device, tolerances.DTYPES[short])
    if reason:
        pytest.skip(f"not supported: {tolerances.DTYPES[short]} on {device}: {reason}")


def cast(value: Any, dtype) -> Any:
    """Floating tensors to `dtype`; integer tensors (token ids, masks as ints) and non-tensors unchanged."""
    import torch

    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def model_and_inputs(name: str, device, short: str = "fp32", batch: int = 4, **build_kw):
    """A fresh registry model and its example inputs, both on `device` in dtype `short`."""
    spec = models.spec(name)
    dtype = torch_dtype(short)
    model = spec.builder(**build_kw).to(device=device, dtype=dtype)
    args, kwargs = spec.inputs(device, batch)
    return model, tuple(cast(a, dtype) for a in args), {k: cast(v, dtype) for k, v in kwargs.items()}


def split(model, args, kwargs=None, split_spec=None, split_policy=None):
    from torch.distributed.pipelining import pipeline

    return pipeline(model, mb_args=tuple(args), mb_kwargs=kwargs or None, split_spec=split_spec,
                    split_policy=split_policy)


def as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def stage_modules(pipe) -> list:
    return [pipe.get_stage_module(i) for i in range(pipe.num_stages)]


def stage_keys(pipe) -> list[set[str]]:
    return [set(m.state_dict()) for m in stage_modules(pipe)]


def tied_names(spec: models.ModelSpec) -> set[str]:
    return {n for group in spec.tied for n in group}


class StageCall:
    """One stage's run inside `run_stages`: its index, (original, detached) inputs, and outputs."""

    def __init__(self, index: int, module, inputs: list, output) -> None:
        self.index = index
        self.module = module
        self.inputs = inputs  # [(value the previous stage produced, detached leaf this stage consumed)]
        self.output = output


def run_stages(pipe, args: tuple, kwargs: dict | None = None):
    """Run the pipe's stages in graph order the way ranks do: every stage input a detached leaf.

    Returns (outputs as a tuple, [StageCall]) so a check can drive backward stage by stage. Uses only public
    fx (an Interpreter over `pipe.split_gm`), not Pipe's internal executor.
    """
    import torch

    from conformance.suite.torch_private import tree_flatten, tree_unflatten

    names = [n.target for n in pipe.split_gm.graph.nodes if n.op == "placeholder"]
    kwargs = kwargs or {}
    values = list(args) + [kwargs[n] for n in names[len(args):]]
    modules = dict(pipe.split_gm.named_children())
    index = {id(pipe.get_stage_module(i)): i for i in range(pipe.num_stages)}
    calls: list[StageCall] = []

    class Recorder(torch.fx.Interpreter):
        def call_module(self, target, a, kw):
            flat, spec = tree_flatten((a, kw))
            pairs, new = [], []
            for v in flat:
                if isinstance(v, torch.Tensor) and (v.requires_grad or v.grad_fn is not None):
                    d = v.detach().requires_grad_(True)
                    pairs.append((v, d))
                    new.append(d)
                else:
                    new.append(v)
            a, kw = tree_unflatten(new, spec)
            out = super().call_module(target, a, kw)
            mod = modules[target]
            calls.append(StageCall(index[id(mod)], mod, pairs, out))
            return out

    out = Recorder(pipe.split_gm, garbage_collect_values=False).run(*values)
    return as_tuple(out), calls
