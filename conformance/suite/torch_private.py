"""The one adapter for torch internals the checks must reach, where torch has no public equivalent.

Known good: torch 2.4 to 2.14 (the pipelining releases; `conformance/torchenv/api.py` says when each helper came).

- `torch.distributed.pipelining._backward`: the per-stage backward helpers every schedule calls
  (`stage_backward`, `stage_backward_input`, `stage_backward_weight`). They are what the backward checks test.
- `torch.utils._pytree`: flattening stage inputs and outputs the way pipelining itself does.
- `torch.distributed.pipelining.schedules._PipelineScheduleRuntime` and its action types (`_ComputationType`
  members such as `REDUCE_GRAD`): the runtime that loads plans from CSV (`_load_csv`, `_dump_csv`, torch >= 2.5) and
  takes custom action handlers (`register_custom_function`, >= 2.10). What the graphs checks test.

Both are looked up when called, never bound at import: a test that patches torch's module sees its patch here, and
the checks still collect without torch.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def pipelining_backward() -> ModuleType:
    """`torch.distributed.pipelining._backward`, as torch has it now."""
    from torch.distributed.pipelining import _backward

    return _backward


def tree_flatten(tree: Any) -> tuple[list[Any], Any]:
    from torch.utils import _pytree

    return _pytree.tree_flatten(tree)


def tree_unflatten(leaves: list[Any], spec: Any) -> Any:
    from torch.utils import _pytree

    return _pytree.tree_unflatten(leaves, spec)


def schedule_runtime() -> Any:
    """`_PipelineScheduleRuntime`, or None where this build has no such class."""
    from torch.distributed.pipelining import schedules

    return getattr(schedules, "_PipelineScheduleRuntime", None)


def action_types(names: tuple[str, ...]) -> dict[str, Any]:
    """The runtime's action types by name (`REDUCE_GRAD`, ...), those this build has."""
    from torch.distributed.pipelining import schedules

    return {n: getattr(schedules, n) for n in names if hasattr(schedules, n)}
