"""The one adapter for torch internals the checks must reach, where torch has no public equivalent.

Known good: torch 2.4 to 2.14 (the pipelining releases; `conformance/torchenv/api.py` says when each helper came).

- `torch.distributed.pipelining._backward`: the per-stage backward helpers every schedule calls
  (`stage_backward`, `stage_backward_input`, `stage_backward_weight`). They are what the backward checks test.
- `torch.utils._pytree`: flattening stage inputs and outputs the way pipelining itself does.

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
