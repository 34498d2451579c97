"""Step decomposition and plan replay on synthetic traces whose answers are computed by hand."""

from __future__ import annotations

import json
from html import escape

import pytest

from conformance.protocol.stepcost import STEPCOST, TRACE, Trace
from conformance.report import decompose as d
from conformance.report import html, jsonfmt, markdown, stepcost, timeline
from conformance.report import model as m
from conformance.report.matrix import build_matrix

# Two ranks, two stages, one microbatch (times in us). Rank 1's F0 starts 5 us after rank 0's F0 ended (a 10 us
# wait for it, then 5 us of overhead); rank 0's B0 waits 27 us for rank 1's B0, then starts 3 us after it; rank 1
# idles 33 us after its last action, rank 0 10 us. Both windows are the step: 70 us.
TWO_STAGES = {
    "schedule": "ScheduleGPipe", "world": 2, "unit": "us",
    "ranks": {"0": [[0, "F", 0, 0, 10], [0, "B", 0, 40, 60]],
              "1": [[1, "F", 0, 15, 25], [1, "B", 0, 27, 37]]},
    "window": {"0": [0, 70], "1": [0, 70]},
}


def test_decompose_splits_each_window_into_compute_wait_overhead_and_idle():
    parts = d.decompose(TWO_STAGES)
    assert parts["0"] == {"F": 10, "I": 0, "W": 0, "B": 20, "wait": 27, "overhead": 3, "idle": 10, "window": 70,
                          "actions": 2}
    assert parts["1"] == {"F": 10, "I": 0, "W": 0, "B": 10, "wait": 10, "overhead": 7, "idle": 33, "window": 70,
                          "actions": 2}
    for p in parts.values():
        assert sum(p[k] for k in d.PARTS) == pytest.approx(p["window"])


def test_replay_removes_every_gap_but_the_dependencies():
    # F0 on 0 (10), F0 on 1 (10), B0 on 1 (10), B0 on 0 (20): 50 us against the measured 70.
    assert d.replay_trace(TWO_STAGES) == 50
    got = d.analyse(TWO_STAGES)
    assert got["traced_step_ms"] == 0.07 and got["achievable_ms"] == 0.05
    assert got["efficiency"] == pytest.approx(50 / 70, abs=1e-4)
    assert d.analyse(TWO_STAGES, step_ms=0.1)["efficiency"] == 0.5  # the measured step, where the suite gave it


def test_without_windows_the_span_of_all_actions_is_every_rank_window():
    old = {k: v for k, v in TWO_STAGES.items() if k != "window"}
    parts = d.decompose(old)
    assert parts["0"]["window"] == parts["1"]["window"] == 60
    assert parts["1"]["idle"] == 23 and parts["0"]["idle"] == 0
    assert d.step_us(old) == 60


def test_a_dependency_ending_after_the_action_started_is_clock_skew_not_negative_time():
    skew = {"ranks": {"0": [[0, "F", 0, 0, 10]], "1": [[1, "F", 0, 8, 18]]}, "window": {"0": [0, 20], "1": [0, 20]}}
    parts = d.decompose(skew)["1"]
    assert parts["wait"] == 8 and parts["overhead"] == 0 and parts["idle"] == 2


def one_f_one_b(p: int, m: int) -> dict[str, list[d.Key]]:
    """1F1B's order per rank: p - 1 - r warm-up forwards, then one forward one backward, then the drain."""
    order = {}
    for r in range(p):
        warm = min(p - 1 - r, m)
        acts = [(r, "F", i) for i in range(warm)]
        f = warm
        for b in range(m):
            if f < m:
                acts.append((r, "F", f))
                f += 1
            acts.append((r, "B", b))
        order[str(r)] = acts
    return order


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8), (4, 4), (3, 7)])
def test_replay_of_1f1b_and_gpipe_gives_the_textbook_step(p, m):
    f, b = 3.0, 7.0
    dur = {(s, k, i): f if k == "F" else b for s in range(p) for k in "FB" for i in range(m)}
    assert d.replay(one_f_one_b(p, m), dur) == pytest.approx((m + p - 1) * (f + b))
    gpipe = {str(r): [(r, "F", i) for i in range(m)] + [(r, "B", i) for i in range(m)] for r in range(p)}
    assert d.replay(gpipe, dur) == pytest.approx((m + p - 1) * (f + b))


def test_replay_waits_for_i_before_w_and_for_the_next_stage_input_gradient():
    # One rank, two stages: F0.0 F0.1 I0.1 W0.1 I0.0 W0.0 with W first in the listing of rank 1's stage:
    # W after I on the same stage; I on stage 0 after I on stage 1.
    order = {"0": [(0, "F", 0), (1, "F", 0), (1, "I", 0), (0, "I", 0), (1, "W", 0), (0, "W", 0)]}
    dur = {k: 2.0 for k in order["0"]}
    assert d.replay(order, dur) == 12
    # Stage 0's I ahead of stage 1's I on one rank can never run: a deadlock, not a number.
    assert d.replay({"0": [(0, "F", 0), (1, "F", 0), (0, "I", 0), (1, "I", 0)]}, dur) is None
    assert d.replay({"0": [(0, "F", 0), (0, "F", 0)]}, dur) is None  # an action twice: no single order


def test_replay_across_ranks_deadlock_is_none():
    order = {"0": [(0, "B", 0), (0, "F", 0)], "1": [(1, "F", 0), (1, "B", 0)]}
    assert d.replay(order, {}) is None


SPLIT = {"ranks": {"0": [[0, "F", 0, 0, 4], [0, "I", 0, 4, 7], [0, "W", 0, 7, 12]]}}
FULL = {"ranks": {"0": [[0, "F", 0, 0, 4], [0, "B", 0, 4, 8]]}}


def test_inflation_is_i_plus_w_over_b_with_the_forward_as_a_sanity_figure():
    got = d.inflation(SPLIT, FULL)
    assert got == {"I_us": 3, "W_us": 5, "B_us": 4, "factor": 2.0, "F_ratio": 1.0}
    assert d.inflation(FULL, FULL) is None and d.inflation(SPLIT, SPLIT) is None


def test_enrich_adds_analysis_and_inflation_against_a_non_split_schedule_of_the_same_family_and_world():
    rows = [{"check": "test_step_tier[ScheduleInterleavedZeroBubble-world1]",
             "schedule": "ScheduleInterleavedZeroBubble", "world": 1, "step_ms": 0.012, "traced_step_ms": 0.024},
            {"check": "test_step_tier[ScheduleInterleaved1F1B-world1]", "schedule": "ScheduleInterleaved1F1B",
             "world": 1, "step_ms": 0.008},
            {"check": "test_step_cost[ScheduleInterleaved1F1B-world1]", "schedule": "ScheduleInterleaved1F1B",
             "world": 1, "step_ms": 0.008},
            {"check": "test_step_cost[Schedule1F1B-world2]", "schedule": "Schedule1F1B", "world": 2, "step_ms": 1.0}]
    traces = [("test_step_tier[ScheduleInterleavedZeroBubble-world1]", SPLIT),
              ("test_step_tier[ScheduleInterleaved1F1B-world1]", FULL)]
    got = d.enrich(rows, traces)
    split, full, other, untraced = got
    assert split["inflation"]["factor"] == 2.0 and split["inflation"]["reference"] == "ScheduleInterleaved1F1B"
    assert split["efficiency"] == 0.5  # achievable 12 us against the traced step's 24
    assert "inflation" not in full and full["achievable_ms"] == 0.008
    assert "decomposition" not in other and untraced == rows[3]


def test_ranking_orders_by_step_time_with_the_speed_up_over_1f1b():
    rows = [{"schedule": "Schedule1F1B", "world": 4, "step_ms": 20.0},
            {"schedule": "ScheduleZBVZeroBubble", "world": 4, "step_ms": 16.0},
            {"schedule": "ScheduleGPipe", "world": 4, "step_ms": 25.0},
            {"schedule": "ScheduleGPipe", "world": 2, "step_ms": 9.0}]
    got = d.ranking(rows)
    assert [r["schedule"] for r in got[4]] == ["ScheduleZBVZeroBubble", "Schedule1F1B", "ScheduleGPipe"]
    assert got[4][0]["vs_1f1b"] == 1.25 and got[4][2]["vs_1f1b"] == 0.8
    assert got[2][0]["vs_1f1b"] is None  # no 1F1B at world 2


def test_definitions_name_every_figure_the_report_shows():
    for word in ("Step time", "Ideal", "bubble", "wait", "overhead", "idle", "Achievable", "efficiency",
                 "Split inflation"):
        assert word in d.DEFINITIONS


# --- in the report: the JSON carries the analysis; HTML and Markdown show the columns, bars and definitions ---

def _env_with_tier() -> m.EnvResult:
    """An env with the step-cost model's 1F1B row and the realistic tier's ZBV row, each with its trace."""
    cost = {"schedule": "Schedule1F1B", "world": 2, "n_mb": 1, "steps": 7, "step_ms": 0.07, "ideal_ms": 0.05,
            "bubble": 0.29, "bubble_theory": 0.5, "peak_bytes": {"0": 2**30, "1": 2**30}, "device": "NVIDIA H100",
            "traced_step_ms": 0.07}
    tier = {**cost, "schedule": "ScheduleZBVZeroBubble", "world": 1, "traced_step_ms": 0.024,
            "model": "4 transformer blocks per rank"}
    props = {"env": "cuda",
             f"{STEPCOST}test_step_cost[Schedule1F1B-world2]": json.dumps(cost),
             f"{TRACE}test_step_cost[Schedule1F1B-world2]": json.dumps(TWO_STAGES),
             f"{STEPCOST}test_step_tier[ScheduleZBVZeroBubble-world1]": json.dumps(tier),
             f"{TRACE}test_step_tier[ScheduleZBVZeroBubble-world1]": json.dumps(SPLIT)}
    cells = [m.Cell("test_behaviour", "test_step_cost[Schedule1F1B-world2]", m.PASSED, 1.0)]
    return m.EnvResult("cuda", "cuda.xml", cases=cells, properties=props)


@pytest.fixture
def mat() -> m.Matrix:
    return build_matrix([_env_with_tier()], [], [], generated_at="2026-01-01T00:00:00+00:00", generator="c 9")


def test_json_rows_carry_the_decomposition_achievable_step_and_efficiency(mat):
    rows = {r["check"]: r for r in json.loads(jsonfmt.render_json(mat))["envs"][0]["stepcost"]}
    one = rows["test_step_cost[Schedule1F1B-world2]"]
    assert one["decomposition"]["0"] == {"F": 0.01, "I": 0.0, "W": 0.0, "B": 0.02, "wait": 0.027, "overhead": 0.003,
                                         "idle": 0.01, "window": 0.07, "actions": 2}
    assert one["achievable_ms"] == 0.05 and one["efficiency"] == pytest.approx(0.7143)
    tier = rows["test_step_tier[ScheduleZBVZeroBubble-world1]"]
    assert tier["model"] == "4 transformer blocks per rank" and tier["efficiency"] == 0.5
    assert "inflation" not in tier  # no non-split tier row at world 1 to compare with


def test_tables_per_family_with_the_new_columns_and_the_definitions(mat):
    col = mat.envs[0]
    captions = [c for c, _ in stepcost.tables(col.costs)]
    assert captions[0].startswith("step-cost model") and captions[1] == "realistic tier: 4 transformer blocks per rank"
    cells = stepcost.row_cells(col.costs[0][1], stepcost.analysis(col)[col.costs[0][0]])
    assert dict(zip(stepcost.HEAD, cells, strict=True))["efficiency"] == "71%"
    assert stepcost.row_cells(col.costs[0][1])[-3:] == ["—", "—", "—"]
    text = markdown.render_markdown(mat)
    assert "| achievable ms | efficiency | split inflation |" in text and "| 0.05 | 71% | — |" in text
    assert "Achievable = the executed order replayed" in text
    page = html.render_html(mat)
    assert escape(stepcost.DEFINITIONS) in page and page.count('<svg class="stack"') == 2
    assert "wait on another rank 0.02 ms (mean over ranks)" in page  # the 1F1B bar: mean wait (27 + 10) / 2 us


def test_the_timeline_spans_the_recorded_step_windows():
    trace = Trace.from_json(json.dumps(TWO_STAGES))
    assert trace is not None and timeline.span(trace) == (0, 70)
    old = Trace.from_json(json.dumps({k: v for k, v in TWO_STAGES.items() if k != "window"}))
    assert old is not None and timeline.span(old) == (0, 60)


def test_a_tier_row_is_never_compared_with_the_step_cost_models_row_of_the_same_schedule(mat):
    times = stepcost.step_times(mat.envs[0].costs)
    assert set(times) == {("Schedule1F1B", 2), ("ScheduleZBVZeroBubble [test_step_tier]", 1)}


def test_a_timeline_says_which_step_it_is(mat):
    page = html.render_html(mat)
    assert "the median of 7 traced steps: the table's 0.07 ms" in page  # the payload names its traced step
    old = _env_with_tier()
    key = f"{STEPCOST}test_step_cost[Schedule1F1B-world2]"
    old.properties[key] = json.dumps({k: v for k, v in json.loads(old.properties[key]).items()
                                      if k != "traced_step_ms"})
    page = html.render_html(build_matrix([old], [], [], generated_at="2026-01-01T00:00:00+00:00", generator="c 9"))
    assert "an older run's one traced step, the last; the table's 0.07 ms is the median of 7" in page
