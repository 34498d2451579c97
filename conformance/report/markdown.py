"""compatibility.md: a GitHub job summary / PR comment, divergences first, always under 65,535 bytes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from conformance.report import model as m
from conformance.report import releases, stepcost
from conformance.report.view import View, device_names, reason_text, release_link, release_tag, strip_links

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


def _env_line(col: m.EnvColumn) -> str:
    b = col.build
    torch = b.torch_version
    if b.torch_variant:
        torch += f" ({b.torch_variant}{', ' + b.torch_source if b.torch_source else ''})"
    runtime = " ".join(x for x in (b.runtime, b.runtime_version) if x)
    if b.driver_version:
        runtime += f", driver {b.driver_version}"
    device = device_names(b.device_names, b.device_count) if b.device_names else b.device
    if not b.device_available:
        device += f" (unavailable{': ' + b.device_reason if b.device_reason else ''})"
    if b.device_simulated:  # a test stand-in (device profile): never real hardware
        device = f"SIMULATED device, not real hardware: {device}"
    host = b.hostname or col.result.hostname
    status = _STATUS[col.status]
    if col.result.incomplete and col.status != "incomplete":
        status += " ⚠️ incomplete"
    counts = col.counts
    rest = ", ".join(f"{counts.get(o)} {EMOJI[o]} {m.LABEL[o]}" for o in m.OUTCOMES
                     if o != m.PASSED and counts.get(o))
    result = f"{counts.passed}/{counts.total} passed" + (f", {rest}" if rest else "")
    return "| " + " | ".join([f"**{_plain(col.name)}**", status, result, _plain(torch), _plain(runtime),
                               _plain(device), _plain(b.backend), _plain(host)]) + " |"


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
    view = View(matrix, envs)
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
    # What differs comes first (a PR column shows the top): divergent checks and their reasons, then the rest.
    _mixed_axes(out, view)
    _divergent_table(out, view, cut)
    _reasons(out, view, cut)
    _consistent_table(out, view, cut)
    _release_delta(out, view, cut)
    for line in _stepcost_lines(matrix):
        if not out.add(line):
            cut.append("step-cost lines")
            break
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


def _divergent_table(out: _Budget, view: View, cut: list[str]) -> None:
    """One line per divergent check of the view; rows where something broke first, so a truncated comment still
    shows every failure it can."""
    divergent = sorted((r for r in view.rows if view.divergent(r)), key=lambda r: not view.problem(r))
    if not divergent:
        return
    out.add(f"### Divergent checks ({len(divergent)}; those with failures first)")
    out.add("")
    # Columns by letter, so the table fits a PR's 880 px column whatever the env names (the key says which is which).
    letters = _column_letters(len(view.envs))
    out.add("Columns: " + " · ".join(f"**{k}** {_plain(c.name)}" for k, c in zip(letters, view.envs, strict=True)))
    out.add("")
    out.add("| check | " + " | ".join(letters) + " |")
    out.add("|---|" + ":-:|" * len(view.envs))
    area = None
    # Every row where something broke, then at most QUIET_ROWS of the others: the reasons below must still fit.
    problems = sum(1 for r in divergent if view.problem(r))
    for i, row in enumerate(divergent):
        if i >= problems + QUIET_ROWS:
            cut.append(f"{len(divergent) - i} of {len(divergent)} divergent rows without a failure")
            break
        cells = " | ".join(_mark(row.outcome(j)) for j in view.index)
        label = row.name if row.classname in (f"test_{row.area}", f"{row.area}_test") else row.key
        head = f"{_plain(row.area)}: " if row.area != area else ""
        area = row.area
        if not out.add(f"| {head}{_code(label, ID_CHARS)} | {cells} |"):
            cut.append(f"{len(divergent) - i} of {len(divergent)} divergent rows")
            break
    out.add("")


QUIET_ROWS = 100  # divergent rows without a failure shown at most (compatibility.html has every row)
ID_CHARS = 64  # a check id in the divergent table: cut in the middle beyond this (its head and tail name it)
REASONS = 40  # distinct reasons listed at most (compatibility.html has every message)


def _column_letters(n: int) -> list[str]:
    """A, B, ..., Z, AA, AB, ...: one short column name per env."""
    out = []
    for i in range(n):
        name = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            name = chr(65 + r) + name
        out.append(name)
    return out


def _reasons(out: _Budget, view: View, cut: list[str]) -> None:
    """Why the view's checks failed or were expected to fail: each distinct reason once, with the envs and the number
    of checks it covers; a link to PyTorch's source points at each env's own torch release."""
    groups: dict[tuple[str, str], dict[str, int]] = {}
    shown: dict[tuple[str, str], str] = {}  # the first message of each group, as written
    torch: dict[str, str] = {}
    for row in view.rows:
        for i in view.index:
            cell = row.cell(i)
            if cell is None or (cell.outcome not in m.PROBLEMS and cell.outcome != m.XFAIL) or not cell.message:
                continue
            name = view.matrix.envs[i].name
            torch[name] = view.matrix.envs[i].build.torch_version
            text = reason_text(cell.message)
            # Ports, addresses and sizes differ between otherwise equal messages: one group for them.
            key = (cell.outcome, _NUMBER.sub("#", text))
            shown.setdefault(key, text)
            envs = groups.setdefault(key, {})
            envs[name] = envs.get(name, 0) + 1
    if not groups:
        return
    ordered = sorted(groups.items(), key=lambda kv: (m.OUTCOMES.index(kv[0][0]), -sum(kv[1].values())))
    # Failures first, but expected failures keep at least half the list (their reasons carry the upstream links).
    expected = [kv for kv in ordered if kv[0][0] == m.XFAIL]
    broken = [kv for kv in ordered if kv[0][0] != m.XFAIL]
    room = REASONS - min(len(expected), REASONS // 2)
    listed = broken[:room] + expected[:REASONS - min(len(broken), room)]
    out.add(f"### Reasons ({len(ordered)}: failures, then expected failures)")
    out.add("")
    if len(listed) < len(ordered):
        cut.append(f"{len(ordered) - len(listed)} of {len(ordered)} reasons")
    for n, (key, envs) in enumerate(listed):
        outcome, text = key[0], shown[key]
        where = ", ".join(f"{_plain(e)} ({k})" for e, k in envs.items())
        links = _source_links(text, [torch[e] for e in envs])
        line = f"- {EMOJI[outcome]} {m.LABEL[outcome]} in {where}: {_plain(strip_links(text), 240)}{links}"
        if not out.add(line):
            cut.append(f"{len(listed) - n} of {len(ordered)} reasons")
            break
    out.add("")


_NUMBER = re.compile(r"\d+")
# A link into PyTorch's source at a release tag, the only links the Markdown writes (other URLs stay plain text).
_SOURCE = re.compile(r"https://github\.com/pytorch/pytorch/(?:blob|tree)/v\d+\.\d+\.\d+/[A-Za-z0-9_./-]+")


def _source_links(text: str, versions: list[str]) -> str:
    """' ([source at 2.11.0](...), [2.13.0](...))': the reason's source link, once per torch release of its envs."""
    hit = _SOURCE.search(text)
    if not hit:
        return ""
    tags = sorted({t for v in versions if (t := release_tag(v))}) or [""]
    links = [f"[{t or 'source'}]({release_link(hit.group(), t) if t else hit.group()})" for t in tags]
    return " (source: " + ", ".join(links) + ")"


def _consistent_table(out: _Budget, view: View, cut: list[str]) -> None:
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


def _baseline(out: _Budget, diff: m.BaselineDiff, cut: list[str]) -> None:
    out.add(f"### Against baseline {_code(diff.path)}: {_plain(diff.summary())}")
    out.add("")
    if diff.new_envs or diff.removed_envs:
        out.add(f"New envs: {_plain(', '.join(diff.new_envs) or 'none')}; envs gone: "
                f"{_plain(', '.join(diff.removed_envs) or 'none')}")
        out.add("")
    for env in dict.fromkeys(b.env for b in diff.builds):
        out.add(f"- ⚠️ **{_plain(env)}** ran on another build or machine than in the baseline: "
                f"{_plain('; '.join(b.describe() for b in diff.changed(env)))}")
    if diff.builds:
        out.add("")
    lost = "Lost coverage" + (" (allowed)" if diff.lost_allowed else "")
    for title, changes in (("Regressions", diff.regressions), (lost, diff.lost), ("Fixes", diff.fixes)):
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
    if diff.step_time:
        # With the outcome regressions: what regressed since the baseline reads in one place, at the top.
        out.add(f"**Step-time regressions ({len(diff.step_time)})**")
        out.add("")
        for r in diff.step_time:
            moved = "; ".join(b.describe() for b in diff.changed(r.env))
            out.add(f"- {_plain(stepcost.describe(r))})" + (f" ⚠️ other hardware or build: {_plain(moved)}" if moved
                                                               else ""))
        out.add("")


def _stepcost_lines(matrix: m.Matrix) -> list[str]:
    """A step-cost table per env that has step costs (nothing when none has), then step-time regressions."""
    out: list[str] = []
    head = stepcost.HEAD
    for col in matrix.envs:
        if not col.costs:
            continue
        device = col.costs[0][1].device
        out += [f"### Step cost: {col.name}" + (f" ({device})" if device else ""), ""]
        analysis = stepcost.analysis(col)
        for caption, rows in stepcost.tables(col.costs):
            out += [f"{_plain(caption, 400)}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(stepcost.row_cells(cost, analysis.get(check))) + " |"
                    for check, cost in rows]
            out.append("")
    if out:
        out += [_plain(stepcost.DEFINITIONS, 2000), ""]
    return out


_STATE_MARK = {releases.FLAKY: "🎲 flaky", None: "🚫"}
_STATUS_MARK = {releases.NEWLY_FAILING: "❌", releases.FIXED: "✅", releases.STILL_PRESENT: "🔸",
                releases.FLAKY_STATUS: "🎲", releases.NEW: "🆕", releases.REMOVED: "🗑️", releases.OTHER: "↔️"}
_DELTA_ROWS = 40  # per status: checks listed one by one (the groups above them count every check)
_DELTA_GROUPS = 15  # per status: failure type / first line groups shown, biggest first; the rest counted on one line


def _state(state: str | None) -> str:
    return _STATE_MARK[state] if state in _STATE_MARK else EMOJI[state]  # type: ignore[index]


def _release_delta(out: _Budget, view: View, cut: list[str]) -> None:
    """Per version axis of the view: what changed between torch releases, by status, then by failure type and first
    error line, as a release tracking issue lists it ("[Release/2.15] N failures compared with 2.14")."""
    shown = {c.name for c in view.envs}
    for axis in releases.of(view.matrix).axes:
        if not all(e.name in shown for column in axis.columns for e in column.envs):
            continue
        counts = axis.counts()
        labels = axis.labels
        envs = ", ".join(e.name for column in axis.columns for e in column.envs)
        summary = ", ".join(f"{n} {releases.STATUS_LABEL[s].split(' (')[0]}" for s, n in counts.items() if n)
        out.add(f"### Release delta: {_plain(axis.title)}")
        out.add("")
        out.add(f"**[Release/{labels[-1]}] {_plain(axis.device)}: {summary or 'no change'} compared with "
                f"{labels[0]}** ({len(axis.checks)} checks whose outcome differs between releases; envs "
                f"{_plain(envs)}{'; host and pinned builds on one axis' if axis.sources_differ else ''})")
        out.add("")
        if not axis.checks:
            continue
        out.add("| status | checks |")
        out.add("|---|---|")
        for status, n in counts.items():
            if n:
                out.add(f"| {_STATUS_MARK[status]} {releases.STATUS_LABEL[status]} | {n} |")
        out.add("")
        for status, checks in axis.by_status().items():
            if checks and not _delta_status(out, axis, status, checks, labels):
                cut.append(f"release delta of {axis.device} from '{releases.STATUS_LABEL[status]}' on")
                return


def _delta_status(out: _Budget, axis: releases.ReleaseAxis, status: str, checks: list[releases.DeltaCheck],
                  labels: list[str]) -> bool:
    """One status of a version axis: its groups, then its checks; False when the budget ran out."""
    lines = [f"#### {_STATUS_MARK[status]} {releases.STATUS_LABEL[status].capitalize()} ({len(checks)})", "",
             "| failure type | first error line | checks | first changed in |", "|---|---|---|---|"]
    groups = axis.groups(status)
    for type_, line, group in groups[:_DELTA_GROUPS]:
        firsts = sorted({c.first_changed or "?" for c in group})
        lines.append(f"| {_code(type_, 80)} | {_code(line, 160)} | {len(group)} | {', '.join(firsts)} |")
    if len(groups) > _DELTA_GROUPS:
        rest = groups[_DELTA_GROUPS:]
        lines.append(f"| … | {len(rest)} more groups | {sum(len(g) for _t, _l, g in rest)} | |")
    lines += ["", "| check | " + " | ".join(labels) + " | first changed in |", "|---|" + "---|" * (len(labels) + 1)]
    for check in checks[:_DELTA_ROWS]:
        first = check.first_changed or f"? ({_plain(check.uncertain)})"
        lines.append(f"| {_code(check.id)} | " + " | ".join(_state(s) for s in check.states) + f" | {first} |")
    if len(checks) > _DELTA_ROWS:
        lines.append(f"| … {len(checks) - _DELTA_ROWS} more in `compatibility.json` | " + " | " * len(labels) + "|")
    repro = [c.repro for c in checks if c.repro][:_DELTA_ROWS]
    if repro:
        lines += ["", "Reproduce:", "", "```sh", *repro, "```"]
    lines.append("")
    return all(out.add(line) for line in lines)


def _mixed_axes(out: _Budget, view: View) -> None:
    """Say when the columns differ in torch release or build as well as in device, with the fixed-axis views."""
    mixed = releases.of(view.matrix).mixed
    if mixed is None or not view.full:
        return
    out.add(f"> **Device vs version:** {_plain(mixed.text(), 600)}")
    for v in mixed.views:
        what = f"same torch {v.key}, different device" if v.kind == "same_release" else \
            f"same device {v.key}, different torch"
        out.add(f"> - {_plain(what)}: `--envs {_flat(','.join(v.envs), 400)}`")
    out.add("")
