"""compatibility.md: a GitHub job summary / PR comment, divergences first, always under 65,535 bytes."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from conformance.report import model as m

if TYPE_CHECKING:
    from conformance.report.baseline import BaselineDiff

LIMIT = 65_535  # GitHub's cap for a job summary step and for a comment body
_RESERVE = 600  # room kept for the truncation note and the legend

EMOJI: dict[str, str] = {
    m.PASSED: "✅", m.FAILED: "❌", m.ERROR: "❗", m.CRASHED: "💥", m.XPASS: "⚠️", m.XFAIL: "🔸",
    m.SKIPPED: "⏭️", m.UNAVAILABLE: "🚫", m.NOT_APPLICABLE: "➖", m.NOT_RUN: "⏸️", m.MISSING: "❔",
}


_STATUS = {"failed": "❌ failed", "incomplete": "⚠️ incomplete", "unavailable": "🚫 nothing ran (device absent)",
           "idle": "⚪ nothing ran", "ok": "✅ ok"}


def _code(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _plain(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    for ch in "\\|*_<>[]`":
        text = text.replace(ch, "\\" + ch)
    return text


def _mark(outcome: str) -> str:
    return EMOJI[outcome]


def headline(matrix: m.Matrix) -> str:
    """One line for stdout and the top of the Markdown."""
    envs = len(matrix.envs)
    bad = matrix.failed_envs
    state = f"problems in {', '.join(bad)}" if bad else "no failures"
    return (f"{len(matrix.rows)} checks x {envs} env{'s' if envs != 1 else ''}: {matrix.divergent} divergent, "
            f"{state}")


def _env_line(col: m.EnvColumn) -> str:
    p = col.properties
    torch = p.get("torch_version", "")
    if p.get("torch_variant"):
        torch += f" ({p['torch_variant']}{', ' + p['torch_source'] if p.get('torch_source') else ''})"
    runtime = " ".join(x for x in (p.get("runtime", ""), p.get("runtime_version", "")) if x)
    if p.get("driver_version"):
        runtime += f", driver {p['driver_version']}"
    device = p.get("device_names") or p.get("device", "")
    if p.get("device_available", "").lower() in ("false", "0", "no"):
        device += f" (unavailable{': ' + p['device_reason'] if p.get('device_reason') else ''})"
    host = p.get("hostname") or col.result.hostname
    status = _STATUS[col.status]
    if col.result.incomplete and col.status != "incomplete":
        status += " ⚠️ incomplete"
    counts = col.counts
    rest = ", ".join(f"{counts.get(o)} {EMOJI[o]} {m.LABEL[o]}" for o in m.OUTCOMES
                     if o != m.PASSED and counts.get(o))
    result = f"{counts.passed}/{counts.total} passed" + (f", {rest}" if rest else "")
    return "| " + " | ".join([f"**{_plain(col.name)}**", status, result, _plain(torch), _plain(runtime),
                               _plain(device), _plain(p.get("backend", "")), _plain(host)]) + " |"


class _Budget:
    """Collect lines until the byte budget is spent; count what did not fit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lines: list[str] = []

    def add(self, line: str) -> bool:
        size = len(line.encode("utf-8")) + 1
        if self.used + size > self.limit:
            return False
        self.lines.append(line)
        self.used += size
        return True


def render_markdown(matrix: m.Matrix, *, limit: int = LIMIT, html_name: str = "compatibility.html") -> str:
    out = _Budget(limit - _RESERVE)
    cut: list[str] = []
    out.add("## Pipeline-parallel conformance across devices")
    out.add("")
    out.add(f"**{headline(matrix)}**")
    out.add("")
    out.add("| env | status | result | torch | runtime | device | backend | host |")
    out.add("|---|---|---|---|---|---|---|---|")
    for col in matrix.envs:
        if not out.add(_env_line(col)):
            cut.append("env lines")
            break
    for name in matrix.absent_envs:
        out.add(f"| **{_plain(name)}** | ❔ no results file | | | | | | |")
    out.add("")
    if matrix.warnings:
        out.add(f"### Input warnings ({len(matrix.warnings)})")
        out.add("")
        for i, w in enumerate(matrix.warnings):
            if i == 50 or not out.add(f"- {_code(w.path)}: {_plain(w.problem, 300)}"):
                cut.append(f"{len(matrix.warnings) - i} warnings")
                break
        out.add("")
    diff = matrix.baseline
    if diff is not None:
        _baseline(out, diff, cut)
    names = [c.name for c in matrix.envs]
    # Rows where something broke come first, so a truncated comment still shows every failure it can.
    divergent = sorted((r for r in matrix.rows if r.divergent), key=lambda r: not r.problem)
    if divergent:
        out.add(f"### Divergent checks ({len(divergent)}; those with failures first)")
        out.add("")
        out.add("| area | check | " + " | ".join(_plain(n) for n in names) + " |")
        out.add("|---|---|" + "---|" * len(names))
        for i, row in enumerate(divergent):
            cells = " | ".join(_mark(row.outcome(j)) for j in range(len(names)))
            label = row.name if row.classname in (f"test_{row.area}", f"{row.area}_test") else row.key
            if not out.add(f"| {_plain(row.area)} | {_code(label)} | {cells} |"):
                cut.append(f"{len(divergent) - i} of {len(divergent)} divergent rows")
                break
        out.add("")
    consistent = [r for r in matrix.rows if not r.divergent]
    if consistent:
        out.add(f"### Consistent checks ({len(consistent)}, same outcome on every env that had its device)")
        out.add("")
        out.add("| area | checks | outcome |")
        out.add("|---|---|---|")
        by_area: dict[str, Counter[str]] = {}
        for row in consistent:
            by_area.setdefault(row.area, Counter())[row.consensus] += 1
        for i, (area, tally) in enumerate(sorted(by_area.items())):
            text = ", ".join(f"{n} {EMOJI[o]} {m.LABEL[o]}" for o, n in sorted(tally.items(),
                                                                                 key=lambda kv: m.OUTCOMES.index(kv[0])))
            if not out.add(f"| {_plain(area)} | {sum(tally.values())} | {text} |"):
                cut.append(f"{len(by_area) - i} consistent areas")
                break
        out.add("")
    tail = []
    if cut:
        tail.append(f"> **Truncated** to stay under GitHub's {limit:,}-byte limit: {'; '.join(cut)} not shown. "
                    f"See `{html_name}` or `compatibility.json` for everything.")
        tail.append("")
    tail.append("Legend: " + " · ".join(f"{EMOJI[o]} {m.LABEL[o]}" for o in m.OUTCOMES))
    tail.append("")
    tail.append(f"<sub>{_plain(matrix.generator)} · {_plain(matrix.generated_at)}</sub>")
    text = "\n".join(out.lines + tail) + "\n"
    assert len(text.encode("utf-8")) <= limit, "markdown budget miscounted"
    return text


def _baseline(out: _Budget, diff: BaselineDiff, cut: list[str]) -> None:
    out.add(f"### Against baseline `{_plain(diff.path)}`: {diff.summary()}")
    out.add("")
    if diff.new_envs or diff.removed_envs:
        out.add(f"New envs: {', '.join(diff.new_envs) or 'none'}; envs gone: {', '.join(diff.removed_envs) or 'none'}")
        out.add("")
    for title, changes in (("Regressions", diff.regressions), ("Fixes", diff.fixes)):
        if not changes:
            continue
        out.add(f"**{title} ({len(changes)})**")
        out.add("")
        out.add("| env | check | before | now |")
        out.add("|---|---|---|---|")
        for i, c in enumerate(changes):
            if not out.add(f"| {_plain(c.env)} | {_code(c.id)} | {EMOJI[c.before]} {m.LABEL[c.before]} | "
                           f"{EMOJI[c.after]} {m.LABEL[c.after]} |"):
                cut.append(f"{len(changes) - i} {title.lower()}")
                break
        out.add("")
    if diff.new or diff.removed:
        out.add(f"New checks: {len(diff.new)}; removed checks: {len(diff.removed)}")
        out.add("")
