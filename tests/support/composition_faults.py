"""Test-only faults in composed pipelines: a rank plugin that breaks how pipelining meets FSDP2, DDP, TP or
activation checkpointing, so the composition checks must fail.

Named in CONFORMANCE_RANK_PLUGINS (tests/support on PYTHONPATH); CONFORMANCE_TEST_COMPOSITION_FAULT picks the fault:
- `fsdp_no_reduce`: the stage's end-of-step reduction skips FSDP's post-backward (only scales the gradients);
- `ddp_no_sync`: DDP stay in `no_sync()` for the last backward too, so gradients are never all-reduced;
- `tp_unredistributed`: `RowwiseParallel` hands its partial-sum output on without the all-reduce;
- `checkpoint_rng`: activation checkpointing recomputes without restoring the RNG state (dropout masks differ).
"""

from __future__ import annotations

import functools
import os

COMPOSITION_FAULT_ENV = "CONFORMANCE_TEST_COMPOSITION_FAULT"


def fsdp_no_reduce() -> None:
    from torch.distributed.pipelining.stage import _PipelineStageBase

    def perform_reduce_grad(self, grad_scale_factor: int) -> None:
        if grad_scale_factor != 1:
            self.scale_grads(grad_scale_factor)

    _PipelineStageBase.perform_reduce_grad = perform_reduce_grad  # type: ignore[method-assign]


def ddp_no_sync() -> None:
    from torch.distributed.pipelining.stage import _PipelineStageBase

    original = _PipelineStageBase.backward_maybe_with_nosync

    @functools.wraps(original)
    def never_last(self, backward_type, bwd_kwargs, last_backward=False):
        return original(self, backward_type, bwd_kwargs, last_backward=False)

    _PipelineStageBase.backward_maybe_with_nosync = never_last  # type: ignore[method-assign]


def tp_unredistributed() -> None:
    from torch.distributed.tensor.parallel import RowwiseParallel

    def keep_partial(output_layouts, use_local_output, mod, outputs, device_mesh):
        return outputs.to_local() if use_local_output else outputs

    RowwiseParallel._prepare_output_fn = staticmethod(keep_partial)  # type: ignore[method-assign]


def checkpoint_rng() -> None:
    import torch.utils.checkpoint as ckpt

    original = ckpt.checkpoint

    @functools.wraps(original)
    def without_rng_state(function, *args, **kwargs):
        kwargs["preserve_rng_state"] = False
        return original(function, *args, **kwargs)

    ckpt.checkpoint = without_rng_state


FAULTS = {f.__name__: f for f in (fsdp_no_reduce, ddp_no_sync, tp_unredistributed, checkpoint_rng)}

if os.environ.get(COMPOSITION_FAULT_ENV, "").strip():
    FAULTS[os.environ[COMPOSITION_FAULT_ENV].strip()]()
