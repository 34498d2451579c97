"""The pipeline timeline of one measured trace as inline SVG: one lane per rank, F/I/W/B coloured, idle visible.

Input: a trace as the model holds it (`conformance.protocol.stepcost.Trace`: ranks {"0": [[stage, kind, microbatch,
start_us, end_us], ...]}). The lane background is the idle colour, so every gap between actions is the bubble as
measured on that rank.
"""

from __future__ import annotations

from html import escape

from conformance.protocol.stepcost import Trace

# W light and B dark: told apart by lightness too, so without red-green vision (deuteranopia) as well.
COLOURS = {"F": "#4e79a7", "I": "#f28e2b", "W": "#a6d96a", "B": "#b2182b"}
# The text on each (contrast 4.5:1 or more).
LABEL_COLOURS = {"F": "#ffffff", "I": "#000000", "W": "#000000", "B": "#ffffff"}
KIND_NAMES = {"F": "forward", "I": "input gradient", "W": "weight gradient", "B": "full backward"}
IDLE = "#e8e8e8"
LANE_H, GAP, LEFT, TOP, AXIS = 22, 6, 64, 8, 22


def span(trace: Trace) -> tuple[int, int]:
    """First to last instant of the step: the ranks' step() windows where recorded, else the actions' span."""
    acts = [a for acts in trace.ranks.values() for a in acts]
    starts = [a[3] for a in acts] + [int(w[0]) for w in trace.window.values()]
    ends = [a[4] for a in acts] + [int(w[1]) for w in trace.window.values()]
    if not starts:
        return 0, 0
    return min(starts), max(ends)


def idle_fraction(actions: list, t0: int, t1: int) -> float:
    """The share of [t0, t1] this rank spent in no compute action."""
    busy = sum(max(0, a[4] - a[3]) for a in actions)
    return 1 - busy / (t1 - t0) if t1 > t0 else 0.0


def _ticks(total_us: int) -> list[int]:
    """Axis ticks at 1, 2, 5 x 10^k microseconds, at most about 8 of them."""
    k, step = 0, 1
    while total_us / step > 8:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return list(range(0, total_us + 1, step))


def svg(trace: Trace, width: int = 960) -> str:
    """The timeline; each action has a tooltip (`<title>`) naming it and its duration."""
    t0, t1 = span(trace)
    total = max(1, t1 - t0)
    ranks = sorted(trace.ranks, key=int)
    plot_w = width - LEFT - 8
    height = TOP + len(ranks) * (LANE_H + GAP) + AXIS

    def x(t: int) -> float:
        return LEFT + (t - t0) * plot_w / total

    label = f"{trace.schedule} world {trace.world}"
    parts = [(f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of {escape(label)}">')]
    for lane, r in enumerate(ranks):
        y = TOP + lane * (LANE_H + GAP)
        acts = trace.ranks[r]
        idle = idle_fraction(acts, t0, t1)
        parts.append(f'<text x="4" y="{y + LANE_H * 0.7:.1f}" font-size="11">rank {escape(r)}</text>')
        parts.append(f'<rect class="idle" x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE_H}" fill="{IDLE}">'
                     f"<title>rank {escape(r)}: idle {idle:.0%} of the step</title></rect>")
        several = len({q[0] for q in acts}) > 1
        for s, k, mb, a, b in acts:
            w = max(0.5, x(b) - x(a))
            tip = f"rank {r}: stage {s} {KIND_NAMES.get(k, k)} of microbatch {mb}, {(b - a) / 1000:.3f} ms"
            parts.append(f'<rect class="act k-{escape(k)}" x="{x(a):.1f}" y="{y}" width="{w:.1f}" height="{LANE_H}" '
                         f'fill="{COLOURS.get(k, "#999")}" stroke="#fff" stroke-width="0.5">'
                         f"<title>{escape(tip)}</title></rect>")
            if w >= 22:
                parts.append(f'<text x="{x(a) + w / 2:.1f}" y="{y + LANE_H * 0.7:.1f}" font-size="10" '
                             f'text-anchor="middle" fill="{LABEL_COLOURS.get(k, "#000")}" pointer-events="none">'
                             f"{escape(k)}{mb}"
                             f"{f'.{s}' if several else ''}</text>")
    axis_y = TOP + len(ranks) * (LANE_H + GAP) + 4
    for tick in _ticks(total):
        tx = LEFT + tick * plot_w / total
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{axis_y - 4}" y2="{axis_y}" stroke="#666"/>'
                     f'<text x="{tx:.1f}" y="{axis_y + 12}" font-size="10" text-anchor="middle">'
                     f"{tick / 1000:g} ms</text>")
    parts.append("</svg>")
    return "".join(parts)


PART_COLOURS = {**COLOURS, "wait": "#9c755f", "overhead": "#edc948", "idle": IDLE}
PART_NAMES = {**KIND_NAMES, "wait": "wait on another rank", "overhead": "overhead between actions", "idle": "idle"}
BAR_H, BAR_LABEL = 16, 230


def stack_svg(rows: list[tuple[str, list[tuple[str, float]]]], width: int = 960) -> str:
    """Stacked bars, one per (label, [(part, ms)]) row, on one scale: where each schedule x world's step goes."""
    longest = max((sum(ms for _, ms in segs) for _, segs in rows), default=0.0) or 1.0
    plot_w = width - BAR_LABEL - 70
    height = len(rows) * (BAR_H + 4) + 4
    parts = [(f'<svg class="stack" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" role="img" aria-label="where the step time goes">')]
    for i, (label, segs) in enumerate(rows):
        y, x = 2 + i * (BAR_H + 4), float(BAR_LABEL)
        parts.append(f'<text x="4" y="{y + BAR_H * 0.8:.1f}" font-size="11">{escape(label)}</text>')
        for part, ms in segs:
            w = ms * plot_w / longest
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(0.5, w):.1f}" height="{BAR_H}" '
                         f'fill="{PART_COLOURS.get(part, "#999")}"><title>{escape(label)}: '
                         f"{escape(PART_NAMES.get(part, part))} {ms:.2f} ms (mean over ranks)</title></rect>")
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + BAR_H * 0.8:.1f}" font-size="11">'
                     f"{sum(ms for _, ms in segs):.2f} ms</text>")
    parts.append("</svg>")
    return "".join(parts)


def stack_legend() -> str:
    """The stacked bars' colour key, as HTML."""
    return '<p class="meta tl-legend">' + " ".join(
        f'<span class="tl-key" style="background:{c}"></span>{escape(PART_NAMES[k])}'
        for k, c in PART_COLOURS.items()) + "</p>"


def legend() -> str:
    """The colour key, as HTML."""
    items = [f'<span class="tl-key" style="background:{c}"></span>{escape(k)} {escape(KIND_NAMES[k])}'
             for k, c in COLOURS.items()]
    items.append(f'<span class="tl-key" style="background:{IDLE}"></span>idle')
    return '<p class="meta tl-legend">' + " ".join(items) + "</p>"
