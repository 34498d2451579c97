"""The behaviour rules, judged on every rank's execution trace together (pure Python: runs in the pytest process).

Each rule takes the per-rank data of the `behaviour` scenario (`conformance.suite.ranks.behaviour`) and returns
the first violation as one message naming the schedule, rank, stage, the action that broke the rule and the rule,
or None. A trace action is (stage, kind, microbatch, start_ns, end_ns), kinds F, I, W, B, in the order the rank ran
them. Actions on one rank are ordered by that order; across ranks by time (one monotonic clock per host, exact;
device event clocks are trusted beyond their `clock_tolerance_ns`; across hosts only the per-rank rules apply).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.suite import bounds

ZERO_BUBBLE = ("ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")


@dataclass(frozen=True)
class Ran:
    """One executed action with where and when it ran."""

    stage: int
    kind: str
    mb: int
    rank: int
    seq: int  # position in its rank's order
    start: int
    end: int
    host: str
    tolerance: int = 0  # ns: how far this rank's clock may be off the others' (device event clocks)

    @property
    def name(self) -> str:
        return f"{self.stage}{self.kind}{self.mb}"


def executed(data: list[dict]) -> list[Ran]:
    """Every rank's actions, ordered by start time."""
    out = [Ran(s, k, mb, d["rank"], i, t0, t1, d.get("host", ""), d.get("clock_tolerance_ns", 0))
           for d in data for i, (s, k, mb, t0, t1) in enumerate(d["trace"])]
    return sorted(out, key=lambda a: (a.start, a.rank, a.seq))


def _before(a: Ran, b: Ran) -> bool | None:
    """Did `a` finish before `b` started? None when they ran on different hosts (no common clock)."""
    if a.rank == b.rank:
        return a.seq < b.seq
    if a.host != b.host:
        return None
    return a.end <= b.start + max(a.tolerance, b.tolerance)


def _msg(schedule: str, a: Ran, rule: str, detail: str) -> str:
    return f"{schedule}: rank {a.rank}, stage {a.stage}: action {a.name} {detail}; rule: {rule}"


def once_per_kind(schedule: str, actions: list[Ran], n_stages: int, n_mb: int) -> str | None:
    """Every (stage, microbatch) runs F once and its backward once: B, or I then W."""
    rule = "every (stage, microbatch) runs exactly once per kind (F once; B once, or I once and W once)"
    seen: dict[tuple[int, str, int], list[Ran]] = {}
    for a in actions:
        seen.setdefault((a.stage, a.kind, a.mb), []).append(a)
    for key, runs in seen.items():
        if len(runs) > 1:
            return _msg(schedule, runs[1], rule, f"ran {len(runs)} times")
        if not (0 <= key[0] < n_stages and 0 <= key[2] < n_mb):
            return _msg(schedule, runs[0], rule, f"is outside {n_stages} stages x {n_mb} microbatches")
    for s in range(n_stages):
        for mb in range(n_mb):
            kinds = {k for k in "FIWB" if (s, k, mb) in seen}
            if kinds not in ({"F", "B"}, {"F", "I", "W"}):
                found = sorted(kinds) or ["nothing"]
                return (f"{schedule}: stage {s}, microbatch {mb}: ran {', '.join(found)}; rule: {rule}")
    return None


def dependencies(schedule: str, data: list[dict], n_stages: int, n_mb: int) -> str | None:
    """Data dependencies: F(s) after F(s-1); B/I after F on the same stage; B/I(s) after B/I(s+1); W after I."""
    actions = executed(data)
    duplicate = once_per_kind(schedule, actions, n_stages, n_mb)
    if duplicate:
        return duplicate
    by_key = {(a.stage, a.kind, a.mb): a for a in actions}
    for a in actions:
        needs: list[tuple[tuple[int, str, int], str]] = []
        if a.kind == "F" and a.stage > 0:
            needs.append(((a.stage - 1, "F", a.mb), "a microbatch's F on stage s comes after its F on stage s-1"))
        if a.kind in ("B", "I"):
            needs.append(((a.stage, "F", a.mb), "B or I comes after F of the same microbatch on the same stage"))
            if a.stage + 1 < n_stages:
                nxt = (a.stage + 1, "B", a.mb) if (a.stage + 1, "B", a.mb) in by_key else (a.stage + 1, "I", a.mb)
                needs.append((nxt, "B or I on stage s comes after B or I of the same microbatch on stage s+1"))
        if a.kind == "W":
            needs.append(((a.stage, "I", a.mb), "W comes after I of the same microbatch on the same stage"))
        for key, rule in needs:
            dep = by_key.get(key)
            if dep is None:
                return _msg(schedule, a, rule, f"ran, but {key[0]}{key[1]}{key[2]} never ran")
            if _before(dep, a) is False:
                where = f"rank {dep.rank}" if dep.rank != a.rank else "this rank"
                return _msg(schedule, a, rule, f"started before {dep.name} (on {where}) finished")
    return None


def in_flight_peaks(trace: list) -> list[tuple[tuple, dict[int, int], int]]:
    """After each action of one rank: (action, in flight per stage, in flight on the rank). F adds a microbatch
    to its stage; B, or W (after I), ends it."""
    per_stage: dict[int, int] = {}
    out = []
    for act in trace:
        s, k = act[0], act[1]
        if k == "F":
            per_stage[s] = per_stage.get(s, 0) + 1
        elif k in ("B", "W"):
            per_stage[s] = per_stage.get(s, 0) - 1
        out.append((act, dict(per_stage), sum(per_stage.values())))
    return out


def activation_bound(schedule: str, data: list[dict], n_stages: int, world: int, n_mb: int) -> str | None:
    """Peak microbatches in flight per stage and per rank within the schedule's documented bound (bounds.py)."""
    b = bounds.bound(schedule)
    for d in data:
        r = d["rank"]
        rank_limit = b.per_rank(n_mb, n_stages, world, r)
        for act, per_stage, total in in_flight_peaks(d["trace"]):
            s, k, mb = act[0], act[1], act[2]
            stage_limit = b.per_stage(n_mb, n_stages, world, s)
            if per_stage.get(s, 0) > stage_limit:
                return (f"{schedule}: rank {r}, stage {s}: action {s}{k}{mb} puts {per_stage[s]} microbatches in "
                        f"flight on the stage; rule: at most {stage_limit} = {b.stage_text} (m={n_mb}, S={n_stages}, "
                        f"p={world}, s={s}; {b.source})")
            if total > rank_limit:
                return (f"{schedule}: rank {r}, stage {s}: action {s}{k}{mb} puts {total} microbatches in flight on "
                        f"the rank; rule: at most {rank_limit} = {b.rank_text} (m={n_mb}, S={n_stages}, p={world}, "
                        f"r={r}; {b.source})")
    return None


def peaks(data: list[dict]) -> dict[int, dict]:
    """Per rank: the peak in flight per stage and on the rank (for reports)."""
    out = {}
    for d in data:
        steps = in_flight_peaks(d["trace"])
        stage_peak: dict[int, int] = {}
        for _, per_stage, _total in steps:
            for s, n in per_stage.items():
                stage_peak[s] = max(stage_peak.get(s, 0), n)
        out[d["rank"]] = {"stages": stage_peak, "rank": max((t for _, _, t in steps), default=0)}
    return out


def declared_plan(schedule: str, data: list[dict]) -> str | None:
    """The executed compute actions of each rank are the plan's (`pipeline_order`), in the plan's order."""
    rule = "a rank executes its declared plan (pipeline_order), action for action"
    for d in data:
        ran = [(s, k, mb) for s, k, mb, _, _ in d["trace"]]
        plan = [tuple(a) for a in d["plan"]]
        for i, (got, want) in enumerate(zip(ran, plan, strict=False)):
            if got != want:
                s, k, mb = got
                return (f"{schedule}: rank {d['rank']}, stage {s}: action {s}{k}{mb} ran as compute action #{i}, "
                        f"the plan declares {want[0]}{want[1]}{want[2]}; rule: {rule}")
        if len(ran) != len(plan):
            extra = ran[len(plan):] or plan[len(ran):]
            what = "ran beyond the plan" if len(ran) > len(plan) else "was planned but never ran"
            s, k, mb = extra[0]
            return (f"{schedule}: rank {d['rank']}, stage {s}: action {s}{k}{mb} {what} ({len(ran)} actions ran, "
                    f"{len(plan)} planned); rule: {rule}")
    return None


def zero_bubble_split(schedule: str, data: list[dict]) -> str | None:
    """I leaves weight gradients untouched, W writes them; a zero-bubble schedule runs I and W at all."""
    for d in data:
        for v in d["split"]["violations"]:
            return (f"{schedule}: rank {d['rank']}, stage {v['stage']}: action {v['action']}: {v['what']}; rule: an I "
                    "step computes input gradients only and its W step writes the weight gradients")
    if not sum(d["split"]["seen"].get("I", 0) for d in data):
        return (f"{schedule}: no rank ran an I (input-gradient) step; rule: a zero-bubble schedule splits backward "
                "into I and W steps")
    return None


def no_growth(schedule: str, data: list[dict], mode: str) -> str | None:
    """The live state after every step from the 2nd on equals the state after step 2."""
    for d in data:
        values = d["live"][mode]["values"]
        for k, v in enumerate(values[2:], start=3):
            if v != values[1]:
                return (f"{schedule} ({mode}): rank {d['rank']}, stages {d['stages']}: after step {k} "
                        f"{v} {d['live_unit']}, after step 2 {values[1]} (steps: {values}); rule: no state grows "
                        "across steps")
    return None
