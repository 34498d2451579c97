"""Test-only checks of the rank pool's own failure handling: passed to `conformance run` by path, never shipped.

The project's tests (tests/test_pool_e2e.py) run them through `conformance run` and read the JUnit: each fault
must become the right outcome, and the check after it must pass on fresh or surviving ranks.
"""


def test_fault_hang_schedule(on_ranks):
    """Every rank hangs inside ScheduleGPipe.step: fails at the timeout with every rank's stack."""
    on_ranks(2, "faulty_schedule", schedule="ScheduleGPipe", fault="hang")


def test_fault_after_hang(on_ranks):
    on_ranks(2, "ping")


def test_fault_die(on_ranks):
    """Rank 1 calls os._exit(3) mid-check."""
    on_ranks(2, "fault_die", ranks=[1], code=3)


def test_fault_after_die(on_ranks):
    on_ranks(2, "ping")


def test_fault_segfault(on_ranks):
    """Rank 1 segfaults mid-check."""
    on_ranks(2, "fault_signal", ranks=[1], signal="SIGSEGV")


def test_fault_after_segfault(on_ranks):
    on_ranks(2, "ping")


def test_fault_skip(on_ranks):
    """Every rank skips: a skip, never a pass."""
    on_ranks(2, "fault_skip", reason="not applicable: skipping on purpose")


def test_fault_half_skip(on_ranks):
    """Only rank 0 skips: the ranks disagree, which is a failure."""
    on_ranks(2, "fault_skip", ranks=[0])


def test_fault_fail(on_ranks):
    """Rank 1 fails an assertion: the check fails naming rank 1."""
    on_ranks(2, "fault_fail", ranks=[1], message="rank one is wrong on purpose")


def test_fault_drop_microbatch(on_ranks):
    """The last stage loses one microbatch loss: the schedule check must fail."""
    on_ranks(2, "faulty_schedule", schedule="Schedule1F1B", fault="drop_microbatch")


def test_fault_corrupt_grad(on_ranks):
    """One gradient per stage is scaled by 1.5 after step(): the schedule check must fail."""
    on_ranks(2, "faulty_schedule", schedule="ScheduleInterleaved1F1B", fault="corrupt_grad")


def test_fault_last(on_ranks):
    on_ranks(2, "schedule", schedule="ScheduleGPipe")
