"""Training loops: the paths trainers run, against the unsplit model (accumulation across steps, stage inputs without
gradient, eval/train sequences, pre-split microbatches, shape metadata).

One rank-side task per schedule x world (`conformance.suite.ranks.training`) runs the whole sequence once and
judges every property where the tensors are; each check id reads its own property's verdict from the cached
result, so one broken property fails its own check only. Ids put the case first (`[scaled-ScheduleGPipe-world2]`),
so a known upstream behaviour that every schedule shares is one expectation prefix. Where a rank holds two
consecutive stages, eval() itself raises upstream (expectations/all.txt): the world-1 run (in-process) shows whether
it does, and the multi-rank eval properties of that layout are then not applicable instead of hanging the ranks
until the pool restarts them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.protocol import outcomes
from conformance.suite.applicable import require
from conformance.suite.ranks.common import world_id
from conformance.suite.ranks.schedules import SCHEDULES, stage_ids
from conformance.suite.results_cache import Cache

WORLDS = [1, 2, 4]
SCENARIO = "training"


@pytest.fixture(scope="session")
def training_cache() -> Cache:
    return Cache()


def adjacent_local_stages(schedule: str, world: int) -> bool:
    """Does some rank hold two consecutive stages (the V schedules' middle rank; looped schedules at world 1)?"""
    return any(abs(a - b) == 1 for r in range(world) for a in stage_ids(schedule, r, world)
               for b in stage_ids(schedule, r, world))


@pytest.fixture
def training(on_ranks, training_cache: Cache) -> Callable[[str, int], list[dict]]:
    """`training(schedule, world)`: every rank's verdicts of the one training task of that schedule x world."""

    def get(schedule: str, world: int) -> list[dict]:
        __tracebackhide__ = True
        params: dict[str, Any] = {"schedule": schedule}
        if world > 1 and adjacent_local_stages(schedule, world):
            why = eval_raises(training_cache, on_ranks, schedule)
            if why:
                params["eval_unusable"] = why
        return training_cache.get((SCENARIO, schedule, world), lambda: on_ranks(world, SCENARIO, **params))

    return get


def eval_raises(cache: Cache, on_ranks, schedule: str) -> str:
    """The not-applicable reason when eval() raises with two consecutive stages on one rank, measured at world 1."""
    try:
        data = cache.get((SCENARIO, schedule, 1), lambda: on_ranks(1, SCENARIO, schedule=schedule))
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        return outcomes.not_applicable(f"the world-1 run of {schedule} failed, so eval() is not tried on more "
                                       f"ranks ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})")
    error = data[0]["props"]["eval-first"].get("error")
    if not error:
        return ""
    return outcomes.not_applicable(f"eval() itself raises with two consecutive stages on one rank "
                                   f"(test_training_eval[first-{schedule}-world1]: {error.splitlines()[0][:200]})")


def verdict(data: list[dict], prop: str) -> None:
    """Fail with every rank's mismatch or error, skip where every rank skipped, fail if nothing was compared."""
    __tracebackhide__ = True
    bad = [(d["rank"], v) for d in data for v in [d["props"][prop]] if "failed" in v or "error" in v]
    if bad:
        head = "; ".join(f"rank {r}: {(v.get('failed') or v['error']).splitlines()[0]}" for r, v in bad)
        body = "\n".join(f"===== rank {r} =====\n{v.get('failed') or v['error']}\n{v.get('traceback', '')}"
                         for r, v in bad)
        pytest.fail(f"{head}\n{body}", pytrace=False)
    skips = [d["props"][prop]["skip"] for d in data if "skip" in d["props"][prop]]
    if skips:
        if len(skips) == len(data) and len(set(skips)) == 1:
            pytest.skip(skips[0])
        pytest.skip(f"not measured on every rank: {'; '.join(sorted(set(skips)))}")
    compared = sum(d["props"][prop]["compared"] for d in data)
    if compared == 0:
        pytest.fail(f"{prop}: no rank compared anything", pytrace=False)


def check(training, schedule: str, world: int, prop: str, *apis: str) -> None:
    __tracebackhide__ = True
    require(schedule, *apis)
    verdict(training(schedule, world), prop)


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("scaling", ["scaled", "summed"])
def test_training_accumulation(training, schedule, world, scaling):
    """Two `step()` calls without `zero_grad` in between accumulate: the gradients equal the unsplit model's over
    both steps' microbatches, each step scaled as one step is (`scale_grads=True`: each step's mean, summed;
    `False`: the sum). Source: torchtitan#1733 (PR 1732 works around it in the trainer)."""
    check(training, schedule, world, f"accumulation-{scaling}", *(("scale_grads",) if scaling == "summed" else ()))


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("used", ["some", "never"])
def test_training_unused_input(training, schedule, world, used):
    """A stage input that gets no gradient on some (`some`) or all (`never`) microbatches, as conditional and MoE
    layers produce: the unsplit model's gradients, and no gradient where the unsplit model has none (a zero-filled
    gradient there is a finding: weight decay and momentum move a parameter the unsplit model leaves alone).
    Sources: torchtitan#2748, pytorch#152827, pytorch#182182."""
    check(training, schedule, world, f"unused_input-{used}")


EVAL_APIS = {"first": ("eval",), "between": ("eval",), "return_outputs_false": ("eval", "return_outputs"),
             "loss_kwargs": ("eval", "loss_kwargs")}


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("case", list(EVAL_APIS))
def test_training_eval(training, schedule, world, case):
    """eval/train sequences: `eval()` as the very first call (pytorch#162822), step -> eval -> step (eval leaves
    the gradients the steps left and the next step is exact), eval with `return_outputs=False` and with
    `loss_kwargs`: the unsplit model's losses and outputs, no gradient written (docs: eval() disables backward)."""
    check(training, schedule, world, f"eval-{case}", *EVAL_APIS[case])


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("mode", ["step", "eval"])
def test_training_losses_released(training, schedule, world, mode):
    """The `losses` list a step (or eval) fills holds no autograd graph with saved tensors afterwards: a trainer
    that keeps or aggregates the losses must not keep every microbatch's activations alive (torchtitan PR 4430)."""
    check(training, schedule, world, f"losses_released-{mode}", *(("eval",) if mode == "eval" else ()))


PRESPLIT_APIS = {"step": ("arg_mbs", "target_mbs"), "eval": ("eval", "arg_mbs", "target_mbs"),
                 "mismatch": ("arg_mbs", "kwarg_mbs")}


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("case", list(PRESPLIT_APIS))
def test_training_presplit(training, schedule, world, case):
    """Pre-split microbatches (`arg_mbs`, `target_mbs` on step and eval) give the numbers of the schedule's own
    split; containers of the wrong length are refused with ValueError and of the wrong type with TypeError on
    every rank before any communication (step()/eval() docstrings, torch 2.14)."""
    check(training, schedule, world, f"presplit-{case}", *PRESPLIT_APIS[case])


@pytest.mark.parametrize("world", WORLDS, ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("case", ["static", "buffers", "rng"])
def test_training_metadata(training, schedule, world, case):
    """Shape metadata: stages given `input_args`/`output_args` give the numbers of runtime inference (`static`);
    runtime inference leaves module buffers (BatchNorm running stats, a call counter: `buffers`) and the random
    generator (`rng`) as the step's own forwards leave them (torch 2.14 backs buffers up around it; pytorch
    stage.py `_pre_metadata_inference_backup`)."""
    check(training, schedule, world, f"metadata-{case}")


@pytest.mark.parametrize("world", [1], ids=world_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_training_seq_len(training, schedule, world):
    """A sequence length that changes between steps gives the unsplit model's numbers or a shape error, never wrong
    numbers (torchtitan#431). World 1 only (every stage local): across ranks the receiver keeps the first length's
    buffer, and the step hangs until gloo's timeout (torch 2.13) or gloo aborts the rank (2.14), which a shared
    rank pool cannot afford per check (README, "Training loops")."""
    check(training, schedule, world, "seq_len")
