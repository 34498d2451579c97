"""Documented activation bounds per schedule, in one table: the behaviour checks compare every measured trace to it.

Unit: microbatches in flight on one stage (a model chunk), i.e. forwards whose backward work on that stage (B, or
W after I) has not finished: that is how long a stage keeps the microbatch's activations. Per rank: the sum over the
rank's local stages at any moment. Notation: m microbatches, S stages, p ranks (pipeline size), v = S / p local
stages per rank, s stage index, r rank.

The numbers are the papers' and upstream's formulas, not what the installed build plans: a build that plans (or runs)
a breadth-first order for a depth-first schedule exceeds them. Measured with torch 2.13 on CPU/gloo at p = 1, 2, 4
with m = max(4, 2S): every schedule meets its bound; GPipe, 1F1B, Interleaved1F1B and LoopedBFS reach it exactly on
some rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (m, S, p, s or r) -> bound
Formula = Callable[[int, int, int, int], int]


@dataclass(frozen=True)
class Bound:
    per_stage: Formula  # (m, S, p, s)
    per_rank: Formula  # (m, S, p, r)
    stage_text: str
    rank_text: str
    source: str


def _v(S: int, p: int) -> int:
    return max(1, S // p)


TABLE: dict[str, Bound] = {
    "ScheduleGPipe": Bound(
        lambda m, S, p, s: m, lambda m, S, p, r: m, "m", "m",
        "Huang et al. 2019, GPipe (arXiv:1811.06965) sec. 2.3: every microbatch's activations are kept until the "
        "backward pass of the whole batch"),
    "Schedule1F1B": Bound(
        lambda m, S, p, s: min(m, S - s), lambda m, S, p, r: min(m, S - r), "min(m, S - s)", "min(m, S - r)",
        "Narayanan et al. 2021, PipeDream-Flush / 1F1B (arXiv:2104.04473) sec. 2.1: stage s runs S - s warm-up "
        "forwards, then alternates one forward with one backward"),
    "ScheduleInterleaved1F1B": Bound(
        lambda m, S, p, s: min(m, (_v(S, p) - 1) * p + 2 * (p - 1 - s % p) + 1),
        lambda m, S, p, r: min(_v(S, p) * m, (_v(S, p) - 1) * p + 2 * (p - 1 - r) + 1),
        "min(m, (v-1)p + 2(p-1-r) + 1)", "min(vm, (v-1)p + 2(p-1-r) + 1)",
        "Narayanan et al. 2021 (arXiv:2104.04473) sec. 2.2, depth-first interleaving; warm-up count as in "
        "Megatron-LM get_num_warmup_microbatches: (v-1)p + 2(p-1-r) forwards, then one more before the first "
        "backward"),
    "ScheduleLoopedBFS": Bound(
        lambda m, S, p, s: m, lambda m, S, p, r: _v(S, p) * m, "m", "vm",
        "Lamy-Poirier 2021, Breadth-First Pipeline Parallelism (arXiv:2211.05953): each local stage runs all "
        "microbatches forward before any backward"),
    "ScheduleInterleavedZeroBubble": Bound(
        lambda m, S, p, s: m, lambda m, S, p, r: min(_v(S, p) * m, _v(S, p) * p), "m", "min(vm, vp)",
        "Qi et al. 2023, Zero Bubble Pipeline Parallelism (arXiv:2401.10241) sec. 3.1, ZB-H1: peak activation "
        "memory no more than 1F1B's, p full-stage microbatches = vp chunk microbatches per rank"),
    "ScheduleZBVZeroBubble": Bound(
        lambda m, S, p, s: m, lambda m, S, p, r: min(2 * m, 2 * p), "m", "min(2m, 2p)",
        "Qi et al. 2023 (arXiv:2401.10241) sec. 6, ZB-V: the same peak activation memory as 1F1B, p full-stage "
        "microbatches = 2p half-stage (V chunk) microbatches per rank"),
    "ScheduleDualPipeV": Bound(
        lambda m, S, p, s: m, lambda m, S, p, r: min(2 * m, 2 * (p + 1)), "m", "min(2m, 2(p+1))",
        "DeepSeek-AI 2024, DeepSeek-V3 technical report (arXiv:2412.19437) sec. 3.2.1, Table 2: DualPipe holds "
        "PP+1 microbatches' activations per device (1F1B: PP); DualPipeV (its cut-in-half V form, "
        "github.com/deepseek-ai/DualPipe) the same, counted here in half-stage chunks: 2(p+1)"),
}


def bound(schedule: str) -> Bound:
    try:
        return TABLE[schedule]
    except KeyError:
        raise KeyError(f"conformance.suite.bounds: no activation bound for {schedule!r}; add it to TABLE") from None


# Step cost: the theoretical bubble fraction of a schedule with m microbatches on p ranks and v local stages per
# rank (None where no closed form is documented for this implementation).
BUBBLE: dict[str, tuple[Callable[[int, int, int], float | None], str]] = {
    "ScheduleGPipe": (lambda m, p, v: (p - 1) / (m + p - 1), "(p-1)/(m+p-1), Huang et al. 2019"),
    "Schedule1F1B": (lambda m, p, v: (p - 1) / (m + p - 1), "(p-1)/(m+p-1), Narayanan et al. 2021 sec. 2.1"),
    "ScheduleInterleaved1F1B": (lambda m, p, v: (p - 1) / (v * m + p - 1),
                                "(p-1)/(vm+p-1): bubble (p-1)/v over ideal m, Narayanan et al. 2021 sec. 2.2"),
    "ScheduleLoopedBFS": (lambda m, p, v: (p - 1) / (v * m + p - 1), "(p-1)/(vm+p-1), Lamy-Poirier 2021"),
    "ScheduleInterleavedZeroBubble": (lambda m, p, v: None, "no closed form (depends on F/I/W times), Qi et al. 2023"),
    "ScheduleZBVZeroBubble": (lambda m, p, v: None, "zero only if F = I = W times, Qi et al. 2023 sec. 6"),
    "ScheduleDualPipeV": (lambda m, p, v: None, "no closed form for unequal F/B times, DeepSeek-V3 Table 2"),
}

# Memory ordering on accelerators: 1F1B's peak memory per rank must stay below GPipe's when m >= 2p
# (1F1B holds at most p microbatches on any rank, GPipe all m; Narayanan et al. 2021 sec. 2.1).
MEMORY_ORDER_MIN_RATIO = 2
