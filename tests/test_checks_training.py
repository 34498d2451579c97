"""The training-loop checks end to end: on the healthy build they pass (or are the strict xfails the expectations
name), and each fault in tests/support/training_faults.py (a rank plugin) makes the check of its property fail.

One selection for most runs, GPipe at world 2 (one rank-side task serves all its ids); the sequence-length and static
metadata faults run at world 1 (Interleaved1F1B), the pre-split and buffer faults need torch >= 2.14 and run under
the 2.14 venv where this machine has one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import suite_run
from training_faults import TRAINING_FAULT_ENV as FAULT_ENV

SELECT = "test_training and ScheduleGPipe and world2"
PLUGIN = {"CONFORMANCE_RANK_PLUGINS": "training_faults"}
TORCH_214 = Path(os.environ.get("CONFORMANCE_TEST_TORCH214_PYTHON", "/work/venv-t214/bin/python"))


def ids(*names: str) -> set[str]:
    """`accumulation-summed` -> `test_training_accumulation[summed-ScheduleGPipe-world2]`."""
    return {f"test_training_{n.split('-', 1)[0]}[{n.split('-', 1)[1]}-ScheduleGPipe-world2]" for n in names}


# Properties the healthy build passes on every measured release (2.13-2.15); the rest of the selection is strict
# xfail or not applicable there (expectations/all.txt, README "Training loops").
HEALTHY = ids("accumulation-summed", "unused_input-some", "eval-first", "eval-return_outputs_false",
              "eval-loss_kwargs", "losses_released-step", "metadata-static", "metadata-rng")
HEALTHY_214 = HEALTHY | ids("presplit-step", "presplit-eval", "presplit-mismatch", "metadata-buffers")

# fault(s) -> the checks that must fail under them (2.13, this interpreter)
CASES = {
    "overwrite_grads": ids("accumulation-summed"),
    "drop_partial_grads": ids("unused_input-some"),
    "eval_drops_loss_kwargs,losses_keep_graph,inference_draws_rng": ids("eval-loss_kwargs", "losses_released-step",
                                                                        "metadata-rng"),
}
CASES_214 = {"presplit_reversed,presplit_wrong_error,inference_keeps_buffers": ids(
    "presplit-step", "presplit-eval", "presplit-mismatch", "metadata-buffers")}


def run(tmp_path: Path, python: str = sys.executable, **env: str) -> suite_run.Outcomes:
    return suite_run.run_suite(tmp_path, SELECT, check_timeout=90, python=python, **PLUGIN, **env)


def needs_214() -> str:
    if not TORCH_214.exists():
        pytest.skip(f"no torch 2.14 interpreter at {TORCH_214} (set CONFORMANCE_TEST_TORCH214_PYTHON)")
    return str(TORCH_214)


def assert_healthy(res: suite_run.Outcomes, must_pass: set[str]) -> None:
    assert must_pass <= set(res), sorted(must_pass - set(res))
    assert {n: res[n][0] for n in must_pass if res[n][0] != "passed"} == {}
    # the rest: strict xfails of known upstream behaviour or not applicable, never a failure
    others = {n: v[0] for n, v in res.items() if n not in must_pass and v[0] != "skipped"}
    assert others == {}, {n: res[n][1][:300] for n in others}


def assert_fails(res: suite_run.Outcomes, must_fail: set[str]) -> None:
    failed = {n for n, (outcome, *_) in res.items() if outcome == "failure"}
    assert must_fail <= failed, {n: (res.get(n, ("missing", "", 0.0))[0], res.get(n, ("", "", 0))[1][:500])
                                 for n in must_fail - failed}
    for name in must_fail:
        text = res[name][1]
        assert "ScheduleGPipe" in text and "rank" in text, text[:1000]  # says which schedule and rank


def test_healthy_build_passes_the_selection(tmp_path):
    assert_healthy(run(tmp_path), HEALTHY)


@pytest.mark.parametrize("faults", sorted(CASES))
def test_fault_fails_its_training_check(tmp_path, faults):
    assert_fails(run(tmp_path, **{FAULT_ENV: faults}), CASES[faults])


def test_healthy_214_passes_the_selection(tmp_path):
    assert_healthy(run(tmp_path, needs_214()), HEALTHY_214)


@pytest.mark.parametrize("faults", sorted(CASES_214))
def test_fault_fails_its_training_check_on_214(tmp_path, faults):
    assert_fails(run(tmp_path, needs_214(), **{FAULT_ENV: faults}), CASES_214[faults])


# World 1, where every stage is local: the sequence-length check runs only there, and static metadata with two stages
# on the rank fails cleanly under its fault (across ranks, a stage that wants no gradient leaves its peer waiting).
SCHEDULE_W1 = "ScheduleInterleaved1F1B"
W1 = {f"test_training_seq_len[{SCHEDULE_W1}-world1]", f"test_training_metadata[static-{SCHEDULE_W1}-world1]"}


@pytest.mark.parametrize("faults", ["", "static_meta_no_grad,stale_shapes"])
def test_static_metadata_and_sequence_length_at_world1(tmp_path, faults):
    res = suite_run.run_suite(tmp_path, f"test_training and {SCHEDULE_W1} and world1 and (seq_len or static)",
                              check_timeout=90, **PLUGIN, **({FAULT_ENV: faults} if faults else {}))
    assert set(res) == W1, sorted(res)
    want = "failure" if faults else "passed"
    assert {n: res[n][0] for n in W1 if res[n][0] != want} == {}, {n: res[n][1][:500] for n in W1}
    for name in W1 if faults else ():
        assert SCHEDULE_W1 in res[name][1] and "rank 0" in res[name][1], res[name][1][:1000]
