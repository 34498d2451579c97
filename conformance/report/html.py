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
from conformance.report import model as m
from conformance.report import releases
from conformance.report import stepcost, timeline
from conformance.report.html_assets import CSS, JS, STEPCOST_CSS

MESSAGE_CHARS = 3000  # per cell: enough for an assertion and the end of a traceback
MESSAGE_BUDGET = 8_000_000  # all messages together; beyond it only the one-line reason is kept



def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _device(col: m.EnvColumn) -> str:
    b = col.build
    value = b.device_names or b.device
    if b.device_count not in (0, 1) and "," not in value:
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
    heads = "".join(f"<th>{label}</th>" for label, _ in _META[:_COLUMNS])
    out = [(f'<table class="envs"><thead><tr><th>env</th><th>passed</th><th>other outcomes</th>{heads}</tr></thead>'
           "<tbody>")]
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
    out.append("</tbody></table>")
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
        out.append(f'<h3 class="{css}">{title} ({len(changes)})</h3><table class="changes"><thead><tr><th>env</th>'
                   f"<th>check</th><th>before</th><th>now</th></tr></thead><tbody>{rows}</tbody></table>{more}")
    return out


def _filters(matrix: m.Matrix) -> str:
    totals = matrix.totals
    outcomes = "".join(f'<label class="o-{m.LETTER[o]}"><input type="checkbox" name="outcome" value="{m.LETTER[o]}" '
                       f'checked> {m.LETTER[o]} {escape(m.LABEL[o])} (<span class="n">{totals.get(o)}</span>)</label>'
                       for o in m.OUTCOMES)
    envs = "".join(f'<label><input type="checkbox" name="env" value="{i}" checked> {escape(c.name)}</label>'
                   for i, c in enumerate(matrix.envs))
    areas = "".join(f'<option value="{escape(a)}">{escape(a)}</option>' for a in matrix.areas)
    return (f'<form id="filters"><fieldset><legend>outcome (rows with it in a shown env)</legend>{outcomes}</fieldset>'
            f'<fieldset class="envs"><legend>envs shown</legend>{envs}</fieldset>'
            f'<label>area <select name="area"><option value="">all areas</option>{areas}</select></label>'
            f'<label><input type="checkbox" name="divergent"> divergent only</label>'
            f'<label><input type="checkbox" name="times"> durations</label>'
            f'<label>check <input type="search" name="q" placeholder="filter ids" size="18"></label>'
            f'<button type="reset" id="reset">reset</button><span id="status"></span></form>')


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
    data = {
        "envs": [c.name for c in matrix.envs],
        "envShort": [_short(c) for c in matrix.envs],
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
           "from the behaviour checks' traces; Chrome traces in traces/ beside this file</span></h2>")]
    if regress:
        items = "".join(f"<li>{escape(r.env)} {escape(r.schedule)} world {r.world}: {r.before_ms:.2f} → "
                        f"{r.after_ms:.2f} ms (+{r.growth:.0%})</li>" for r in regress)
        out.append(f'<h3>Step-time regressions</h3><ul class="stepregress">{items}</ul>')
    for col in envs:
        out.append(f'<h3 class="stepcost-env">{escape(col.name)}</h3>')
        if col.costs:
            head = "".join(f"<th>{escape(h)}</th>" for h in stepcost.HEAD)
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in stepcost.row_cells(cost)) + "</tr>"
                           for _, cost in col.costs)
            out.append(f'<table class="stepcost"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        if col.traces:
            out.append(timeline.legend())
            for i, (name, tr) in enumerate(col.traces):
                t0, t1 = timeline.span(tr)
                summary = f"{escape(tr.schedule)} world {tr.world} · {(t1 - t0) / 1000:.2f} ms · {escape(name)}"
                opened = " open" if i < OPEN_TIMELINES else ""
                out.append(f'<details class="tl"{opened}><summary>{summary}</summary>{timeline.svg(tr)}</details>')
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
        "<h1>Pipeline-parallel conformance across devices</h1>",
        (f'<p class="lead">{len(matrix.rows)} checks × {len(matrix.envs)} envs · '  # noqa: RUF001 - the multiplication sign is meant
        f'<b><span id="ndiv">{divergent}</span> divergent</b> (outcome differs across the envs shown, '
        "device-unavailable cells aside) · "
        f"{escape(', '.join(matrix.failed_envs) or 'no env')} with failures{jump}</p>"),
        *_env_table(matrix),
        *_warnings(matrix),
        *_baseline(matrix),
        *_release_delta(matrix),
        ('<h2 id="matrix-title">Matrix <span class="meta">divergent checks first, then by area; '
        "click an underlined cell for its message</span></h2>"),
        *_mixed_axes(matrix),
        f'<p class="legend meta">{legend}</p>',
        _filters(matrix),
        ('<noscript><p class="warn">The matrix is drawn by JavaScript; compatibility.md and compatibility.json hold '
        "the same results without it.</p></noscript>"),
        '<div id="wrap"><table id="matrix"><thead></thead><tbody></tbody></table></div>',
        ('<p id="colpager" hidden><button type="button" id="colprev">◀ envs</button> <span id="colinfo"></span> '
        '<button type="button" id="colnext">envs ▶</button></p>'),
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
