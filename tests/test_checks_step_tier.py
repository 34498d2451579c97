"""The realistic step-cost tier in the default CPU run: every check collected, each not applicable with the reason,
decided on the pytest side before any rank is asked for anything (the CPU suite's budget does not pay for it)."""

from __future__ import annotations

from suite_run import run_suite

SCHEDULES = 7


def test_every_tier_check_is_not_applicable_on_cpu_without_running_anything(tmp_path):
    res = run_suite(tmp_path, "test_step_tier")
    assert len(res) == SCHEDULES * 2 and {n.rsplit("-", 1)[1] for n in res} == {"world2]", "world4]"}, sorted(res)
    for name, (outcome, text, _) in res.items():
        assert outcome == "skipped" and "not applicable: the realistic step-cost tier" in text, (name, text[:500])
