"""The check-id grammar `repro` understands: each covered check function, its parametrization axes and what each
id means as scenario parameters (schedule, world, dtype, model variant, mesh, microbatches).

Mirrors the parametrizations in `conformance/suite/checks/test_*.py` from the suite's own constants (a test holds the
two in step by collecting the suite); stdlib only.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from conformance.repro.commandline import normalize
from conformance.suite.ranks.composition import SCHEDULES as COMPOSITION_SCHEDULES
from conformance.suite.ranks.graphs import (
    COMPILED_PLACEMENTS,
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
from conformance.suite.ranks.schedules import LOOPED, SCHEDULES, SINGLE, V_SHAPED

WORLDS = ("world1", "world2", "world4")
DTYPES = ("fp32", "bf16", "fp16")
BEHAVIOUR_MODES = ("train", "eval", "return_outputs_false")
# Mirrors test_composition.py's case lists (kept short there for the CPU budget).
DDP_CASES = ("ScheduleGPipe-world2", "Schedule1F1B-world2", "Schedule1F1B-world4")
MIXED_PRECISION_SCHEDULES = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B")
COMPILE_SCHEDULES = MIXED_PRECISION_SCHEDULES
CONSTRUCTOR_ERRORS = ("Schedule1F1B-too_few_microbatches", "ScheduleDualPipeV-too_few_microbatches",
                      *[f"{s}-{c}" for s in V_SHAPED for c in ("one_local_stage", "three_local_stages")])


@dataclass(frozen=True)
class Scenario:
    """One check id read as the parameters of its scenario."""

    check_id: str
    area: str  # schedules, composition, behaviour, split, training, graphs (the split backward)
    test: str  # the check function
    params: dict = field(default_factory=dict)

    @property
    def world(self) -> int:
        return int(self.params.get("world", 1))


@dataclass(frozen=True)
class Family:
    """A check function: its module, the axes of its parametrization in id order, and how an id maps to params."""

    module: str
    test: str
    area: str
    axes: tuple[tuple[str, ...], ...]  # values of each id part, in the order pytest joins them with "-"
    to_params: Callable[[tuple[str, ...]], dict]

    def ids(self) -> Iterator[str]:
        if not self.axes:
            yield f"{self.module}::{self.test}"
            return
        for parts in itertools.product(*self.axes):
            yield f"{self.module}::{self.test}[{'-'.join(parts)}]"


def _w(world_id: str) -> int:
    return int(world_id.removeprefix("world"))


def _schedule_family(test: str, worlds: tuple[str, ...], extra: dict) -> Family:
    return Family("test_schedules.py", test, "schedules", (SCHEDULES, worlds),
                  lambda p: {"schedule": p[0], "world": _w(p[1]), **extra})


def _behaviour_family(test: str, rule: str) -> Family:
    return Family("test_behaviour.py", test, "behaviour", (SCHEDULES, WORLDS),
                  lambda p: {"schedule": p[0], "world": _w(p[1]), "rule": rule, "mode": "train"})


def _composition_family(test: str, schedules: tuple[str, ...], worlds: tuple[str, ...], extra: dict) -> Family:
    return Family("test_composition.py", test, "composition", (schedules, worlds),
                  lambda p: {"schedule": p[0], "world": _w(p[1]), "reshard": False, "mixed_precision": False,
                             **extra})


def _training_family(test: str, cases: tuple[str, ...], prop: str) -> Family:
    """A training check: `[case-schedule-world]`, the rank side's property `<prop>-<case>`."""
    return Family("test_training.py", test, "training", (cases, SCHEDULES, WORLDS),
                  lambda p: {"case": f"{prop}-{p[0]}", "schedule": p[1], "world": _w(p[2])})


FAMILIES: tuple[Family, ...] = (
    Family("test_schedules.py", "test_schedule", "schedules", (SCHEDULES, WORLDS, DTYPES),
           lambda p: {"schedule": p[0], "world": _w(p[1]), "dtype": p[2]}),
    _schedule_family("test_schedule_summed_grads", ("world2",), {"scale_grads": False}),
    _schedule_family("test_schedule_iterations", ("world2",), {"iterations": 3}),
    _schedule_family("test_schedule_eval", WORLDS, {"mode": "eval"}),
    _schedule_family("test_schedule_tracer", WORLDS, {"builder": "tracer"}),
    _schedule_family("test_schedule_kwargs", ("world2",), {"kwargs": True}),
    Family("test_schedules.py", "test_schedule_constructor_error", "schedules", (CONSTRUCTOR_ERRORS, ("world2",)),
           lambda p: {"schedule": p[0].partition("-")[0], "case": p[0].partition("-")[2], "world": _w(p[1]),
                      "constructor_error": True}),
    Family("test_composition.py", "test_fully_shard", "composition",
           (COMPOSITION_SCHEDULES, ("reshard", "no_reshard"), ("world2", "world4")),
           lambda p: {"schedule": p[0], "kind": "fsdp", "reshard": p[1] == "reshard", "world": _w(p[2]),
                      "mixed_precision": False}),
    _composition_family("test_fully_shard_mixed_precision", MIXED_PRECISION_SCHEDULES, ("world2",),
                        {"kind": "fsdp", "mixed_precision": True}),
    Family("test_composition.py", "test_distributed_data_parallel", "composition", (DDP_CASES,),
           lambda p: {"schedule": p[0].partition("-")[0], "world": _w(p[0].partition("-")[2]), "kind": "ddp",
                      "reshard": False, "mixed_precision": False}),
    _composition_family("test_tensor_parallel", COMPOSITION_SCHEDULES, ("world2", "world4"), {"kind": "tp"}),
    _composition_family("test_checkpoint", COMPOSITION_SCHEDULES, ("world2", "world4"), {"kind": "checkpoint"}),
    _composition_family("test_compile", COMPILE_SCHEDULES, ("world2",), {"kind": "compile"}),
    _behaviour_family("test_behaviour_dependencies", "dependencies"),
    _behaviour_family("test_behaviour_activation_bound", "activation_bound"),
    _behaviour_family("test_behaviour_declared_plan", "declared_plan"),
    _behaviour_family("test_behaviour_zero_bubble_split", "zero_bubble_split"),
    Family("test_behaviour.py", "test_behaviour_no_growth", "behaviour", (SCHEDULES, WORLDS, BEHAVIOUR_MODES),
           lambda p: {"schedule": p[0], "world": _w(p[1]), "rule": "no_growth", "mode": p[2]}),
    Family("test_graphs.py", "test_fsdp_many_local_stages", "composition", (MANY_STAGE_SCHEDULES, ("world2",)),
           lambda p: {"schedule": p[0], "world": _w(p[1]), "kind": "fsdp", "reshard": True, "mixed_precision": False,
                      "local_stages": LOCAL_STAGES}),
    Family("test_graphs.py", "test_receive_order", "schedules", (tuple(RECV_OPTIONS), RECV_SCHEDULES),
           lambda p: {"schedule": p[1], "world": 2, "option": p[0]}),
    Family("test_graphs.py", "test_plan_csv_round_trip", "schedules", (PLAN_SCHEDULES,),
           lambda p: {"schedule": p[0], "world": 2}),
    Family("test_graphs.py", "test_custom_action_handlers", "schedules", (PLAN_SCHEDULES,),
           lambda p: {"schedule": p[0], "world": 2}),
    Family("test_graphs.py", "test_dtensor_activations", "composition", (("static", "runtime"), ("world2", "world4")),
           lambda p: {"metadata": p[0], "world": _w(p[1]), "kind": "dtensor"}),
    # world: test_graphs.py's RELAYOUT_WORLDS, the larger pipeline degree of the two layouts
    Family("test_graphs.py", "test_checkpoint_relayout", "composition", (tuple(RELAYOUTS),),
           lambda p: {"case": p[0], "world": max(spec[1] for spec in RELAYOUTS[p[0]]), "kind": "relayout"}),
    Family("test_graphs.py", "test_zero_bubble_refuses_compiled_stages", "schedules",
           (ZERO_BUBBLE, COMPILED_PLACEMENTS), lambda p: {"schedule": p[0], "placement": p[1], "world": 1}),
    _training_family("test_training_accumulation", ("scaled", "summed"), "accumulation"),
    _training_family("test_training_unused_input", ("some", "never"), "unused_input"),
    _training_family("test_training_eval", ("first", "between", "return_outputs_false", "loss_kwargs"), "eval"),
    _training_family("test_training_losses_released", ("step", "eval"), "losses_released"),
    _training_family("test_training_presplit", ("step", "eval", "mismatch"), "presplit"),
    _training_family("test_training_metadata", ("static", "buffers", "rng"), "metadata"),
    Family("test_training.py", "test_training_seq_len", "training", (SCHEDULES, ("world1",)),
           lambda p: {"case": "seq_len", "schedule": p[0], "world": _w(p[1])}),
    Family("test_graphs.py", "test_split_backward_helpers", "graphs", (HELPER_MODELS, ("fp32", "bf16")),
           lambda p: {"model": p[0], "dtype": p[1], "world": 1}),
    Family("test_graphs.py", "test_split_backward_schedule", "graphs", (SPLIT_MODELS, ZERO_BUBBLE, ("fp32", "bf16")),
           lambda p: {"model": p[0], "schedule": p[1], "dtype": p[2], "world": 2}),
    Family("test_split.py", "test_split_points_at_edges", "split", (("BEGINNING-layers.0", "END-layers.7"),),
           lambda p: {"case": "edges", "point": p[0].partition("-")[0], "layer": p[0].partition("-")[2]}),
    Family("test_split.py", "test_pipeline_twice_same_module", "split", (), lambda p: {"case": "twice"}),
    Family("test_split.py", "test_split_points", "split",
           (tuple(f"{pt}-{n}" for pt in ("BEGINNING", "END") for n in (2, 4, 8)),),
           lambda p: {"case": "points", "point": p[0].partition("-")[0], "n_stages": int(p[0].partition("-")[2])}),
)

# Checks that exist but have no standalone reproduction (yet), with why: `repro` names the reason.
UNCOVERED: dict[str, str] = {
    "test_schedules.py::test_schedule_numerics_state": "global numerics state is judged by the suite's snapshot table",
    "test_composition.py::test_distributed_checkpoint": "distributed checkpoint round trips are not generated yet",
    "test_behaviour.py::test_step_cost": "step cost is a measurement on accelerators, never a pass/fail result",
    "test_behaviour.py::test_behaviour_memory_order": "memory order needs an accelerator's allocator statistics",
    "test_identity.py::test_build_identity": "build identity is about this project's env, not pipelining",
}
# Check modules added after repro whose checks have no reproduction yet: `repro` says so instead of guessing.
UNCOVERED_AREAS: dict[str, str] = {
    "test_step_tier.py": "the step tier area has no script builder yet",
}
# Check functions repro covers only in part: the cases it has no builder for, by what it says about them.
PARTIAL: dict[str, str] = {}
COVERS = ("the schedules, composition, behaviour, training and graphs areas and the split checks "
          "(README: From a red cell to an upstream report)")
CHECKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suite", "checks")

_INDEX: dict[str, tuple[Family, tuple[str, ...]]] = {}


def _index() -> dict[str, tuple[Family, tuple[str, ...]]]:
    if not _INDEX:
        for fam in FAMILIES:
            for parts in itertools.product(*fam.axes) if fam.axes else [()]:
                cid = f"{fam.module}::{fam.test}" + (f"[{'-'.join(parts)}]" if parts else "")
                _INDEX[cid] = (fam, tuple(parts))
    return _INDEX


def covered_ids() -> list[str]:
    """Every check id `repro` can write a reproduction for, in grammar order."""
    return list(_index())


def parse(check_id: str) -> Scenario | None:
    """The scenario of a covered check id, or None (see `why_not`)."""
    cid = normalize(check_id)
    hit = _index().get(cid)
    if hit is None:
        return None
    fam, parts = hit
    params = fam.to_params(parts)
    if fam.area == "schedules":
        params.setdefault("layout", "single" if params["schedule"] in SINGLE else
                          "looped" if params["schedule"] in LOOPED else "v")
    return Scenario(cid, fam.area, fam.test, params)


def _defined(function: str) -> bool:
    """Whether `module::test_name` is a check function in the suite's check modules (read as text, not imported)."""
    module, _, name = function.partition("::")
    path = os.path.join(CHECKS_DIR, os.path.basename(module))
    if not (module.startswith("test_") and module.endswith(".py") and name and os.path.isfile(path)):
        return False
    with open(path, encoding="utf-8") as f:
        return re.search(rf"^def {re.escape(name)}\(", f.read(), re.MULTILINE) is not None


def why_not(check_id: str) -> str:
    """One line: why `check_id` has no reproduction (not covered, or no such check and the closest ids)."""
    cid = normalize(check_id)
    function = cid.partition("[")[0]
    if function in UNCOVERED:
        return f"{cid}: repro does not cover this check ({UNCOVERED[function]})"
    if function not in {f"{f.module}::{f.test}" for f in FAMILIES} and _defined(function):
        why = UNCOVERED_AREAS.get(function.partition("::")[0], f"it covers {COVERS}")
        return f"{cid}: repro does not cover {function} ({why})"
    near = difflib.get_close_matches(cid, covered_ids(), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(near)}" if near else ""
    if function in PARTIAL and _defined(function):
        return f"{cid}: repro covers {function} {PARTIAL[function]}{hint}"
    return f"no check {cid!r}{hint}"
