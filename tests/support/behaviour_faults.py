"""Test-only behaviour faults: pipelining that gets every number right but breaks a documented behaviour rule.

A rank plugin (CONFORMANCE_RANK_PLUGINS=behaviour_faults, tests/support on PYTHONPATH): with
CONFORMANCE_TEST_BEHAVIOUR_FAULT=<name>[,<name>...] every rank (and the pytest process, which runs world 1) patches
torch pipelining at import. Each fault keeps losses and gradients identical to the healthy schedule:

- single_runs_gpipe: Schedule1F1B executes GPipe's order (all forwards, then all backwards).
- interleaved_runs_bfs: ScheduleInterleaved1F1B executes LoopedBFS's order while declaring its own plan.
- bfs_plan: ScheduleInterleaved1F1B plans (and runs) breadth-first: its declared plan is itself wrong.
- keep_activations: every stage keeps each forward's output alive across steps.
- weights_in_input_step: the input-gradient step (I) runs the full backward, so weight gradients come from I.
- duplicate_forward: the first stage runs microbatch 0's forward twice (a recomputation nobody asked for).
"""

from __future__ import annotations

import os

FAULT_ENV = "CONFORMANCE_TEST_BEHAVIOUR_FAULT"
KEPT: list = []  # keep_activations: outputs nobody frees


def single_runs_gpipe() -> None:
    from torch.distributed.pipelining import schedules as s

    s.Schedule1F1B._step_microbatches = s.ScheduleGPipe._step_microbatches  # type: ignore[method-assign]


def _bfs_ops(self, rank):
    from torch.distributed.pipelining import schedules as s

    return s.ScheduleLoopedBFS._calculate_single_rank_operations(self, rank)


def interleaved_runs_bfs() -> None:
    from torch.distributed.pipelining import schedules as s

    init = s.ScheduleInterleaved1F1B.__init__

    def init_running_bfs(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # Execute breadth-first, keep declaring the depth-first plan.
        self._prepare_schedule_with_comms({r: _bfs_ops(self, r) for r in range(self.pp_group_size)})

    s.ScheduleInterleaved1F1B.__init__ = init_running_bfs  # type: ignore[method-assign]


def bfs_plan() -> None:
    from torch.distributed.pipelining import schedules as s

    s.ScheduleInterleaved1F1B._calculate_single_rank_operations = _bfs_ops  # type: ignore[method-assign]


def keep_activations() -> None:
    from torch.distributed.pipelining import stage as st

    forward = st._PipelineStageBase.forward_one_chunk

    def forward_keeping(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        KEPT.append(out)
        return out

    st._PipelineStageBase.forward_one_chunk = forward_keeping  # type: ignore[method-assign]


def weights_in_input_step() -> None:
    from torch.distributed.pipelining import stage as st

    backward = st._PipelineStageBase.backward_one_chunk
    weight = st._PipelineStageBase.backward_weight_one_chunk

    def backward_all_in_input(self, bwd_chunk_id, loss=None, full_backward=True, last_backward=False):
        if full_backward:
            return backward(self, bwd_chunk_id, loss=loss, full_backward=True, last_backward=last_backward)
        backward(self, bwd_chunk_id, loss=loss, full_backward=True, last_backward=last_backward)
        self.__dict__.setdefault("_fault_done", set()).add(bwd_chunk_id)
        return None

    def weight_already_done(self, bwd_chunk_id, last_backward=False):
        done = self.__dict__.get("_fault_done", set())
        if bwd_chunk_id in done:
            done.discard(bwd_chunk_id)
            return None
        return weight(self, bwd_chunk_id, last_backward=last_backward)

    st._PipelineStageBase.backward_one_chunk = backward_all_in_input  # type: ignore[method-assign]
    st._PipelineStageBase.backward_weight_one_chunk = weight_already_done  # type: ignore[method-assign]


def duplicate_forward() -> None:
    from torch.distributed.pipelining import stage as st

    forward = st._PipelineStageBase.forward_one_chunk

    def forward_twice(self, fwd_chunk_id, *args, **kwargs):
        out = forward(self, fwd_chunk_id, *args, **kwargs)
        if self.is_first and fwd_chunk_id == 0 and not self.__dict__.get("_fault_again"):
            self._fault_again = True
            try:  # through the instance attribute, as a schedule would call it
                self.forward_one_chunk(fwd_chunk_id, *args, **kwargs)
            finally:
                self._fault_again = False
        return out

    st._PipelineStageBase.forward_one_chunk = forward_twice  # type: ignore[method-assign]


FAULTS = {f.__name__: f for f in (single_runs_gpipe, interleaved_runs_bfs, bfs_plan, keep_activations,
                                  weights_in_input_step, duplicate_forward)}

for _name in filter(None, (n.strip() for n in os.environ.get(FAULT_ENV, "").split(","))):
    FAULTS[_name]()
