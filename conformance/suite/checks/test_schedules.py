"""Schedules: every schedule class on 1, 2 and 4 ranks against the unsplit model (losses, outputs, gradients).

The work runs on the rank pool (`conformance.suite.ranks.schedules` holds the rank side); world 1 runs in this process
with all stages local. Ids are plain strings so the same ids exist in every env and build.
"""

import pytest

from conformance.suite.applicable import require
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.schedules import N_LAYERS, SCHEDULES, SINGLE, V_SHAPED, default_microbatches

WORLDS = [1, 2, 4]
N_PARAMS = 2 * N_LAYERS  # weight and bias of each block's Linear


def check_counts(api: str, data: list[dict], schedule: str, world: int, *, iterations: int = 1,
                 train: bool = True) -> None:
    """Every rank compared its part: all parameters once per iteration, all losses and outputs on the last stage."""
    __tracebackhide__ = True
    n_mb = default_microbatches(schedule, world)
    lasts = [i for i, d in enumerate(data) if d["last"]]
    if len(lasts) != 1:
        raise AssertionError(f"{api}: expected exactly one rank holding the last stage, got ranks {lasts}")
    got = {k: sum(d[k] for d in data) for k in ("losses", "outputs", "grads", "no_grads")}
    want = {"losses": n_mb * iterations, "outputs": iterations,
            "grads": N_PARAMS * iterations if train else 0, "no_grads": 0 if train else N_PARAMS * iterations}
    if got != want:
        raise AssertionError(f"{api}: compared {got}, expected {want} across {world} rank(s)")
    stages = sorted(s for d in data for s in d["stages"])
    n_stages = world if schedule in SINGLE else 2 * world
    if stages != list(range(n_stages)):
        raise AssertionError(f"{api}: stages held by the ranks {stages}, expected 0..{n_stages - 1}")


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule(on_ranks, schedule, world, dtype):
    """One training step, hand-cut stages: every microbatch loss, the merged outputs, every gradient."""
    require(schedule)
    data = on_ranks(world, "schedule", schedule=schedule, dtype=dtype)
    check_counts(schedule, data, schedule, world)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_summed_grads(on_ranks, schedule, world):
    """`scale_grads=False`: gradients are summed over microbatches, not averaged."""
    require(schedule, "scale_grads")
    data = on_ranks(world, "schedule", schedule=schedule, scale_grads=False)
    check_counts(schedule, data, schedule, world)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_iterations(on_ranks, schedule, world):
    """Three steps in a row with an SGD update between them: no state leaks from one step into the next."""
    require(schedule)
    data = on_ranks(world, "schedule", schedule=schedule, iterations=3)
    check_counts(schedule, data, schedule, world, iterations=3)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_eval(on_ranks, schedule, world):
    """`eval()`: losses and outputs of the forward pass, no gradient anywhere."""
    require(schedule, "eval")
    data = on_ranks(world, "schedule", schedule=schedule, mode="eval")
    check_counts(f"{schedule}.eval", data, schedule, world, train=False)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_tracer(on_ranks, schedule, world):
    """Stages built by the tracer (`pipeline()` + `build_stage`) instead of by hand."""
    require(schedule, "pipeline", "build_stage")
    data = on_ranks(world, "schedule", schedule=schedule, builder="tracer")
    check_counts(schedule, data, schedule, world)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_kwargs(on_ranks, schedule, world):
    """A model keyword argument (a per-sample tensor) chunked into microbatches and seen by every stage."""
    require(schedule)
    data = on_ranks(world, "schedule", schedule=schedule, kwargs=True)
    check_counts(schedule, data, schedule, world)


ERRORS = [
    # (schedule, case): documented constructor errors
    ("Schedule1F1B", "too_few_microbatches"),  # n_microbatches < num_stages
    ("ScheduleDualPipeV", "too_few_microbatches"),
    *[(s, case) for s in V_SHAPED for case in ("one_local_stage", "three_local_stages")],
]


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule,case", ERRORS, ids=[f"{s}-{c}" for s, c in ERRORS])
def test_schedule_constructor_error(on_ranks, schedule, case, world):
    """The schedule refuses a configuration its documentation rules out, on every rank."""
    require(schedule)
    data = on_ranks(world, "schedule_error", schedule=schedule, case=case)
    assert all(d["raised"] for d in data)


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_numerics_state(on_ranks, schedule, world):
    """A training step leaves every rank's global numerics state as it found it: TF32/cuDNN and deterministic
    flags, default dtype, autocast, grad mode (a build that turns TF32 on changes every later matmul)."""
    require(schedule)
    data = on_ranks(world, "schedule_numerics", schedule=schedule)
    check_counts(schedule, data, schedule, world)
