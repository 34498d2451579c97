"""Graphs, layouts and plans: split backward on real graph shapes, DTensor activations between stages, checkpoints
across pipeline layouts with optimizer state, receive ordering options, plans as data, FSDP2 with many local stages.

The rank side is `conformance.suite.ranks.graphs`. One rank-side run serves several check ids where the cases share
their set-up (a schedule's split models x dtypes, an option's schedules, a plan's CSV and custom-handler cases); each
id judges its own case from the cached run, so a broken case fails its own check only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.suite.applicable import require
from conformance.suite.checks.test_behaviour import Cache
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.composition import N_LAYERS, STEPS
from conformance.suite.ranks.graphs import (
    COMPILE_REFUSAL,
    COMPILED_PLACEMENTS,
    DTYPES,
    HELPER_MODELS,
    LOCAL_STAGES,
    MANY_STAGE_SCHEDULES,
    PLAN_SCHEDULES,
    RECV_OPTIONS,
    RECV_SCHEDULES,
    RELAYOUTS,
    SPLIT_MODELS,
    ZERO_BUBBLE,
)

SPLIT_WORLD = 2
RELAYOUT_WORLDS = {"pp2_to_pp4": 4, "looped_to_v": 2, "pp_to_unsplit": 2}
N_PARAMS = 4 * N_LAYERS


@pytest.fixture(scope="session")
def graphs_cache() -> Cache:
    return Cache()


@pytest.fixture
def cached_run(on_ranks, graphs_cache: Cache) -> Callable[..., list[dict]]:
    """`cached_run(world, scenario, **params)`: every rank's data of one rank-side run shared by several ids."""

    def get(world: int, scenario: str, **params: Any) -> list[dict]:
        __tracebackhide__ = True
        key = (scenario, world, tuple(sorted(params.items())))
        return graphs_cache.get(key, lambda: on_ranks(world, scenario, **params))

    return get


def judge_case(data: list[dict], case: str) -> list[dict]:
    """Every rank's outcome of one case: skipped alike on every rank, or passed on every rank; returns them."""
    __tracebackhide__ = True
    outcomes = [d["cases"][case] for d in data]
    errors = [f"rank {d.get('rank', i)}: {o['error']}" for i, (d, o) in enumerate(zip(data, outcomes, strict=True))
              if "error" in o]
    if errors:
        raise AssertionError("; ".join(errors))
    skips = {o["skip"] for o in outcomes if "skip" in o}
    if skips:
        if len(skips) == 1 and all("skip" in o for o in outcomes):
            pytest.skip(skips.pop())
        raise AssertionError(f"{case}: ranks disagree: {outcomes}")
    return outcomes


# ---------------------------------------------------------------------------------------------------------------
# 1. Split backward on real graph shapes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", HELPER_MODELS)
def test_split_backward_helpers(cached_run, model, dtype):
    """`stage_backward_input` then `stage_backward_weight` on a whole stage of the model: the input gradient and
    every weight gradient equal one plain autograd backward (a weight used at several sites, multi-output nodes)."""
    require("stage_backward_input", "stage_backward_weight")
    data = cached_run(1, "graphs_split_helpers")
    (o,) = judge_case(data, f"{model}-{dtype}")
    if o["grads"] == 0:
        raise AssertionError(f"stage_backward_weight ({model}, {dtype}): compared no gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("schedule", ZERO_BUBBLE)
@pytest.mark.parametrize("model", SPLIT_MODELS)
def test_split_backward_schedule(cached_run, model, schedule, dtype):
    """A zero-bubble schedule (I and W steps) over the split models at world 2: every microbatch loss and every
    parameter gradient equal the unsplit model's, in fp32 and bf16."""
    require(schedule)
    data = cached_run(SPLIT_WORLD, "graphs_split", schedule=schedule)
    outcomes = judge_case(data, f"{model}-{dtype}")
    n_params, n_losses, want = (sum(o["grads"] for o in outcomes), sum(o["losses"] for o in outcomes),
                                outcomes[0]["model_params"])
    if n_params != want or n_losses != 4:
        raise AssertionError(f"{schedule} ({model}, {dtype}): the ranks compared {n_params} gradients and {n_losses} "
                             f"losses; the model has {want} parameters and the step 4 microbatches")


# ---------------------------------------------------------------------------------------------------------------
# 2. DTensor activations between stages


@pytest.mark.parametrize("world", [2, 4], ids=world_id)
@pytest.mark.parametrize("metadata", ["static", "runtime"])
def test_dtensor_activations(on_ranks, metadata, world):
    """TP with sequence parallel on a (pp=2, tp=world/2) mesh, DTensor activations crossing the stage boundary,
    stage metadata given statically or inferred at run time: losses, full gradients and parameters over two steps
    equal the unsplit model's."""
    require("dtensor_stages", "Schedule1F1B")
    data = on_ranks(world, "graphs_dtensor", metadata=metadata)
    lasts = [d for d in data if d["last"]]
    if len(lasts) != world // 2 or any(d["losses"] != 4 * STEPS for d in lasts):
        raise AssertionError(f"DTensor stages ({metadata}): losses compared {[d['losses'] for d in lasts]}")
    for d in data:
        want = d["n_params"] * STEPS
        if d["n_params"] != N_PARAMS // 2 or d["grads"] != want or d["params"] != want:
            raise AssertionError(f"DTensor stages ({metadata}): rank {d['rank']} compared {d['grads']} gradients and "
                                 f"{d['params']} parameters of {d['n_params']} per step")


# ---------------------------------------------------------------------------------------------------------------
# 3. Checkpoints across pipeline layouts


@pytest.mark.parametrize("case", RELAYOUTS)
def test_checkpoint_relayout(on_ranks, case):
    """PP x FSDP2 trained one Adam step, model and optimizer saved with `torch.distributed.checkpoint`, loaded into
    another pipeline layout; after the load and after one more step on both, every parameter and optimizer state
    entry is bit-equal between the layouts."""
    for spec in RELAYOUTS[case]:
        if spec[0] != "unsplit":
            require(spec[0])
    data = on_ranks(RELAYOUT_WORLDS[case], "graphs_relayout", case=case)
    for d in data:
        # parameters and Adam's step, exp_avg, exp_avg_sq of each
        if d["loaded"] != 4 * N_PARAMS or d["stepped"] != 4 * N_PARAMS:
            raise AssertionError(f"{case}: rank {d['rank']} compared {d['loaded']} entries after loading and "
                                 f"{d['stepped']} after the step, expected {4 * N_PARAMS} each")


# ---------------------------------------------------------------------------------------------------------------
# 4. Receive ordering options


@pytest.mark.parametrize("schedule", RECV_SCHEDULES)
@pytest.mark.parametrize("option", RECV_OPTIONS)
def test_receive_order(cached_run, option, schedule):
    """`defer_pp_recv` (torch >= 2.13) and per-direction P2P communicators (torch >= 2.14): the same losses,
    outputs and gradients as the default receive order, bit for bit, and no hang (the check timeout)."""
    require(option, schedule)
    data = cached_run(2, "graphs_recv", option=option)
    outcomes = judge_case(data, schedule)
    if any(o["compared"] == 0 for o in outcomes):
        raise AssertionError(f"{schedule}({option}): a rank compared nothing: {outcomes}")


# ---------------------------------------------------------------------------------------------------------------
# 5. Plans as data


@pytest.mark.parametrize("schedule", PLAN_SCHEDULES)
def test_plan_csv_round_trip(cached_run, schedule):
    """A schedule's plan dumped with `_dump_csv` and loaded with `_load_csv` into a bare `_PipelineScheduleRuntime`
    executes the same compute actions in the same order (traced) and computes the same numbers."""
    require("_dump_csv", "_load_csv", schedule)
    data = cached_run(2, "graphs_plan", schedule=schedule)
    outcomes = judge_case(data, "csv")
    for d, o in zip(data, outcomes, strict=True):
        if o["actions"] == 0 or o["actions"] != d["actions"] or o["compared"] == 0:
            raise AssertionError(f"_load_csv({schedule}): rank {d['rank']} ran {o['actions']} actions of "
                                 f"{d['actions']}, compared {o['compared']} numbers")


@pytest.mark.parametrize("schedule", PLAN_SCHEDULES)
def test_custom_action_handlers(cached_run, schedule):
    """Handlers registered with `register_custom_function` (W, UNSHARD, RESHARD, REDUCE_GRAD) fire exactly once
    per such action of the plan, in order, and the step computes the same numbers as without them."""
    require("register_custom_function", schedule)
    data = cached_run(2, "graphs_plan", schedule=schedule)
    outcomes = judge_case(data, "custom")
    if any(o["fired"] == 0 for o in outcomes):
        raise AssertionError(f"register_custom_function({schedule}): a rank's handlers never fired: {outcomes}")


@pytest.mark.parametrize("placement", COMPILED_PLACEMENTS)
@pytest.mark.parametrize("schedule", ZERO_BUBBLE)
def test_zero_bubble_refuses_compiled_stages(cached_run, schedule, placement):
    """A zero-bubble schedule over stages holding a `torch.compile`d module (the stage module, or a block nested
    in it) refuses them at construction with the documented RuntimeError (pytorch#161904); nothing is compiled."""
    require(schedule)
    data = cached_run(1, "graphs_compiled")
    (o,) = judge_case(data, f"{schedule}-{placement}")
    if o["raised"] is None:
        raise AssertionError(f"{schedule} accepted stages with a torch.compile'd module ({placement}); the split "
                             "backward does not support them, so the documented RuntimeError was expected")
    if o["raised"] != "RuntimeError" or COMPILE_REFUSAL not in o["message"]:
        raise AssertionError(f"{schedule} refused compiled stages ({placement}) with {o['raised']}: "
                             f"{o['message']!r}, not the documented RuntimeError ('...{COMPILE_REFUSAL}...')")


# ---------------------------------------------------------------------------------------------------------------
# 6. FSDP2 with many local stages per rank


@pytest.mark.parametrize("world", [2], ids=world_id)
@pytest.mark.parametrize("schedule", MANY_STAGE_SCHEDULES)
def test_fsdp_many_local_stages(on_ranks, schedule, world):
    """A looped schedule with 4 FSDP2 stages per rank (one block each, resharding after forward): losses, full
    gradients and parameters over two steps equal the unsplit model's."""
    require(schedule)
    data = on_ranks(world, "graphs_fsdp_stages", schedule=schedule)
    names = {n for d in data for n in d["names"]}
    if len(names) != N_PARAMS:
        raise AssertionError(f"{schedule}: compared gradients of {len(names)} parameters, the model has {N_PARAMS}")
    for d in data:
        held = 4 * len(d["stages"])
        want = {"grads": held * STEPS, "params": held * STEPS, "losses": 4 * STEPS if d["last"] else 0}
        got = {k: d[k] for k in want}
        if len(d["stages"]) != LOCAL_STAGES or got != want:
            raise AssertionError(f"{schedule}: rank holding stages {d['stages']} compared {got}, expected {want}")
