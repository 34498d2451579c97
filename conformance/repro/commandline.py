"""The `conformance repro ...` command line for a check id: what the report shows beside a failing or xfail cell.

Stdlib only and cheap to import (the report calls it per cell): which check functions `repro` covers is a set of
names here, held equal to the grammar in `conformance.repro.checkids` by a test.
"""

from __future__ import annotations

import shlex

COVERED_FUNCTIONS = frozenset({
    "test_schedules.py::test_schedule", "test_schedules.py::test_schedule_summed_grads",
    "test_schedules.py::test_schedule_iterations", "test_schedules.py::test_schedule_eval",
    "test_schedules.py::test_schedule_tracer", "test_schedules.py::test_schedule_kwargs",
    "test_schedules.py::test_schedule_constructor_error",
    "test_composition.py::test_fully_shard", "test_composition.py::test_fully_shard_mixed_precision",
    "test_composition.py::test_distributed_data_parallel", "test_composition.py::test_tensor_parallel",
    "test_composition.py::test_checkpoint", "test_composition.py::test_compile",
    "test_behaviour.py::test_behaviour_dependencies", "test_behaviour.py::test_behaviour_activation_bound",
    "test_behaviour.py::test_behaviour_declared_plan", "test_behaviour.py::test_behaviour_zero_bubble_split",
    "test_behaviour.py::test_behaviour_no_growth",
    "test_graphs.py::test_fsdp_many_local_stages", "test_graphs.py::test_receive_order",
    "test_graphs.py::test_plan_csv_round_trip", "test_graphs.py::test_custom_action_handlers",
    "test_graphs.py::test_zero_bubble_refuses_compiled_stages", "test_graphs.py::test_dtensor_activations",
    "test_graphs.py::test_checkpoint_relayout",
    "test_graphs.py::test_split_backward_helpers", "test_graphs.py::test_split_backward_schedule",
    "test_training.py::test_training_accumulation", "test_training.py::test_training_unused_input",
    "test_training.py::test_training_eval", "test_training.py::test_training_losses_released",
    "test_training.py::test_training_presplit", "test_training.py::test_training_metadata",
    "test_training.py::test_training_seq_len",
    "test_split.py::test_split_points_at_edges", "test_split.py::test_pipeline_twice_same_module",
    "test_split.py::test_split_points",
})


def normalize(check_id: str) -> str:
    """The suite-relative id: `test_x.py::test_y[...]` from a node id with folders, or a JUnit `classname::name`
    whose classname is dotted (`conformance.suite.checks.test_x`)."""
    cid = check_id.strip()
    head, sep, rest = cid.partition("::")
    if not sep:
        return cid
    head = head.rsplit("/", 1)[-1]
    if not head.endswith(".py"):
        head = head.rsplit(".", 1)[-1] + ".py"
    return f"{head}::{rest}"


def repro_command(check_id: str, device: str) -> str | None:
    """`conformance repro '<id>' --device <device>` for a check `repro` covers, else None."""
    cid = normalize(check_id)
    if cid.partition("[")[0] not in COVERED_FUNCTIONS:
        return None
    return f"conformance repro {shlex.quote(cid)} --device {shlex.quote(device)}"
