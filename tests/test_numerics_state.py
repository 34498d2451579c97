"""Global numerics state: the snapshot sees every kind of change, and each area's check catches a build that
changes it (single-process checks through checkfaults, the schedule checks through a rank plugin)."""

from __future__ import annotations

import pytest

import checkfaults

torch = pytest.importorskip("torch")

from conformance.suite import numerics_state as ns  # noqa: E402 - after the torch guard
from conformance.torchenv import device  # noqa: E402


@pytest.fixture
def pinned():
    """The suite's own starting state, restored after the test changes it."""
    device.pin_numerics()
    yield ns.snapshot(["cpu"])
    ns.restore_defaults()


def _set_new_api_tf32():
    torch.backends.cuda.matmul.fp32_precision = "tf32"


CHANGES = {
    "legacy matmul TF32": (lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
                           "torch.backends.cuda.matmul.allow_tf32"),
    "cuDNN TF32": (lambda: setattr(torch.backends.cudnn, "allow_tf32", True), "torch.backends.cudnn.allow_tf32"),
    "matmul precision": (lambda: torch.set_float32_matmul_precision("medium"),
                         "torch.get_float32_matmul_precision()"),
    "fp32_precision API": (_set_new_api_tf32, "torch.backends.cuda.matmul.fp32_precision"),
    "cuDNN benchmark": (lambda: setattr(torch.backends.cudnn, "benchmark", True), "torch.backends.cudnn.benchmark"),
    "cuDNN deterministic": (lambda: setattr(torch.backends.cudnn, "deterministic", True),
                            "torch.backends.cudnn.deterministic"),
    "deterministic algorithms": (lambda: torch.use_deterministic_algorithms(True),
                                 "torch.are_deterministic_algorithms_enabled()"),
    "default dtype": (lambda: torch.set_default_dtype(torch.float64), "torch.get_default_dtype()"),
    "grad mode": (lambda: torch.set_grad_enabled(False), "torch.is_grad_enabled()"),
    "cpu autocast": (lambda: torch.set_autocast_enabled("cpu", True), "torch.is_autocast_enabled('cpu')"),
    "cuda autocast dtype": (lambda: torch.set_autocast_dtype("cuda", torch.bfloat16),
                            "torch.get_autocast_dtype('cuda')"),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_snapshot_sees_the_change_and_restore_undoes_it(pinned, what):
    change, name = CHANGES[what]
    if name not in pinned:
        pytest.skip(f"this torch has no {name}")
    change()
    changed = ns.compare(pinned, ns.snapshot(["cpu"]))
    assert any(line.startswith(f"{name}: ") for line in changed), changed
    if what == "cuda autocast dtype":
        torch.set_autocast_dtype("cuda", torch.float16)  # restore_defaults leaves autocast dtypes alone
    ns.restore_defaults()
    assert ns.compare(pinned, ns.snapshot(["cpu"])) == []


def test_unchanged_state_compares_equal_and_the_message_names_every_change(pinned):
    assert ns.compare(pinned, ns.snapshot(["cpu"])) == []
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    with pytest.raises(AssertionError) as err:
        ns.assert_unchanged("Pipe.forward", pinned, ns.snapshot(["cpu"]), "after the forward", "cpu")
    text = str(err.value)
    assert text.startswith("Pipe.forward: changed torch's global numerics state after the forward on cpu: ")
    assert "torch.get_default_dtype(): torch.float32 -> torch.float64" in text
    assert "torch.is_grad_enabled(): True -> False" in text


# Faults beyond the catalogue's one per check (tests/support/checkfaults.py CASES): a change only while the stages
# run, a change made while tracing, a flag set by the deferred weight step.
ALTERNATES = [
    ({"test_split.py::test_numerics_state_unchanged": "tf32_inside_forward"},
     ("Pipe.forward: changed torch's global numerics state inside the forward of stage 0",
      "torch.backends.cuda.matmul.fp32_precision: ieee -> tf32")),
    ({"test_split.py::test_numerics_state_unchanged": "default_dtype_left",
      "test_backward.py::test_numerics_state_unchanged": "deterministic_left_on"},
     ("pipeline: changed torch's global numerics state while splitting",
      "torch.get_default_dtype(): torch.float32 -> torch.float64")),
]


@pytest.mark.parametrize("faults,says", ALTERNATES, ids=["tf32_inside_forward", "default_dtype+deterministic"])
def test_numerics_checks_catch_other_faults(faults, says, tmp_path):
    outcomes, output = checkfaults.run_checks(list(faults), tmp_path, faults)
    for check in faults:
        assert outcomes[check].outcome == "failed", f"{check}: {outcomes[check]}\n{output[-3000:]}"
    split = outcomes["test_split.py::test_numerics_state_unchanged"].message
    for fragment in says:
        assert fragment in split, split[-2000:]
    if "test_backward.py::test_numerics_state_unchanged" in faults:
        backward = outcomes["test_backward.py::test_numerics_state_unchanged"].message
        assert "torch.are_deterministic_algorithms_enabled(): False -> True" in backward, backward[-2000:]
        assert "torch.backends.cudnn.benchmark: False -> True" in backward


def test_schedule_numerics_checks_catch_a_rank_that_changes_the_state(tmp_path):
    from suite_run import run_suite

    with_faults = {"CONFORMANCE_RANK_PLUGINS": "pool_faults"}

    select = "test_schedule_numerics_state and (GPipe or ZBV)"
    for fault, says in (("tf32_left_on", "changed torch's global numerics state on rank 0 of 2 on cpu: "
                                         "torch.backends.cuda.matmul.allow_tf32: False -> True"),
                        ("tf32_inside_step", "ran modules under a changed global numerics state on rank 0 of 2 on cpu:"
                                             " torch.backends.cuda.matmul.allow_tf32: False -> True (in "),
                        ("default_dtype_left", "torch.get_default_dtype(): torch.float32 -> torch.float64")):
        res = run_suite(tmp_path, select, **with_faults, CONFORMANCE_TEST_SCHEDULE_FAULT=fault)
        numerics = {k: v for k, v in res.items() if k.startswith("test_schedule_numerics_state")}
        assert set(numerics) == {"test_schedule_numerics_state[ScheduleGPipe-world2]",
                                 "test_schedule_numerics_state[ScheduleZBVZeroBubble-world2]"}, res
        for name, (outcome, text, _) in numerics.items():
            assert outcome == "failure", (name, outcome, text[-2000:])
            schedule = name.split("[")[1].split("-")[0]
            head = text.removeprefix("Failed: ").splitlines()[0]
            assert head.startswith(f"rank 0: AssertionError: {schedule}.step: "), head
            assert says in head
            assert "on rank 1 of 2" in text, text[-2000:]
    clean = run_suite(tmp_path, "test_schedule_numerics_state and world2")
    assert len(clean) == 7, clean
    assert all(v[0] == "passed" for v in clean.values()), clean
