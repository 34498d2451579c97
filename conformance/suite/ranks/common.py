"""What the rank-side scenario modules share: the loss, the schedule class lookup, the world-size id.

Imported by the rank modules and by the check modules (for `world_id`): torch only inside the functions.
"""

from __future__ import annotations

from typing import Any

from conformance.pool.scenarios import Skip
from conformance.protocol.outcomes import not_applicable


def world_id(world: int) -> str:
    """The parametrize id of a world size, as check ids spell it: `world2`."""
    return f"world{world}"


def schedule_class(name: str) -> Any:
    """The schedule class `name` of torch.distributed.pipelining; not applicable where the build lacks it."""
    import torch.distributed.pipelining as pp

    cls = getattr(pp, name, None)
    if cls is None:
        raise Skip(not_applicable(f"torch.distributed.pipelining has no {name} in this build"))
    return cls


def loss_fn(output: Any, target: Any) -> Any:
    """Mean squared error of a pipeline's output against its target.

    The target is cast to the output's dtype: under mixed precision the output is bf16 while the target stays fp32,
    and CUDA's mse backward refuses the mix. Where the dtypes agree the cast returns the target itself.
    """
    import torch.nn.functional as F

    return F.mse_loss(output, target.to(output.dtype))
