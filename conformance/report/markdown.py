"""compatibility.md: a GitHub job summary / PR comment, divergences first, always under 65,535 bytes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from conformance.report import model as m
from conformance.report import stepcost

if TYPE_CHECKING:
    from conformance.report.baseline import BaselineDiff

LIMIT = 65_535  # GitHub's cap for a job summary step and for a comment body
_RESERVE = 600  # room kept for the truncation note and the legend

EMOJI: dict[str, str] = {
    m.PASSED: "✅", m.FAILED: "❌", m.ERROR: "❗", m.CRASHED: "💥", m.XPASS: "⚠️", m.XFAIL: "🔸",
    m.SKIPPED: "⏭️", m.UNAVAILABLE: "🚫", m.NOT_APPLICABLE: "➖", m.NOT_RUN: "⏸️", m.MISSING: "❔",  # noqa: RUF001 - the emoji is meant
}


_STATUS = {"failed": "❌ failed", "incomplete": "⚠️ incomplete", "unavailable": "🚫 nothing ran (device absent)",
           "idle": "⚪ nothing ran", "ok": "✅ ok"}


# Characters that GitHub's Markdown (CommonMark + GFM tables, autolinks, strikethrough) gives a meaning to inside
# a table cell; each is backslash-escaped in plain text taken from the inputs.
_SPECIAL = re.compile(r"[\\`*_<>\[\]|&~!#@]")
# Autolinks need no markup: "https://..." and "www." become links unless their punctuation is escaped.
_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9])(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PIPE = "\\|"
CODE_CHARS = 300  # a check id longer than this is cut in the middle: it still names the check, not the page


def _flat(text: str, limit: int) -> str:
    """One line: every run of whitespace or line breaks (\\r, \\n, U+2028 ...) becomes one space, other control
    characters U+FFFD, and text over `limit` keeps its head and tail."""
    text = _CONTROL.sub("\ufffd", " ".join(text.split()))
    if len(text) > limit:
        half = (limit - 1) // 2
        text = f"{text[:half]}…{text[len(text) - (limit - 1 - half):]}"
    return text


def _code(text: str, limit: int = CODE_CHARS) -> str:
    """Input text as a code span inside a table cell, which nothing in the text can close or break out of."""
    text = _flat(text, limit)
    if not text:
        return ""
    if "\\|" in text:
        # A table cell's pipe is escaped as \\|, and a code span cannot escape the backslash before it: plain text
        # can.
        return _plain(text, limit)
    # The fence is longer than any backtick run inside, so the text cannot close it early.
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text.replace('|', _PIPE)}{pad}{fence}"


def _plain(text: str, limit: int = 200) -> str:
    """Input text as inert Markdown: one line, every character GitHub would read as markup escaped."""
    text = _flat(text, limit)
    text = _SPECIAL.sub(lambda hit: "\\" + hit.group(), text)
    return _AUTOLINK.sub(lambda hit: "\\" + hit.group(), text)


def _mark(outcome: str) -> str:
    return EMOJI[outcome]


def headline(matrix: m.Matrix) -> str:
    """One line for stdout and the top of the Markdown."""
    return _View(matrix).headline(str)


class _View:
    """The envs a reader asked for (`--envs`, default all) and what depends on them: the rows that exist there,
    divergence and consensus among those envs only (a row that differs only in a hidden env is not a gap here)."""

    def __init__(self, matrix: m.Matrix, envs: Sequence[str] | None = None) -> None:
        wanted = set(envs) if envs else None
        self.matrix = matrix
        self.index = [i for i, c in enumerate(matrix.envs) if wanted is None or c.name in wanted]
        self.full = len(self.index) == len(matrix.envs)
        self.envs = [matrix.envs[i] for i in self.index]
        if self.full:
            self.rows = matrix.rows
        else:
            self.rows = [r for r in matrix.rows if any(r.outcome(i) != m.MISSING for i in self.index)]

    def divergent(self, row: m.Row) -> bool:
        if self.full:
            return row.divergent
        kinds = {row.outcome(i) for i in self.index}
        kinds.discard(m.UNAVAILABLE)  # an absent device is no compatibility gap, as in the full matrix
        return len(kinds) > 1

    def problem(self, row: m.Row) -> bool:
        return any(row.outcome(i) in m.PROBLEMS for i in self.index)

    def consensus(self, row: m.Row) -> str:
        for i in self.index:
            if row.outcome(i) != m.UNAVAILABLE:
                return row.outcome(i)
        return m.UNAVAILABLE

    def headline(self, text: Callable[[str], str]) -> str:
        """'N checks x E envs: D divergent, problems in ...', input names passed through `text`."""
        n = len(self.envs)
        envs = f"{n} env{'s' if n != 1 else ''}" if self.full else f"{n} of {len(self.matrix.envs)} envs"
        bad = [text(c.name) for c in self.envs if c.counts.problems]
        state = f"problems in {', '.join(bad)}" if bad else "no failures"
        divergent = sum(1 for r in self.rows if self.divergent(r))
        return f"{len(self.rows)} checks x {envs}: {divergent} divergent, {state}"


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
    if p.get("device_simulated") == "true":  # a test stand-in (device profile): never real hardware
        device = f"SIMULATED device, not real hardware: {device}"
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


def render_markdown(matrix: m.Matrix, *, limit: int = LIMIT, html_name: str = "compatibility.html",
                    envs: Sequence[str] | None = None) -> str:
    """The job summary; `envs` restricts it to those columns, with divergence computed among them alone."""
    view = _View(matrix, envs)
    out = _Budget(limit - _RESERVE)
    cut: list[str] = []
    out.add("## Pipeline-parallel conformance across devices")
    out.add("")
    out.add(f"**{view.headline(_plain)}**")
    out.add("")
    if not view.full:
        out.add(f"View: {', '.join(_plain(c.name) for c in view.envs)}; divergence is among these envs only "
                f"(all {len(matrix.envs)} in `{_plain(html_name)}`).")
        out.add("")
    out.add("| env | status | result | torch | runtime | device | backend | host |")
    out.add("|---|---|---|---|---|---|---|---|")
    for col in view.envs:
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
    for line in stepcost.markdown_lines(matrix):
        if not out.add(line):
            cut.append("step-cost lines")
            break
    _divergent_table(out, view, cut)
    _consistent_table(out, view, cut)
    tail = []
    if cut:
        tail.append(f"> **Truncated** to stay under GitHub's {limit:,}-byte limit: {'; '.join(cut)} not shown. "
                    f"See `{_plain(html_name)}` or `compatibility.json` for everything.")
        tail.append("")
    tail.append("Legend: " + " · ".join(f"{EMOJI[o]} {m.LABEL[o]}" for o in m.OUTCOMES))
    tail.append("")
    tail.append(f"<sub>{_plain(matrix.generator)} · {_plain(matrix.generated_at)}</sub>")
    text = "\n".join(out.lines + tail) + "\n"
    assert len(text.encode("utf-8")) <= limit, "markdown budget miscounted"
    return text


def _divergent_table(out: _Budget, view: _View, cut: list[str]) -> None:
    """One line per divergent check of the view; rows where something broke first, so a truncated comment still
    shows every failure it can."""
    divergent = sorted((r for r in view.rows if view.divergent(r)), key=lambda r: not view.problem(r))
    if not divergent:
        return
    out.add(f"### Divergent checks ({len(divergent)}; those with failures first)")
    out.add("")
    out.add("| area | check | " + " | ".join(_plain(c.name) for c in view.envs) + " |")
    out.add("|---|---|" + "---|" * len(view.envs))
    for i, row in enumerate(divergent):
        cells = " | ".join(_mark(row.outcome(j)) for j in view.index)
        label = row.name if row.classname in (f"test_{row.area}", f"{row.area}_test") else row.key
        if not out.add(f"| {_plain(row.area)} | {_code(label)} | {cells} |"):
            cut.append(f"{len(divergent) - i} of {len(divergent)} divergent rows")
            break
    out.add("")


def _consistent_table(out: _Budget, view: _View, cut: list[str]) -> None:
    """Checks with one outcome across the view, counted per area."""
    consistent = [r for r in view.rows if not view.divergent(r)]
    if not consistent:
        return
    out.add(f"### Consistent checks ({len(consistent)}, same outcome on every env that had its device)")
    out.add("")
    out.add("| area | checks | outcome |")
    out.add("|---|---|---|")
    by_area: dict[str, Counter[str]] = {}
    for row in consistent:
        by_area.setdefault(row.area, Counter())[view.consensus(row)] += 1
    for i, (area, tally) in enumerate(sorted(by_area.items())):
        text = ", ".join(f"{n} {EMOJI[o]} {m.LABEL[o]}" for o, n in sorted(tally.items(),
                                                                             key=lambda kv: m.OUTCOMES.index(kv[0])))
        if not out.add(f"| {_plain(area)} | {sum(tally.values())} | {text} |"):
            cut.append(f"{len(by_area) - i} consistent areas")
            break
    out.add("")


def _baseline(out: _Budget, diff: BaselineDiff, cut: list[str]) -> None:
    out.add(f"### Against baseline {_code(diff.path)}: {_plain(diff.summary())}")
    out.add("")
    if diff.new_envs or diff.removed_envs:
        out.add(f"New envs: {_plain(', '.join(diff.new_envs) or 'none')}; envs gone: "
                f"{_plain(', '.join(diff.removed_envs) or 'none')}")
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
