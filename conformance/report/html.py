"""compatibility.html: one self-contained page; env header, summaries and changes in HTML, the matrix from JSON.

The matrix itself is embedded as compact JSON, in proportion to the cells that exist, and drawn by inline
JavaScript (filters by outcome, area, env, divergence and text; 1,000 rows and 50 env columns at a time):
50,000 checks x 17 envs stay a few MB and open quickly, and so do 2,000 envs of ten checks each. Divergence,
row order and counts follow the envs shown; the address hash keeps the view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from html import escape

from conformance.protocol import properties as P
from conformance.protocol.stepcost import Trace
from conformance.report import model as m
from conformance.report import releases, stepcost, timeline
from conformance.report.html_assets import CSS, JS, STEPCOST_CSS
from conformance.report.view import device_names, release_tag, repro_for

MESSAGE_CHARS = 3000  # per cell: enough for an assertion and the end of a traceback
MESSAGE_BUDGET = 8_000_000  # all messages together; beyond it only the one-line reason is kept



def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _device(col: m.EnvColumn) -> str:
    b = col.build
    value = device_names(b.device_names, b.device_count) if b.device_names else b.device
    if b.device_count not in (0, 1) and not b.device_names:
        value = f"{b.device_count} × {value}"  # noqa: RUF001 - the multiplication sign is meant
    if not b.device_available:
        value = f"{b.device} unavailable: {b.device_reason}".strip()
    if b.device_simulated:  # a test stand-in (device profile): never real hardware
        value = f"SIMULATED device, not real hardware: {value}"
    return value


# Env build metadata: (label, value of the env's build record). The first _COLUMNS are env-table columns; all of
# them are in the env name's tooltip and in the matrix header tooltips.
_META: tuple[tuple[str, Callable[[m.EnvColumn], str]], ...] = (
    ("torch", lambda c: c.build.torch_version), ("variant", lambda c: _join(c.build.torch_variant,
                                                                            c.build.torch_source)),
    ("runtime", lambda c: _join(c.build.runtime, c.build.runtime_version)),
    ("driver", lambda c: c.build.driver_version), ("device", _device), ("backend", lambda c: c.build.backend),
    ("host", lambda c: c.build.hostname or c.result.hostname), ("python", lambda c: c.build.python_version),
    ("started", lambda c: c.build.start_time or c.result.timestamp),
    ("conformance", lambda c: c.build.conformance_version),
)
# Properties the _META columns show: the others are listed in the env's tooltip as they were written.
_SHOWN = frozenset({P.ENV, P.TORCH_VERSION, P.TORCH_VARIANT, P.TORCH_SOURCE, P.RUNTIME, P.RUNTIME_VERSION,
                    P.DRIVER_VERSION, P.DEVICE, P.DEVICE_NAMES, P.DEVICE_COUNT, P.DEVICE_AVAILABLE, P.DEVICE_REASON,
                    P.DEVICE_SIMULATED, P.BACKEND, P.HOSTNAME, P.PYTHON_VERSION, P.START_TIME,
                    P.CONFORMANCE_VERSION})
_COLUMNS = 7
_BADGE = {"failed": '<span class="badge o-F">FAIL</span>', "incomplete": '<span class="badge o-R">PART</span>',
          "unavailable": '<span class="badge o-U" title="nothing ran: device absent">N/A</span>',
          "idle": '<span class="badge o-s" title="nothing ran">IDLE</span>', "ok": '<span class="badge o-P">ok</span>'}
_NOTABLE = re.compile(f"[^{m.LETTER[m.PASSED]}{m.LETTER[m.MISSING]}]")
_BAR = {m.PASSED: "#3aa55b", m.FAILED: "#d33", m.ERROR: "#f08a24", m.CRASHED: "#5b1a5b", m.XPASS: "#c54fb8",
        m.XFAIL: "#e6c200", m.SKIPPED: "#bbb", m.UNAVAILABLE: "#8da2bf", m.NOT_APPLICABLE: "#ddd",
        m.NOT_RUN: "#f5b45a", m.MISSING: "#fff"}


def _meta(col: m.EnvColumn) -> list[tuple[str, str]]:
    """(header, value) for every env-table column, "" where the build record has nothing."""
    return [(label, value(col)) for label, value in _META]


def _short(col: m.EnvColumn) -> str:
    b = col.build
    simulated = "SIMULATED" if b.device_simulated else ""
    return " · ".join(x for x in (simulated, b.torch_variant or b.device, b.backend) if x)


def _bar(counts: m.Counts) -> str:
    total = counts.total + counts.missing
    if not total:
        return ""
    spans = "".join(f'<span style="width:{100 * counts.get(o) / total:.2f}%;background:{_BAR[o]}" '
                    f'title="{counts.get(o)} {m.LABEL[o]}"></span>' for o in m.OUTCOMES if counts.get(o))
    return f'<div class="bar">{spans}</div>'


def _env_title(col: m.EnvColumn) -> str:
    lines = [f"{k}: {v}" for k, v in _meta(col) if v]
    # Properties this page has no column for (a newer plugin, another tool) are still shown, never dropped.
    lines += [f"{k}: {v}" for k, v in col.metadata.items() if k not in _SHOWN and v]
    lines.append(f"file: {col.result.path} ({col.result.time:.1f} s of checks)")
    return "\n".join(lines)


def _env_table(matrix: m.Matrix) -> list[str]:
    heads = "".join(f'<th scope="col">{label}</th>' for label, _ in _META[:_COLUMNS])
    out = [('<div class="scroll"><table class="envs"><thead><tr><th scope="col">env</th><th scope="col">passed</th>'
            f'<th scope="col">other outcomes</th>{heads}</tr></thead><tbody>')]
    for col in matrix.envs:
        c = col.counts
        badge = _BADGE[col.status]
        others = ", ".join(f"{c.get(o)} {m.LABEL[o]}" for o in m.OUTCOMES if o != m.PASSED and c.get(o))
        if col.result.incomplete:
            others = f'<b class="regress">incomplete</b>: {escape(col.result.incomplete)}; {escape(others)}'
        else:
            others = escape(others)
        meta = "".join(f'<td class="meta">{escape(v)}</td>' for _, v in _meta(col)[:_COLUMNS])
        out.append(f'<tr><td class="name" title="{escape(_env_title(col))}">{badge} {escape(col.name)}</td>'
                   f'<td class="num">{c.passed}/{c.total}{_bar(c)}</td><td class="others">{others}</td>{meta}</tr>')
    for name in matrix.absent_envs:
        out.append(f'<tr><td class="name"><span class="badge o-M">none</span> {escape(name)}</td>'
                   f'<td class="regress" colspan="{_COLUMNS + 2}">expected (--expect), but no results file</td></tr>')
    out.append("</tbody></table></div>")
    return out


def _warnings(matrix: m.Matrix) -> list[str]:
    if not matrix.warnings:
        return []
    items = "".join(f"<li><code>{escape(w.path)}</code>: {escape(w.problem)}</li>" for w in matrix.warnings)
    return [f'<h2 id="warnings">Input warnings ({len(matrix.warnings)})</h2><div class="warn"><ul>{items}</ul></div>']


def _baseline(matrix: m.Matrix) -> list[str]:
    diff = matrix.baseline
    if diff is None:
        return []
    out = [(f'<h2 id="baseline">Against baseline <code>{escape(diff.path)}</code>: '
           f"{escape(diff.summary())}</h2>")]
    if diff.new_envs or diff.removed_envs:
        out.append(f"<p>new envs: {escape(', '.join(diff.new_envs) or 'none')}; envs gone: "
                   f"{escape(', '.join(diff.removed_envs) or 'none')}</p>")
    for env in dict.fromkeys(b.env for b in diff.builds):
        out.append(f'<p class="warn"><b>{escape(env)}</b> ran on another build or machine than in the baseline: '
                   f"{escape('; '.join(b.describe() for b in diff.changed(env)))}</p>")
    if diff.step_time:
        # With the outcome regressions, at the top: a CI maintainer reads what regressed in one place.
        def moved(env: str) -> str:
            changes = "; ".join(b.describe() for b in diff.changed(env))
            return f" <b>other hardware or build: {escape(changes)}</b>" if changes else ""

        items = "".join(f"<li>{escape(r.env)} {escape(r.schedule)} world {r.world}: {r.before_ms:.2f} → "
                        f"{r.after_ms:.2f} ms (+{r.growth:.0%}){moved(r.env)}</li>" for r in diff.step_time)
        out.append(f'<h3 class="regress" id="step-regressions">Step-time regressions ({len(diff.step_time)})</h3>'
                   f'<ul class="stepregress">{items}</ul>')
    lost = "Lost coverage" + (" (allowed)" if diff.lost_allowed else "")
    lost_css = "fix" if diff.lost_allowed else "regress"
    for title, css, changes in (("Regressions", "regress", diff.regressions), (lost, lost_css, diff.lost),
                                ("Fixes", "fix", diff.fixes),
                                ("New checks", "", diff.new), ("Removed checks", "", diff.removed)):
        if not changes:
            continue
        rows = "".join(f"<tr><td>{escape(c.env)}</td><td><code>{escape(c.id)}</code></td>"
                       f'<td class="o-{m.LETTER[c.before]}">{m.LETTER[c.before]} {escape(m.LABEL[c.before])}</td>'
                       f'<td class="o-{m.LETTER[c.after]}">{m.LETTER[c.after]} {escape(m.LABEL[c.after])}</td></tr>'
                       for c in changes[:2000])
        more = f"<p>… and {len(changes) - 2000} more (see compatibility.json)</p>" if len(changes) > 2000 else ""
        out.append(f'<h3 class="{css}">{title} ({len(changes)})</h3><div class="scroll"><table class="changes"><thead>'
                   '<tr><th scope="col">env</th><th scope="col">check</th><th scope="col">before</th>'
                   f'<th scope="col">now</th></tr></thead><tbody>{rows}</tbody></table></div>{more}')
    return out


def _filters(matrix: m.Matrix) -> str:
    totals = matrix.totals
    outcomes = "".join(f'<label class="o-{m.LETTER[o]}"><input type="checkbox" name="outcome" value="{m.LETTER[o]}" '
                       f'checked> {m.LETTER[o]} {escape(m.LABEL[o])} (<span class="n">{totals.get(o)}</span>)</label>'
                       for o in m.OUTCOMES)
    envs = "".join(f'<label><input type="checkbox" name="env" value="{i}" checked> {escape(c.name)}</label>'
                   for i, c in enumerate(matrix.envs))
    areas = "".join(f'<option value="{escape(a)}">{escape(a)}</option>' for a in matrix.areas)
    # On a phone the outcome and env lists fold into one line (open on a wide screen: the script opens them).
    return ('<form id="filters"><button type="button" id="failonly" title="rows with a failed, error, crashed or '
            'strict-xpass cell in a shown env, first lines of the messages inline">failures only</button>'
            '<details id="lists"><summary>outcomes and envs</summary>'
            f'<fieldset><legend>outcome (rows with it in a shown env)</legend>{outcomes}</fieldset>'
            f'<fieldset class="envs"><legend>envs shown</legend>{envs}</fieldset></details>'
            f'<label>area <select name="area"><option value="">all areas</option>{areas}</select></label>'
            '<label><input type="checkbox" name="divergent"> divergent only</label>'
            '<label><input type="checkbox" name="msgs"> messages inline</label>'
            '<label><input type="checkbox" name="times"> durations</label>'
            '<label>check <input type="search" name="q" placeholder="filter ids" size="14"></label>'
            '<button type="reset" id="reset">reset</button><span id="status" role="status"></span></form>')


NAME_CHARS = 40  # longer env names are shortened in the matrix header; the tooltip has them whole


def env_labels(names: list[str], limit: int = NAME_CHARS) -> list[str]:
    """Header labels: a name over `limit` characters is cut in the middle, unless another cut name keeps the same head
    (or two labels would read the same); then each of those keeps the part where the names differ
    (`…0105-nightly/drive…` and `…0105-release/drive…`, never two identical headers)."""

    def middle(name: str) -> str:
        return name if len(name) <= limit else f"{name[: limit - 16]}…{name[-15:]}"

    labels = [middle(n) for n in names]
    # Cut names that share the head the cut keeps (or read the same) get the part where they differ.
    clashes: dict[str, list[int]] = {}
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        clashes.setdefault(name[: limit - 16] if label != name else label, []).append(i)
    for group in clashes.values():
        if len(group) < 2:
            continue
        members = [names[i] for i in group]
        start = _common(members)
        end = _common([n[::-1] for n in members])
        for i in group:
            name = names[i]
            # The differing part with a little context on each side, cut to the limit.
            lo, hi = max(0, start - 6), min(len(name), len(name) - end + 6)
            part = name[lo:hi]
            if len(part) > limit - 2:
                part = part[: limit - 2]
            labels[i] = ("…" if lo > 0 else "") + part + ("…" if hi < len(name) else "")
    return labels


def _common(texts: list[str]) -> int:
    """Length of the prefix every text shares."""
    n = 0
    while all(len(t) > n for t in texts) and len({t[n] for t in texts}) == 1:
        n += 1
    return n


def _time_text(cell: m.Cell) -> str:
    return cell.time_text or f"{cell.time:g}"


def _message(cell: m.Cell, budget: int) -> tuple[str, int]:
    """A cell's text for the page and what is left of the budget: the message, then the end of its detail."""
    text = cell.message
    if cell.detail and cell.detail != cell.message and budget > 0:
        detail = cell.detail[-MESSAGE_CHARS:]  # the end of a traceback says the most
        cut = "…" if len(cell.detail) > MESSAGE_CHARS else ""
        text = f"{text}\n\n{cut}{detail}" if text else cut + detail
        budget -= len(detail)
    return text, budget


def _first_seen(matrix: m.Matrix) -> list[int]:
    """Per row, its rank in reading order (envs in column order, cases in file order): the order of a view's rows
    within an area, as the matrix build orders them."""
    seen: dict[str, int] = {}
    for col in matrix.envs:
        for cell in col.result.cases:
            seen.setdefault(cell.key, len(seen))
    return [seen.get(row.key, i) for i, row in enumerate(matrix.rows)]


def _data(matrix: m.Matrix) -> str:
    """The matrix as compact JSON, in proportion to the cells that exist.

    A row present in most envs is its code string, one letter per env (M where missing), with its time texts
    joined by ","; a row present in few envs (a third or less: one file per test class, thousands of envs) lists
    only those: [codes, env indices] and one time text per present cell.
    """
    rows: list[list[object]] = []
    times: list[str] = []  # strings embed far faster than floats
    msgs: dict[str, str] = {}
    budget = MESSAGE_BUDGET
    n = len(matrix.envs)
    area_index = {a: i for i, a in enumerate(matrix.areas)}
    for r, row in enumerate(matrix.rows):
        codes, cells = row.codes, row.cells
        if 3 * len(cells) <= n:
            present = sorted(cells)
            rows.append([row.key, area_index[row.area], "".join([codes[e] for e in present]), present])
            times.append(",".join([_time_text(cells[e]) for e in present]))
            notable: Iterable[int] = [e for e in present if _NOTABLE.match(codes, e)]
        else:
            rows.append([row.key, area_index[row.area], codes])
            times.append(row.time_texts)
            # Only cells other than passed/missing can carry a message: let the regex engine find them.
            notable = (hit.start() for hit in _NOTABLE.finditer(codes))
        for e in notable:
            cell = cells[e]
            if cell.message or cell.detail:
                msgs[f"{r}:{e}"], budget = _message(cell, budget)
            if cmd := repro_for(row.key, cell, matrix.envs[e]):  # the message ends with it
                msgs[f"{r}:{e}"] = f"{msgs.get(f'{r}:{e}', '')}\n\nstandalone reproduction: {cmd}".lstrip()
    data = {
        "envs": [c.name for c in matrix.envs],
        "envShort": [_short(c) for c in matrix.envs],
        "envLabels": env_labels([c.name for c in matrix.envs]),
        "envTorch": [release_tag(c.build.torch_version) for c in matrix.envs],
        "envTitles": [_env_title(c) for c in matrix.envs],
        "areas": matrix.areas,
        "labels": {m.LETTER[o]: m.LABEL[o] for o in m.OUTCOMES},
        "rows": rows, "times": times, "msgs": msgs, "seen": _first_seen(matrix),
    }
    # "<" escaped as \u003c keeps "</script>" and "<!--" inside strings from ending the script element.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


OPEN_TIMELINES = 3  # per env, the first timelines are drawn open; the others one click away


def _stepcost(matrix: m.Matrix) -> list[str]:
    """Per env: the step-cost table and a timeline per measured trace (nothing when no env has either)."""
    envs = [c for c in matrix.envs if c.costs or c.traces]
    regress = matrix.baseline.step_time if matrix.baseline else []
    if not envs and not regress:
        return []
    out = [f"<style>{STEPCOST_CSS}</style>", ('<h2 id="stepcost">Step cost and measured timelines <span class="meta">'
           "from the behaviour checks' traces; Chrome traces in traces/ beside this file</span></h2>"),
           f'<p class="meta stepdefs">{escape(stepcost.DEFINITIONS)}</p>']
    if regress:
        out.append(f'<p class="regress">{len(regress)} step-time regressions against the baseline: listed with '
                   'the other regressions <a href="#step-regressions">at the top</a>; the tables show each delta.</p>')
    out += _ranking(matrix)
    before = matrix.baseline.step_before if matrix.baseline else {}
    for col in envs:
        # Each env's block follows the env view of the matrix (the page's script hides the envs not shown).
        out.append(f'<section class="stepenv" data-stepenv="{escape(col.name)}">'
                   f'<h3 class="stepcost-env">{escape(col.name)}</h3>')
        analysis = stepcost.analysis(col)
        for caption, rows in stepcost.tables(col.costs):
            old = before.get(col.name, {})
            head = "".join(f'<th scope="col">{escape(h)}</th>' for h in stepcost.HEAD)
            head += '<th scope="col">vs baseline</th>' if old else ""
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in stepcost.row_cells(
                cost, analysis.get(check))) + (_delta(old.get((cost.schedule, cost.world)), cost.step_ms)
                                               if old else "") + "</tr>" for check, cost in rows)
            out.append(f'<table class="stepcost"><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>'
                       f"<tbody>{body}</tbody></table>")
            bars = [(f"{cost.schedule} world {cost.world}", stepcost.bar_segments(analysis[check]))
                    for check, cost in rows if check in analysis]
            if bars:
                out.append(timeline.stack_legend() + timeline.stack_svg(bars))
        if col.traces:
            out.append(timeline.legend())
            for i, (name, tr) in enumerate(col.traces):
                t0, t1 = timeline.span(tr)
                summary = f"{escape(tr.schedule)} world {tr.world} · {(t1 - t0) / 1000:.2f} ms · {escape(name)}"
                opened = " open" if i < OPEN_TIMELINES else ""
                link = (f' · <a href="{escape(stepcost.trace_path(col.name, name))}">trace file</a> (Perfetto, '
                        "chrome://tracing)")
                out.append(f'<details class="tl"{opened}><summary>{summary}{link}{_trace_note(col, name, tr)}</summary>'
                           f"{timeline.svg(tr)}</details>")
        out.append("</section>")
    return out


def _delta(was: float | None, now: float) -> str:
    """A step-cost table cell: the change of the step time against the baseline's."""
    if not was:
        return "<td>—</td>"
    growth = now / was - 1
    css = "delta-up" if now - was > max(stepcost.STEP_REGRESSION * was, stepcost.STEP_REGRESSION_MIN_MS) else (
        "delta-down" if growth < 0 else "")
    return f'<td class="{css}" title="baseline {was:.2f} ms">{growth:+.0%}</td>'


def _trace_note(col: m.EnvColumn, name: str, trace: Trace) -> str:
    """Which step a timeline is, against the table's step time of the same check."""
    cost = next((c for check, c in col.costs if check == name), None)
    if cost is None:
        return ""
    if cost.traced_step_ms is not None:  # every timed step traced: the timeline is the median step itself
        return (f'<br><span class="meta">the median of {cost.steps} traced steps: the table\'s '
                f"{cost.step_ms:.2f} ms</span>")
    return (f'<br><span class="meta">an older run\'s one traced step, the last; the table\'s {cost.step_ms:.2f} ms '
            f"is the median of {cost.steps} untraced steps</span>")


def _ranking(matrix: m.Matrix) -> list[str]:
    """Per world size: schedules ranked by step time (mean rank over the envs), step time and bubble per env."""
    envs = [c for c in matrix.envs if c.costs]
    if not envs:
        return []
    out = [('<h3 id="ranking">Schedules ranked by step time</h3><p class="meta">per world size, fastest first (by '
            "the mean of its rank in each env); each cell: step time, measured bubble, and its rank in that env</p>")]
    worlds = sorted({cost.world for c in envs for _, cost in c.costs})
    for world in worlds:
        # The step-cost model's table (the first family of each env) is what ranks: one number per schedule x env.
        per_env = {c.name: {cost.schedule: cost for _, cost in reversed(c.costs) if cost.world == world} for c in envs}
        shown = [c for c in envs if per_env[c.name]]
        if not shown:
            continue
        ranks: dict[str, dict[str, int]] = {}
        for c in shown:
            costs = per_env[c.name]
            fastest = sorted(costs.values(), key=lambda cost: cost.step_ms)
            for i, cost in enumerate(fastest):
                ranks.setdefault(cost.schedule, {})[c.name] = i + 1
        order = sorted(ranks, key=lambda s: (sum(ranks[s].values()) / len(ranks[s]), m.schedule_rank(s)))
        head = "".join(f'<th scope="col" data-stepenv="{escape(c.name)}">{escape(c.name)}</th>' for c in shown)
        rows = []
        for sched in order:
            cells = []
            for c in shown:
                mine = per_env[c.name].get(sched)
                if mine is None:
                    cells.append(f'<td data-stepenv="{escape(c.name)}">—</td>')
                    continue
                rank = ranks[sched][c.name]
                bubble = f"{mine.bubble:.0%}" if mine.bubble is not None else "—"
                cells.append(f'<td data-stepenv="{escape(c.name)}"{" class=best" if rank == 1 else ""}>'
                             f"{mine.step_ms:.2f} ms · bubble {bubble} · #{rank}</td>")
            rows.append(f'<tr><th scope="row">{escape(sched)}</th>{"".join(cells)}</tr>')
        out.append(f'<div class="scroll"><table class="rank"><caption>world {world}</caption><thead><tr>'
                   f'<th scope="col">schedule</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return out


def render_html(matrix: m.Matrix) -> str:
    legend = "".join(f'<span class="k o-{m.LETTER[o]}">{m.LETTER[o]}</span>{escape(m.LABEL[o])}' for o in m.OUTCOMES)
    divergent = matrix.divergent
    steps = _stepcost(matrix)
    jump = ' · <a href="#stepcost">step cost and timelines</a>' if steps else ""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Conformance: {len(matrix.rows)} checks x {len(matrix.envs)} envs</title>",
        f"<style>{CSS}</style></head><body>",
        '<a class="skip" href="#wrap">Skip to the matrix</a>',
        "<h1>Pipeline-parallel conformance across devices</h1>",
        (f'<p class="lead">{len(matrix.rows)} checks × {len(matrix.envs)} envs · '  # noqa: RUF001 - the multiplication sign is meant
        f'<b><span id="ndiv">{divergent}</span> divergent</b> (outcome differs across the envs shown, '
        "device-unavailable cells aside) · "
        f"{escape(', '.join(matrix.failed_envs) or 'no env')} with failures{jump}</p>"),
        *_env_table(matrix),
        *_warnings(matrix),
        *_baseline(matrix),
        *_release_delta(matrix),
        ('<h2 id="matrix-title">Matrix <span class="meta">failures first, then divergent checks, then by area; '
        "click an underlined cell for its message</span></h2>"),
        *_mixed_axes(matrix),
        f'<p class="legend meta">{legend}</p>',
        _filters(matrix),
        ('<noscript><p class="warn">The matrix is drawn by JavaScript; compatibility.md and compatibility.json hold '
        "the same results without it.</p></noscript>"),
        '<p id="notice" class="warn" role="status" hidden></p>',
        # The column pager sits right above the header row it pages.
        ('<p id="colpager" hidden><button type="button" id="colprev">◀ envs</button> <span id="colinfo"></span> '
        '<button type="button" id="colnext">envs ▶</button></p>'),
        '<div id="wrap" tabindex="-1"><table id="matrix"><thead></thead><tbody></tbody></table></div>',
        '<button id="more" type="button" hidden>show more</button>',
        # After the matrix: the page answers "what differs" first; timelines are long and per env.
        *steps,
        (f'<footer>generated by <span class="generator">{escape(matrix.generator)}</span> at '
        f'<span class="generated-at">{escape(matrix.generated_at)}</span></footer>'),
        f'<script type="application/json" id="matrix-data">{_data(matrix)}</script>',
        f"<script>{JS}</script>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


_DELTA_ROWS = 500  # per status, checks listed one by one (compatibility.json has them all)


def _state_cell(state: str | None) -> str:
    if state is None:
        return '<td class="o-U" title="device absent: says nothing about this release">?</td>'
    if state == releases.FLAKY:
        return '<td class="o-R" title="runs of this release disagree">flaky</td>'
    return f'<td class="o-{m.LETTER[state]}">{m.LETTER[state]} {escape(m.LABEL[state])}</td>'


def _release_delta(matrix: m.Matrix) -> list[str]:
    """Per version axis: the checks whose outcome differs between torch releases, by status, then by failure type
    and first error line, with the release of the first change (or why it cannot be told)."""
    out = []
    for axis in releases.of(matrix).axes:
        labels = axis.labels
        counts = axis.counts()
        summary = ", ".join(f"{n} {releases.STATUS_LABEL[s]}" for s, n in counts.items() if n) or "no change"
        named = f"-{axis.hardware}" if axis.named else ""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{axis.device}-{axis.count}{named}")
        cols = "; ".join(f"{c.label}: {', '.join(e.name for e in c.envs)}"
                         + (f" ({escape(c.sources)})" if axis.sources_differ and c.sources else "")
                         for c in axis.columns)
        out.append(f'<h2 id="releases-{escape(slug)}">Release delta: {escape(axis.title)}</h2>'
                   f'<p class="releases"><b>[Release/{labels[-1]}] {escape(summary)} compared with {labels[0]}</b>; '
                   f"only checks whose outcome differs between releases are listed. Columns: {escape(cols)}"
                   + ("; host and pinned builds on one axis" if axis.sources_differ else "") + "</p>")
        for status, checks in axis.by_status().items():
            if not checks:
                continue
            css = {releases.NEWLY_FAILING: "regress", releases.FIXED: "fix"}.get(status, "")
            groups = "".join(f"<tr><td><code>{escape(t)}</code></td><td><code>{escape(line)}</code></td>"
                             f"<td>{len(g)}</td><td>{escape(', '.join(sorted({c.first_changed or '?' for c in g})))}"
                             "</td></tr>" for t, line, g in axis.groups(status))
            heads = "".join(f"<th>{escape(label)}</th>" for label in labels)
            rows = "".join(f"<tr><td><code>{escape(c.id)}</code></td>{''.join(_state_cell(s) for s in c.states)}"
                           f"<td>{escape(c.first_changed or '? (' + c.uncertain + ')')}</td></tr>"
                           for c in checks[:_DELTA_ROWS])
            more = (f"<p>… and {len(checks) - _DELTA_ROWS} more (see compatibility.json)</p>"
                    if len(checks) > _DELTA_ROWS else "")
            repro = [c.repro for c in checks[:_DELTA_ROWS] if c.repro]
            out.append(f'<h3 class="{css}">{escape(releases.STATUS_LABEL[status]).capitalize()} ({len(checks)})</h3>'
                       '<table class="changes"><thead><tr><th>failure type</th><th>first error line</th><th>checks'
                       f"</th><th>first changed in</th></tr></thead><tbody>{groups}</tbody></table>"
                       f'<table class="changes"><thead><tr><th>check</th>{heads}<th>first changed in</th></tr></thead>'
                       f"<tbody>{rows}</tbody></table>{more}"
                       + (f'<p>Reproduce:</p><pre class="repro">{escape(chr(10).join(repro))}</pre>' if repro else ""))
    return out


def _mixed_axes(matrix: m.Matrix) -> list[str]:
    """On the divergence view: the columns differ in torch release or build as well as in device; links to the views
    that hold one axis fixed."""
    mixed = releases.of(matrix).mixed
    if mixed is None:
        return []
    links = []
    for v in mixed.views:
        what = (f"same torch {v.key}, different device" if v.kind == "same_release"
                else f"same device {v.key}, different torch")
        links.append(f'<li><a class="axis-view" href="{escape(releases.view_hash(v.envs))}">{escape(what)}</a>: '
                     f"{escape(', '.join(v.envs))}</li>")
    items = f"<ul>{''.join(links)}</ul>" if links else ""
    return [(f'<div class="warn" id="axes"><p><b>Device vs version:</b> {escape(mixed.text())}</p>'
             f"<p>Compare with one axis fixed (divergent rows of those envs only):</p>{items}</div>")]
