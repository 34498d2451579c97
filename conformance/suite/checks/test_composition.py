"""Composition: pipeline stages that are also FSDP2-, DDP- or TP-sharded, checkpointed or compiled, against the
unsplit model on the same global batch (every microbatch loss, every gradient gathered to full, the parameters
after one optimizer step, then a second step).

Meshes come from the pool's ranks: world 4 is (pp=2, dp=2) or (pp=2, tp=2), world 2 is (pp=2, dp=1) or
(pp=2, tp=1); `conformance.suite.ranks.composition` holds the rank side.
"""

from __future__ import annotations

import pytest

from conformance.suite.applicable import require
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.composition import N_LAYERS, PP, SCHEDULES, STEPS

WORLDS = [2, 4]
# Kept short for the CPU suite's time budget: a failing DDP check tears its ranks down (they are stuck in a
# receive), bf16 on CPU is slow, and inductor's first compile costs a rank pool ~10-30 s on a 2-core host.
# ZBV refuses compiled stages ("not supported with stage modules that have used torch.compile"): no compile case.
DDP_CASES = [("ScheduleGPipe", 2), ("Schedule1F1B", 2), ("Schedule1F1B", 4)]
# ZBV under bf16 mixed precision is left out until diagnosed: on torch 2.13/CPU its second-step gradients of the last
# stage differ from the unsplit bf16 model by ~2x the bf16 tolerance on a few elements (README, composition).
MIXED_PRECISION_SCHEDULES = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B")
COMPILE_SCHEDULES = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B")
N_PARAMS = 4 * N_LAYERS  # weight and bias of each block's two Linears


def check_counts(api: str, data: list[dict], world: int, n_microbatches: int = 4) -> None:
    """Every rank compared its part, and together they covered the model: each loss of its replica (last stage),
    each parameter's gradient and value after each step."""
    __tracebackhide__ = True
    lasts = [d for d in data if d["last"]]
    replicas = world // PP
    if len(lasts) != replicas:
        raise AssertionError(f"{api}: {len(lasts)} ranks hold the last stage, expected {replicas}")
    names = {n for d in data for n in d["names"]}
    if len(names) != N_PARAMS:
        raise AssertionError(f"{api}: compared gradients of {len(names)} parameters, the model has {N_PARAMS}")
    for d in data:
        held = 4 * N_LAYERS // (PP if len(d["stages"]) == 1 else 2 * PP) * len(d["stages"])
        want = {"grads": held * STEPS, "params": held * STEPS, "losses": n_microbatches * STEPS if d["last"] else 0}
        got = {k: d[k] for k in want}
        if got != want:
            raise AssertionError(f"{api}: rank holding stages {d['stages']} compared {got}, expected {want}")


SHARD_IDS = {True: "reshard", False: "no_reshard"}


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("reshard", [True, False], ids=SHARD_IDS.get)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_fully_shard(on_ranks, schedule, reshard, world):
    """PP x FSDP2: `fully_shard` per block and at the stage root, `reshard_after_forward` True and False."""
    require(schedule)
    data = on_ranks(world, "composition", kind="fsdp", schedule=schedule, reshard=reshard)
    check_counts(f"{schedule}+fully_shard", data, world)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", MIXED_PRECISION_SCHEDULES)
def test_fully_shard_mixed_precision(on_ranks, schedule, world):
    """PP x FSDP2 with `MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`, where the device does bf16
    (`reshard_after_forward=False`: test_fully_shard covers resharding)."""
    require(schedule)
    data = on_ranks(world, "composition", kind="fsdp", schedule=schedule, mixed_precision=True, reshard=False)
    check_counts(f"{schedule}+fully_shard+bf16", data, world)


@pytest.mark.parametrize("schedule,world", DDP_CASES, ids=[f"{s}-{world_id(w)}" for s, w in DDP_CASES])
def test_distributed_data_parallel(on_ranks, schedule, world):
    """PP x DDP: `DistributedDataParallel` stage modules over the dp dimension."""
    require(schedule)
    data = on_ranks(world, "composition", kind="ddp", schedule=schedule)
    check_counts(f"{schedule}+DistributedDataParallel", data, world)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_tensor_parallel(on_ranks, schedule, world):
    """PP x TP: `ColwiseParallel` in, `RowwiseParallel` out on every MLP block, on a (pp, tp) mesh."""
    require(schedule)
    data = on_ranks(world, "composition", kind="tp", schedule=schedule)
    # the tp ranks of a stage each see the whole batch, so every one of them holds all losses
    check_counts(f"{schedule}+parallelize_module", data, world)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_checkpoint(on_ranks, schedule, world):
    """Activation checkpointing (`torch.utils.checkpoint`, with dropout) inside FSDP2 stage modules."""
    require(schedule)
    data = on_ranks(world, "composition", kind="checkpoint", schedule=schedule, reshard=False)
    check_counts(f"{schedule}+checkpoint", data, world)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", COMPILE_SCHEDULES)
def test_compile(on_ranks, schedule, world):
    """`torch.compile`'d blocks inside FSDP2 stage modules; not applicable where the build cannot compile."""
    require(schedule)
    data = on_ranks(world, "composition", kind="compile", schedule=schedule, reshard=False)
    check_counts(f"{schedule}+compile", data, world)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
def test_distributed_checkpoint(on_ranks, world):
    """`torch.distributed.checkpoint` of a trained PP x FSDP2 model, loaded into the unsplit model and into a
    (pp=1, dp=world) FSDP2 layout: every parameter equal."""
    data = on_ranks(world, "composition_dcp")
    saved = {n for d in data for n in d["saved"]}
    if len(saved) != N_PARAMS:
        raise AssertionError(f"torch.distributed.checkpoint: the ranks saved {len(saved)} parameters, not {N_PARAMS}")
    for d in data:
        if d["relayout"] != N_PARAMS or d["model"] != N_PARAMS:
            raise AssertionError(f"torch.distributed.checkpoint: a rank compared {d['relayout']} re-laid-out "
                                 f"parameters of {d['model']}, expected {N_PARAMS}")
