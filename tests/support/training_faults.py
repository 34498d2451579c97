"""Test-only training-loop faults: a rank plugin that breaks one path trainers run, so the training checks must fail.

Named in CONFORMANCE_RANK_PLUGINS (tests/support on PYTHONPATH); CONFORMANCE_TEST_TRAINING_FAULT picks the fault
(the pytest process, which runs world 1, loads it through the same variable):
- `overwrite_grads` (1): the first backward of a step overwrites the gradients instead of accumulating into them,
  so a second step without zero_grad loses the first step's gradients;
- `drop_partial_grads` (2): a microbatch on which some stage input gets no gradient sends no gradient for any input
  (zeros), dropping the ones that exist;
- `eval_drops_loss_kwargs` (3): eval() forgets the loss_kwargs it was given;
- `losses_keep_graph` (3): the losses a step hands back hang on an autograd graph nobody runs backward through;
- `presplit_reversed` (4): pre-split microbatches are run in reverse order;
- `presplit_wrong_error` (4): a pre-split container of the wrong length raises RuntimeError, not ValueError;
- `inference_draws_rng` (5): shape inference runs without forking the random generator, so its forward draws;
- `inference_keeps_buffers` (5): the buffer backup around shape inference is not restored (torch >= 2.14);
- `static_meta_no_grad` (5): a stage given static `input_args` treats what it receives as constants (the
  metadata's requires_grad dropped), so no gradient flows back to the earlier stages;
- `stale_shapes` (5): every step runs at the sequence length of the first: a longer one is cut to it (the first
  stage's inputs, the targets to the outputs' length), so the step runs on with wrong numbers instead of refusing.
"""

from __future__ import annotations

import functools
import os

TRAINING_FAULT_ENV = "CONFORMANCE_TEST_TRAINING_FAULT"


def overwrite_grads() -> None:
    from torch.distributed.pipelining.stage import _PipelineStageBase

    original = _PipelineStageBase.backward_one_chunk

    @functools.wraps(original)
    def overwriting(self, bwd_chunk_id, *args, **kwargs):
        if bwd_chunk_id == 0:
            self.submod.zero_grad(set_to_none=True)
        return original(self, bwd_chunk_id, *args, **kwargs)

    _PipelineStageBase.backward_one_chunk = overwriting  # type: ignore[method-assign]


def _all_or_nothing(fn):
    import torch

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        grads = out[0] if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], (list, tuple)) else out
        if isinstance(grads, (list, tuple)) and any(g is None for g in grads) and any(g is not None for g in grads):
            zeroed = [None if g is None else torch.zeros_like(g) for g in grads]
            if grads is not out:
                return (type(grads)(zeroed), *out[1:])
            return type(grads)(zeroed)
        return out

    return wrapper


def drop_partial_grads() -> None:
    from torch.distributed.pipelining import stage as st

    st.stage_backward = _all_or_nothing(st.stage_backward)
    st.stage_backward_input = _all_or_nothing(st.stage_backward_input)


def eval_drops_loss_kwargs() -> None:
    from torch.distributed.pipelining import schedules as s

    original = s._PipelineSchedule.eval

    @functools.wraps(original)
    def forgetting(self, *args, **kwargs):
        kwargs.pop("loss_kwargs", None)
        return original(self, *args, **kwargs)

    s._PipelineSchedule.eval = forgetting  # type: ignore[method-assign]


def losses_keep_graph() -> None:
    import torch
    from torch.distributed.pipelining import schedules as s

    original = s._PipelineSchedule._update_losses

    @functools.wraps(original)
    def with_graph(self, stages, losses):
        original(self, stages, losses)
        if losses:
            anchor = torch.ones((), requires_grad=True)
            losses[:] = [loss.detach() * anchor for loss in losses]  # a graph saving both factors, never run

    s._PipelineSchedule._update_losses = with_graph  # type: ignore[method-assign]


def presplit_reversed() -> None:
    from torch.distributed.pipelining import schedules as s

    original = s._PipelineSchedule._get_microbatch_inputs

    @functools.wraps(original)
    def reversed_mbs(self, args, kwargs, target, arg_mbs, kwarg_mbs, target_mbs):
        arg_mbs = arg_mbs[::-1] if isinstance(arg_mbs, list) else arg_mbs
        return original(self, args, kwargs, target, arg_mbs, kwarg_mbs, target_mbs)

    s._PipelineSchedule._get_microbatch_inputs = reversed_mbs  # type: ignore[method-assign]


def presplit_wrong_error() -> None:
    from torch.distributed.pipelining import schedules as s

    original = s._PipelineSchedule._check_inputs

    @functools.wraps(original)
    def runtime_error(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None

    s._PipelineSchedule._check_inputs = runtime_error  # type: ignore[method-assign]


def inference_draws_rng() -> None:
    import contextlib

    import torch
    from torch.distributed.pipelining import schedules as s

    original = s._PipelineSchedule._initialize_pp_stages

    @functools.wraps(original)
    def unforked(self, *args, **kwargs):
        fork = torch.random.fork_rng
        torch.random.fork_rng = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment]
        try:
            return original(self, *args, **kwargs)
        finally:
            torch.random.fork_rng = fork

    s._PipelineSchedule._initialize_pp_stages = unforked  # type: ignore[method-assign]


def inference_keeps_buffers() -> None:
    from torch.distributed.pipelining.stage import PipelineStage

    original = PipelineStage._post_metadata_inference_cleanup

    @functools.wraps(original)
    def keeping(self) -> None:
        self._metadata_inference_buffer_backup = None  # forget the backup: inference's buffer updates stay
        return original(self)

    PipelineStage._post_metadata_inference_cleanup = keeping  # type: ignore[method-assign]


def static_meta_no_grad() -> None:
    import dataclasses

    from torch.distributed.pipelining.stage import PipelineStage

    original = PipelineStage.__init__

    @functools.wraps(original)
    def constants(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        meta = self._user_meta
        if meta.inputs is not None:  # plain-tensor metadata is a dataclass: the same shapes, no gradient wanted
            meta.inputs = tuple(dataclasses.replace(m, requires_grad=False) for m in meta.inputs)

    PipelineStage.__init__ = constants  # type: ignore[method-assign]


def stale_shapes() -> None:
    import torch
    from torch.distributed.pipelining import schedules as s
    from torch.distributed.pipelining.stage import _PipelineStageBase

    forward, loss = _PipelineStageBase.forward_one_chunk, s._PipelineSchedule._compute_loss

    def cut(t, length: int):
        return t[:, :length] if isinstance(t, torch.Tensor) and t.dim() > 2 and t.shape[1] > length else t

    @functools.wraps(forward)
    def first_length(self, fwd_chunk_id, args, *rest, **kwargs):
        lengths = [a.shape[1] for a in args if isinstance(a, torch.Tensor) and a.dim() > 2]
        length = self.__dict__.setdefault("_fault_first_length", lengths[0] if lengths else None)
        args = tuple(cut(a, length) for a in args) if length is not None else args
        return forward(self, fwd_chunk_id, args, *rest, **kwargs)

    @functools.wraps(loss)
    def cut_target(self, output, target, *rest, **kwargs):
        return loss(self, output, cut(target, output.shape[1]) if output.dim() > 2 else target, *rest, **kwargs)

    _PipelineStageBase.forward_one_chunk = first_length  # type: ignore[method-assign]
    s._PipelineSchedule._compute_loss = cut_target  # type: ignore[method-assign]


FAULTS = {f.__name__: f for f in (overwrite_grads, drop_partial_grads, eval_drops_loss_kwargs, losses_keep_graph,
                                  presplit_reversed, presplit_wrong_error, inference_draws_rng,
                                  inference_keeps_buffers, static_meta_no_grad, stale_shapes)}

for _name in filter(None, (n.strip() for n in os.environ.get(TRAINING_FAULT_ENV, "").split(","))):
    FAULTS[_name]()
