"""Behaviour: a schedule keeps its documented order, activation bound and step cost, not only its numbers.

One traced scenario run per schedule x world (`conformance.suite.ranks.behaviour`) serves every rule; each check id
judges its own rule on the cached result (`conformance.suite.rules`), so a broken rule fails its own check only.
`eval()` growth runs as a separate task (it fails upstream for adjacent local stages, see expectations/all.txt).
The measured traces and step costs go to suite-level JUnit properties (`conformance.protocol.stepcost`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest

from conformance.protocol import outcomes, stepcost
from conformance.suite import bounds, rules
from conformance.suite.applicable import require
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.schedules import SCHEDULES, num_stages, stage_ids
from conformance.suite.results_cache import Cache

WORLDS = [1, 2, 4]
MODES = ["train", "eval", "return_outputs_false"]
MODE_APIS = {"train": (), "eval": ("eval",), "return_outputs_false": ("return_outputs",)}
COST_SCHEDULES = SCHEDULES
STEP_COST = "step_cost"


@pytest.fixture(scope="session")
def behaviour_cache() -> Cache:
    return Cache()


def measured_trace(schedule: str, world: int, data: list[dict]) -> stepcost.Trace:
    """The measured trace: microseconds from the first action (or step start), one list per rank; `window` (where
    the ranks recorded it) is each rank's whole step() call on the same clock."""
    starts = [a[3] for d in data for a in d["trace"]] + [d["window"][0] for d in data if d.get("window")]
    t0 = min(starts, default=0)
    ranks = {str(d["rank"]): [[s, k, mb, (a - t0) // 1000, (b - t0) // 1000] for s, k, mb, a, b in d["trace"]]
             for d in data}
    window = ({str(d["rank"]): [(d["window"][0] - t0) // 1000, (d["window"][1] - t0) // 1000] for d in data}
              if all(d.get("window") for d in data) else {})
    return stepcost.Trace(schedule, world, ranks, window=window)


def compact_trace(schedule: str, world: int, data: list[dict]) -> str:
    """The measured trace as its `trace:` property writes it (compact JSON)."""
    return measured_trace(schedule, world, data).to_json()


def median_step(data: list[dict]) -> tuple[int, list[dict]]:
    """(index, per-rank data of that step) of the timed step whose slowest-rank time is the median (the lower
    middle for an even count): the step the table reports is the step the timeline draws."""
    steps = [max(d["step_ms"][i] for d in data) for i in range(len(data[0]["step_ms"]))]
    i = sorted(range(len(steps)), key=steps.__getitem__)[(len(steps) - 1) // 2]
    return i, [{**d, "trace": d["traces"][i], "window": d["windows"][i]} for d in data]


@pytest.fixture
def traced(on_ranks, behaviour_cache: Cache, record_testsuite_property, request) -> Callable[[str, int], list[dict]]:
    """`traced(schedule, world)`: every rank's behaviour data of one traced run (cached); records its trace."""

    def get(schedule: str, world: int) -> list[dict]:
        __tracebackhide__ = True

        def run() -> list[dict]:
            data = on_ranks(world, "behaviour", schedule=schedule)
            numerics_state_unchanged(data)
            if all(d.get("trace") for d in data):
                record_testsuite_property(*measured_trace(schedule, world, data).property(
                    f"test_behaviour_dependencies[{schedule}-{world_id(world)}]"))
            return data

        data = behaviour_cache.get(("behaviour", schedule, world), run)
        missing = sorted({m for d in data for m in d.get("missing", [])})
        if missing:
            pytest.skip(f"{outcomes.NOT_APPLICABLE}this build's stages lack the trace points {', '.join(missing)}")
        return data

    return get


def numerics_state_unchanged(data: list[dict]) -> None:
    """Where the numerics-state area reported (ranks return `numerics_state` diffs), none may have changed."""
    for d in data:
        changed = d.get("numerics_state")
        if changed:
            raise AssertionError(f"rank {d['rank']}: pipelining changed global numerics state: {changed}")


def shape(schedule: str, world: int, data: list[dict]) -> tuple[int, int]:
    return num_stages(schedule, world), data[0]["n_mb"]


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_behaviour_dependencies(traced, schedule, world):
    """F after F of the previous stage, B/I after F and after the next stage's B/I, W after I, each exactly once."""
    require(schedule)
    data = traced(schedule, world)
    n_st, n_mb = shape(schedule, world, data)
    violation = rules.dependencies(schedule, data, n_st, n_mb)
    assert violation is None, violation


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_behaviour_activation_bound(traced, schedule, world):
    """Peak microbatches in flight per stage and per rank within the documented bound (conformance/suite/bounds.py)."""
    require(schedule)
    data = traced(schedule, world)
    n_st, n_mb = shape(schedule, world, data)
    violation = rules.activation_bound(schedule, data, n_st, world, n_mb)
    assert violation is None, violation


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_behaviour_declared_plan(traced, schedule, world):
    """Where the build declares its plan (`pipeline_order`), each rank executed exactly that order."""
    require(schedule)
    data = traced(schedule, world)
    reasons = {d["plan_reason"] for d in data if d["plan"] is None}
    if reasons:
        pytest.skip(outcomes.NOT_APPLICABLE + "; ".join(sorted(reasons)))
    violation = rules.declared_plan(schedule, data)
    assert violation is None, violation


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_behaviour_zero_bubble_split(traced, schedule, world):
    """Zero-bubble schedules: an I step leaves weight gradients untouched and its W step writes them."""
    require(schedule)
    if schedule not in rules.ZERO_BUBBLE:
        pytest.skip(f"{outcomes.NOT_APPLICABLE}{schedule} does not split backward into I and W steps")
    data = traced(schedule, world)
    missing = sorted({m for d in data for m in d.get("missing_split", [])})
    if missing:
        pytest.skip(f"{outcomes.NOT_APPLICABLE}this build's stages lack {', '.join(missing)}")
    violation = rules.zero_bubble_split(schedule, data)
    assert violation is None, violation


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_behaviour_no_growth(traced, on_ranks, behaviour_cache, schedule, world, mode):
    """Over 4 steps the live state (CPU: live tensors; accelerators: allocated memory) after step k equals step 2."""
    require(schedule, *MODE_APIS[mode])
    if mode == "eval":
        eval_unusable_here(on_ranks, behaviour_cache, schedule, world)
        data = behaviour_cache.get(("behaviour-eval", schedule, world), lambda: on_ranks(
            world, "behaviour", schedule=schedule, modes=["eval"], trace=False))
    else:
        data = traced(schedule, world)
    skips = {d["live"][mode]["skip"] for d in data if "skip" in d["live"][mode]}
    if skips:
        pytest.skip("; ".join(sorted(skips)))
    violation = rules.no_growth(schedule, data, mode)
    assert violation is None, violation


def adjacent_local_stages(schedule: str, world: int) -> bool:
    """Does some rank hold two consecutive stages (the V schedules' middle rank; looped schedules at world 1)?"""
    return any(abs(a - b) == 1 for r in range(world) for a in stage_ids(schedule, r, world)
               for b in stage_ids(schedule, r, world))


def eval_unusable_here(on_ranks, cache: Cache, schedule: str, world: int) -> None:
    """Skip a multi-rank eval() growth check as not applicable when eval() itself raises for the same layout.

    With two consecutive stages on one rank, eval() asserts upstream (expectations/all.txt); at world > 1 the other
    ranks then hang until the pool tears them down, seconds per check. Whether it raises is measured at world 1
    (in-process, same adjacent layout): once upstream fixes it, the multi-rank checks run again by themselves.
    """
    __tracebackhide__ = True
    if world == 1 or not adjacent_local_stages(schedule, world):
        return
    try:
        cache.get(("behaviour-eval", schedule, 1),
                  lambda: on_ranks(1, "behaviour", schedule=schedule, modes=["eval"], trace=False))
    except (Exception, pytest.fail.Exception) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        pytest.skip(f"{outcomes.NOT_APPLICABLE}eval() itself raises with two consecutive stages on one rank "
                    f"(test_behaviour_no_growth[{schedule}-world1-eval]: {first[:200]})")


def step_cost_data(on_ranks, cache: Cache, schedule: str, world: int) -> list[dict]:
    __tracebackhide__ = True
    return cache.get((STEP_COST, schedule, world), lambda: on_ranks(world, STEP_COST, schedule=schedule))


def summarize_cost(schedule: str, world: int, data: list[dict]) -> stepcost.StepCost:
    """Step ms (median over ranks' slowest), ideal, bubble measured vs theory, peak memory per rank."""
    steps = [max(d["step_ms"][i] for d in data) for i in range(len(data[0]["step_ms"]))]
    step = statistics.median(steps)
    traced, _ = median_step(data)
    n_mb = data[0]["n_mb"]
    ideal = max(n_mb * d["ideal_stage_ms"] for d in data)
    v = len(stage_ids(schedule, 0, world))
    theory_fn, theory_src = bounds.BUBBLE[schedule]
    theory = theory_fn(n_mb, world, v)
    return stepcost.StepCost(
        schedule=schedule, world=world, n_mb=n_mb, steps=len(steps), step_ms=round(step, 3),
        ideal_ms=round(ideal, 3), bubble=round(max(0.0, 1 - ideal / step), 4),
        bubble_theory=None if theory is None else round(theory, 4), bubble_theory_source=theory_src,
        peak_bytes={str(d["rank"]): d["peak_bytes"] for d in data},
        base_bytes={str(d["rank"]): d.get("base_bytes", 0) for d in data},
        device=data[0].get("device_name", ""), traced_step=traced, traced_step_ms=round(steps[traced], 3))


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", COST_SCHEDULES)
def test_step_cost(on_ranks, behaviour_cache, record_testsuite_property, conformance, schedule, world):
    """Accelerators: step time (median of >= 5 steps after warm-up), ideal, bubble, peak memory per rank; never
    time-gated, recorded as step-cost and trace suite properties for the report."""
    require(schedule)
    if conformance.dev.name == "cpu":
        pytest.skip(f"{outcomes.NOT_APPLICABLE}step cost is measured on accelerators only; CPU timings of the "
                    "suite's small models say nothing about a device")
    data = step_cost_data(on_ranks, behaviour_cache, schedule, world)
    cost = summarize_cost(schedule, world, data)
    name = f"test_step_cost[{schedule}-{world_id(world)}]"
    record_testsuite_property(*cost.property(name))
    record_testsuite_property(*measured_trace(schedule, world, median_step(data)[1]).property(name))
    assert cost.steps >= 5, f"{schedule}: {cost.steps} timed steps, expected at least 5"


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
def test_behaviour_memory_order(on_ranks, behaviour_cache, conformance, world):
    """Accelerators: 1F1B's peak memory per rank stays below GPipe's on the same model when m >= 2p."""
    require("ScheduleGPipe", "Schedule1F1B")
    if conformance.dev.name == "cpu":
        pytest.skip(f"{outcomes.NOT_APPLICABLE}peak memory per rank needs an accelerator's allocator statistics; "
                    "CPU has none")
    gpipe = step_cost_data(on_ranks, behaviour_cache, "ScheduleGPipe", world)
    ofob = step_cost_data(on_ranks, behaviour_cache, "Schedule1F1B", world)
    n_mb = ofob[0]["n_mb"]
    assert n_mb >= bounds.MEMORY_ORDER_MIN_RATIO * world, f"m={n_mb} < 2p={2 * world}: the rule does not apply"
    for g, o in zip(gpipe, ofob, strict=True):
        assert o["peak_bytes"] < g["peak_bytes"], (
            f"Schedule1F1B: rank {o['rank']}, stage {o['stages'][0]}: peak memory {o['peak_bytes']} bytes, GPipe "
            f"{g['peak_bytes']} bytes (m={n_mb}, p={world}); rule: 1F1B's peak memory per rank stays below GPipe's "
            "when m >= 2p")
