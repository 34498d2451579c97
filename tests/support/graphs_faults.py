"""Test-only faults for the graphs area: a rank plugin that breaks the split backward, DTensor stage boundaries,
checkpoint loading, receive ordering, plan import/export, custom action handlers, the compiled-stage refusal or FSDP2
with many local stages, so the graphs checks must fail.

Named in CONFORMANCE_RANK_PLUGINS (tests/support on PYTHONPATH); CONFORMANCE_TEST_GRAPHS_FAULT picks the fault:
- `weight_first_output_only`: stage_backward_weight keeps only output 0's gradient of multi-output intermediates
  (the bug pytorch PR 170416 fixed);
- `weight_double_count`: stage_backward_weight without its clamp of descendant intermediates, so a weight used at
  several sites of one path is counted again (pytorch#180952's corner);
- `dtensor_recv_scaled`: DTensor activations received between stages are rebuilt from a corrupted local shard;
- `optimizer_state_not_loaded`: the optimizer state a checkpoint loads never reaches the optimizer;
- `defer_recv_rescales`: `defer_pp_recv=True` also turns gradient scaling off;
- `p2p_comms_recv_scaled`: with per-direction or per-edge P2P communicators on, the activations a stage receives
  come out of their own communicator's buffers scaled (the default shared communicator is left alone);
- `csv_rows_swapped`: `_dump_csv` writes the ranks' rows in reverse order;
- `custom_reduce_twice`: a custom REDUCE_GRAD handler is called twice per action;
- `compile_check_top_only`: the compiled-stage refusal only looks at the stage module itself, not nested ones;
- `fsdp_third_stage_unreduced`: a rank's third and later local stages skip FSDP's gradient reduction.
"""

from __future__ import annotations

import functools
import os

GRAPHS_FAULT_ENV = "CONFORMANCE_TEST_GRAPHS_FAULT"


def _patch_backward_weight(make) -> None:
    """Replace stage_backward_weight where pipelining looks it up (its module and the stage module's import)."""
    import torch.distributed.pipelining._backward as bw
    import torch.distributed.pipelining.stage as stage

    patched = make(bw)
    bw.stage_backward_weight = patched
    if hasattr(stage, "stage_backward_weight"):
        stage.stage_backward_weight = patched


def weight_first_output_only() -> None:
    def make(bw):
        original = bw.stage_backward_weight

        @functools.wraps(original)
        def first_only(weights, param_groups, retain_graph=False):
            for group in param_groups:
                group["grads"] = [tuple(g if i == 0 else None for i, g in enumerate(grads))
                                  for grads in group.get("grads") or []]
            return original(weights, param_groups, retain_graph=retain_graph)

        return first_only

    _patch_backward_weight(make)


def weight_double_count() -> None:
    def make(bw):
        import torch
        from torch.autograd.graph import GradientEdge

        def unclamped(weights, param_groups, retain_graph=False):
            grad_acc_to_weight = {}
            weight_grads = []
            for index, weight in enumerate(weights):
                grad_acc_to_weight[bw._get_grad_fn_or_grad_acc(weight)] = weight, index
                weight_grads.append(weight.grad)
            for group in param_groups:
                edges, outs = [], []
                for grads, node in zip(group["grads"], group["intermediates"], strict=True):
                    for i, g in enumerate(grads):
                        if g is not None:
                            edges.append(GradientEdge(node, i))
                            outs.append(g)
                if edges:
                    params = tuple(group["params"])
                    dws = torch.autograd.grad(edges, tuple(GradientEdge(w, 0) for w in params), grad_outputs=outs,
                                              retain_graph=retain_graph)
                    for acc, dw in zip(params, dws, strict=True):
                        weight, _ = grad_acc_to_weight[acc]
                        weight.grad = dw if weight.grad is None else weight.grad + dw
            return tuple(weight_grads)

        return unclamped

    _patch_backward_weight(make)


def dtensor_recv_scaled() -> None:
    import torch
    from torch.distributed.pipelining.stage import _PipelineStageBase
    from torch.distributed.tensor import DTensor

    original = _PipelineStageBase._retrieve_recv_activations

    @functools.wraps(original)
    def scaled(self, fwd_chunk_id):
        acts = original(self, fwd_chunk_id)
        with torch.no_grad():
            for a in acts:
                if isinstance(a, DTensor):
                    a.to_local().mul_(1.5)
        return acts

    _PipelineStageBase._retrieve_recv_activations = scaled  # type: ignore[method-assign]


def optimizer_state_not_loaded() -> None:
    """The optimizer's state dict hands out copies and loading one back is a no-op: what a checkpoint loads never
    reaches the optimizer (parameters still load)."""
    import torch.distributed.checkpoint.state_dict as sd

    original = sd.get_optimizer_state_dict

    @functools.wraps(original)
    def copies(*args, **kwargs):
        return {k: v.clone() if hasattr(v, "clone") else v for k, v in original(*args, **kwargs).items()}

    sd.get_optimizer_state_dict = copies
    sd.set_optimizer_state_dict = lambda *args, **kwargs: None


def defer_recv_rescales() -> None:
    from torch.distributed.pipelining import schedules

    original = schedules._PipelineScheduleRuntime.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        deferred = kwargs.get("defer_pp_recv", False)
        original(self, *args, **kwargs)
        if deferred:
            self.scale_grads = False

    schedules._PipelineScheduleRuntime.__init__ = init  # type: ignore[method-assign]


def p2p_comms_recv_scaled() -> None:
    import torch
    from torch.distributed.pipelining.stage import _PipelineStageBase

    original = _PipelineStageBase._retrieve_recv_activations

    @functools.wraps(original)
    def scaled(self, fwd_chunk_id):
        acts = original(self, fwd_chunk_id)
        if getattr(self, "p2p_per_direction", False) or getattr(self, "p2p_per_edge", False):
            with torch.no_grad():
                for a in acts:
                    if isinstance(a, torch.Tensor):
                        a.mul_(1.5)
        return acts

    _PipelineStageBase._retrieve_recv_activations = scaled  # type: ignore[method-assign]


def csv_rows_swapped() -> None:
    import csv

    from torch.distributed.pipelining import schedules

    def dump(self, filename, format="compute_only"):  # noqa: A002 - upstream's parameter name
        order = self.pipeline_order if format == "compute_only" else self.pipeline_order_with_comms
        with open(filename, "w", newline="") as f:
            writer = csv.writer(f)
            for rank in reversed(list(order)):
                writer.writerow(order[rank])

    schedules.PipelineScheduleMulti._dump_csv = dump  # type: ignore[method-assign]
    schedules._PipelineScheduleRuntime._dump_csv = dump  # type: ignore[method-assign]


def custom_reduce_twice() -> None:
    from torch.distributed.pipelining import schedules

    original = schedules._PipelineScheduleRuntime.register_custom_function

    @functools.wraps(original)
    def register(self, computation_type, custom_function):
        if computation_type == schedules.REDUCE_GRAD:
            inner = custom_function

            def custom_function(action, ctx):
                inner(action, ctx)
                inner(action, ctx)

        return original(self, computation_type, custom_function)

    schedules._PipelineScheduleRuntime.register_custom_function = register  # type: ignore[method-assign]


def compile_check_top_only() -> None:
    import torch
    from torch.distributed.pipelining import schedules

    def top_only(stages, schedule_name):
        for stage in stages:
            if isinstance(stage.submod, torch._dynamo.eval_frame.OptimizedModule):
                raise RuntimeError(f"The {schedule_name} schedule is not supported with stage modules that have "
                                   "used torch.compile. Found OptimizedModule in OptimizedModule")

    schedules._check_torch_compile_compatibility = top_only


def fsdp_third_stage_unreduced() -> None:
    from torch.distributed.pipelining.stage import _PipelineStageBase

    original = _PipelineStageBase.perform_reduce_grad

    @functools.wraps(original)
    def reduce(self, grad_scale_factor):
        if self.stage_index >= 2 * self.group_size:  # a rank's third local stage and later
            if grad_scale_factor != 1:
                self.scale_grads(grad_scale_factor)
            return None
        return original(self, grad_scale_factor)

    _PipelineStageBase.perform_reduce_grad = reduce  # type: ignore[method-assign]


FAULTS = {f.__name__: f for f in (weight_first_output_only, weight_double_count, dtensor_recv_scaled,
                                  optimizer_state_not_loaded, defer_recv_rescales, p2p_comms_recv_scaled,
                                  csv_rows_swapped, custom_reduce_twice, compile_check_top_only,
                                  fsdp_third_stage_unreduced)}

if os.environ.get(GRAPHS_FAULT_ENV, "").strip():
    FAULTS[os.environ[GRAPHS_FAULT_ENV].strip()]()
