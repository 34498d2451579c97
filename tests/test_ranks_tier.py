"""The realistic tier's rank side at a toy size on CPU: stages build and run, every timed step is traced with its
window, and the pytest side reports the median step's time and trace together; on CPU the tier is not applicable."""

from __future__ import annotations

import json
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from conformance.pool.scenarios import RankContext, Skip  # noqa: E402
from conformance.report import decompose  # noqa: E402
from conformance.suite.checks.test_behaviour import compact_trace, median_step, summarize_cost  # noqa: E402
from conformance.suite.ranks import behaviour, tier  # noqa: E402
from conformance.torchenv import profiles  # noqa: E402

TOY = {"d_hid": 32, "heads": 4, "seq": 8, "n_microbatches": 4, "dtype": "fp32"}  # bf16 on CPU: 0.2 s a step


class FakeAccelerator:
    """The allocator and synchronisation calls `timed_steps` makes, on CPU (no device to wait for)."""

    def synchronize(self) -> None:
        pass

    def reset_peak_memory_stats(self) -> None:
        pass

    def memory_allocated(self) -> int:
        return 0

    def max_memory_allocated(self) -> int:
        return 7

    def empty_cache(self) -> None:
        pass

    def get_device_name(self) -> str:
        return "fake"


@pytest.fixture(scope="module")
def ctx():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield RankContext(0, 1, profiles.CPU, "cpu", "gloo", in_process=True)
    dist.destroy_process_group()


@pytest.mark.parametrize("schedule", ["Schedule1F1B", "ScheduleZBVZeroBubble"])
def test_timed_steps_trace_every_step_and_the_table_and_trace_show_the_same_step(ctx, schedule):
    import torch.distributed.pipelining as pp

    if not hasattr(pp, schedule):
        pytest.skip(f"this build has no {schedule}")
    run = tier.prepare(ctx, {**tier.TIER, **TOY, "schedule": schedule})
    assert [len(st.submod) for st in run.stages] == [4 // len(run.stages)] * len(run.stages)
    data = behaviour.timed_steps(ctx, run, FakeAccelerator(), warmup=1, steps=3)
    assert len(data["step_ms"]) == len(data["traces"]) == len(data["windows"]) == 3
    kinds = {"Schedule1F1B": {"F", "B"}, "ScheduleZBVZeroBubble": {"F", "I", "W"}}[schedule]
    for acts, (w0, w1) in zip(data["traces"], data["windows"], strict=True):
        assert {a[1] for a in acts} >= kinds and len(acts) >= 2 * 4 * len(run.stages)
        assert all(w0 <= a[3] <= a[4] <= w1 for a in acts)  # every action inside its step's window
    i, step = median_step([data])
    cost = summarize_cost(schedule, 1, [data])
    assert cost.traced_step == i and cost.traced_step_ms == cost.step_ms  # 3 steps: the median is one
    trace = json.loads(compact_trace(schedule, 1, step))
    assert trace["window"]["0"][0] == 0 and len(trace["ranks"]["0"]) == len(data["traces"][i])
    parts = decompose.decompose(trace)["0"]
    assert sum(parts[k] for k in decompose.PARTS) == pytest.approx(parts["window"])
    assert decompose.replay_trace(trace) is not None


def test_the_tier_is_not_applicable_on_cpu_before_building_anything(ctx):
    with pytest.raises(Skip, match="not applicable: step cost is measured on accelerators only"):
        tier.run_step_tier(ctx, {"schedule": "Schedule1F1B"})


def test_the_tier_model_is_the_realistic_size():
    assert tier.TIER["d_hid"] >= 4096 and tier.TIER["dtype"] == "bf16"
    assert tier.TIER["n_microbatches"] >= max(16, 2 * 4)  # m >= 2p at world 4 and m >= 16
    assert "SDPA" in tier.describe(tier.TIER)
