"""Inline CSS and JavaScript of compatibility.html (no network: the page must open from a CI artifact)."""

from __future__ import annotations

CSS = """
:root { --b: #c9ced6; --fg: #1b1f24; --muted: #5b6470; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0 1.2em 2em; color: var(--fg); font-size: 14px; }
h1 { font-size: 1.35em; margin: .7em 0 .2em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
.lead { color: var(--muted); margin: 0 0 .8em; }
table { border-collapse: collapse; }
.envs td, .envs th, .changes td, .changes th { border: 1px solid var(--b); padding: 3px 7px; text-align: left;
  vertical-align: top; }
.envs th, .changes th { background: #f3f5f8; }
.envs .name { font-weight: 600; white-space: nowrap; }
.meta { color: var(--muted); font-size: .92em; }
.envs td.meta { max-width: 18em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.envs td.num { white-space: nowrap; } .envs td.others { font-size: .92em; max-width: 26em; }
.envs td.name { cursor: help; }
.badge { display: inline-block; font-size: .8em; font-weight: 700; padding: 0 4px; border-radius: 3px; min-width: 2.6em;
  text-align: center; }
.bar { display: flex; width: 120px; height: 8px; border: 1px solid var(--b); margin-top: 2px; }
.bar span { display: block; height: 100%; }
.warn { background: #fff8e1; border: 1px solid #e6c200; padding: .5em 1em; }
.warn li { margin: .15em 0; } code { font-size: .95em; }
.regress { color: #8b0000; font-weight: 600; } .fix { color: #0a5c1f; font-weight: 600; }
/* Not sticky: a sticky bar covered the matrix's env headers and the targets of the page's own links. The matrix
   scrolls in its own box, where the env headers and the check column stay. */
#filters { background: #fff; padding: .5em 0; border-bottom: 1px solid var(--b);
  display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center; }
#filters details { display: contents; } #filters details > summary { display: none; }
#filters button { font: inherit; }
#failonly { font-weight: 600; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1em; top: .5em; background: #fff; padding: .3em; z-index: 9; }
#notice { margin: .5em 0; }
#matrix thead button.only { display: block; margin: 2px auto 0; font-size: 10px; padding: 0 4px; }
#matrix tr.grp.fail th { background: #f7c6c6; }
#matrix tr.notes td { background: #fff7f7; font-size: 12px; } #matrix tr.notes ul { margin: .1em 0 .2em 1.2em; padding: 0; }
#matrix tr.notes li { white-space: normal; overflow-wrap: anywhere; }
/* Nothing makes the page wider than the window: wide tables scroll on their own, drawings scale down. */
.scroll { max-width: 100%; overflow-x: auto; }
table.changes, table.stepcost { display: block; max-width: 100%; overflow-x: auto; }
svg { max-width: 100%; height: auto; }
p, li, summary, h1, h2, h3 { overflow-wrap: anywhere; }
table.rank td, table.rank th { border: 1px solid var(--b); padding: 2px 7px; text-align: right; }
table.rank td:first-child, table.rank th:first-child { text-align: left; }
table.rank td.best { font-weight: 700; }
.delta-up { color: #8b0000; font-weight: 600; } .delta-down { color: #0a5c1f; }
#filters fieldset { border: 1px solid var(--b); padding: 2px 8px; margin: 0; }
#filters fieldset.envs { max-height: 7.5em; overflow: auto; }
#filters legend { font-size: .85em; color: var(--muted); padding: 0 3px; }
#filters label { white-space: nowrap; margin-right: .5em; font-size: .92em; }
#status { color: var(--muted); font-size: .92em; }
#wrap { overflow: auto; max-height: calc(100vh - 40px); border: 1px solid var(--b); margin-top: .5em; }
#matrix { font-size: 12.5px; }
#matrix th, #matrix td { border: 1px solid #e1e4e8; padding: 1px 4px; }
#matrix thead th { position: sticky; top: 0; z-index: 3; background: #f3f5f8; font-weight: 600; vertical-align: bottom;
  max-width: 7em; overflow-wrap: normal; word-break: normal; hyphens: none; }
#matrix thead th small { display: block; font-weight: 400; color: var(--muted); }
#matrix .id { position: sticky; left: 0; z-index: 2; background: #fff; text-align: left; font-weight: 400;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
/* A table cell ignores max-width: the box inside it holds a long id to 40em and wraps it (ids over 160 characters are
   cut in the middle; the whole id is in the tooltip), so no two rows read the same. */
#matrix .id > div { max-width: 40em; overflow-wrap: anywhere; }
#matrix thead th.id { z-index: 4; background: #f3f5f8; vertical-align: bottom; }
#matrix tr.grp th { position: static; text-align: left; background: #e9edf2; font-weight: 600; }
#matrix tr.grp.div th { background: #fde2e2; }
#matrix td.c { text-align: center; font-family: ui-monospace, monospace; font-weight: 700; min-width: 2.2em;
  cursor: default; }
#matrix td.c.has { cursor: pointer; text-decoration: underline dotted; }
#matrix tr.msg td { background: #fbfbfc; }
#matrix tr.msg pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: .3em 0; max-height: 24em; overflow: auto;
  font-size: 12px; }
#matrix tr.msg code, .changes code { word-break: break-all; }
.o-P { background: #d3f2dc; color: #0a5c1f; } .o-F { background: #f7c6c6; color: #7a0000; }
.o-E { background: #ffd6a8; color: #7a3600; } .o-C { background: #5b1a5b; color: #fff; }
.o-X { background: #f3c4ee; color: #6b0f63; } .o-x { background: #fff0b0; color: #6b5400; }
.o-s { background: #ececec; color: #444; } .o-U { background: #dde4ee; color: #334a66; }
.o-N { background: #f4f4f4; color: #666; } .o-R { background: repeating-linear-gradient(45deg,#ffe6c2 0 4px,#fff3e0 4px 8px);
  color: #7a4a00; } .o-M { background: #fff; color: #595959; border: 1px dashed #888 !important; }
.legend span.k { display: inline-block; min-width: 1.6em; text-align: center; font-family: ui-monospace, monospace;
  font-weight: 700; border: 1px solid #ccc; margin: 0 .2em 0 .6em; }
#more { margin: .6em 0; }
footer { margin-top: 1.5em; color: var(--muted); font-size: .85em; }
/* A phone: the check column gives way to the cells, the filters fold into one line, wide tables scroll alone. */
@media (max-width: 700px) {
  body { margin: 0 .5em 2em; }
  #matrix .id > div { width: 38vw; max-width: 38vw; font-size: 11px; }
  #filters { gap: .3em .6em; }
  #filters details { display: block; width: 100%; } #filters details > summary { display: list-item; cursor: pointer; }
  #filters fieldset.envs { max-height: 6em; }
  #wrap { max-height: calc(100vh - 20px); }
}
"""

JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("matrix-data").textContent);
  var PAGE = 1000, limit = PAGE, COLS = 50, colPage = 0;
  var LETTERS = "PFECXxsUNRM", BIT = {}, UNAVAILABLE = 1 << LETTERS.indexOf("U"), MISSING = 1 << LETTERS.indexOf("M");
  for (var b = 0; b < LETTERS.length; b++) BIT[LETTERS.charAt(b)] = 1 << b;
  var FAIL_LETTERS = "FECX", FAILS = BIT.F | BIT.E | BIT.C | BIT.X;
  var table = document.getElementById("matrix"), body = table.tBodies[0], thead = table.tHead;
  var status = document.getElementById("status"), more = document.getElementById("more");
  var form = document.getElementById("filters"), pager = document.getElementById("colpager");
  var ID_CHARS = 160;  // a check id is cut in the middle beyond this; its cell's tooltip has it whole
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;"); }
  function middle(s, n) { return s.length <= n ? s : s.slice(0, n - 16) + "\u2026" + s.slice(-15); }
  // A link may hold a bad percent escape (hand-edited, cut by a chat client): keep its text, never stop the page.
  function decode(s) { try { return decodeURIComponent(s); } catch (e) { return s; } }
  function checked(name) {
    var out = {}; form.querySelectorAll("input[name=" + name + "]").forEach(function (b) { out[b.value] = b.checked; });
    return out;
  }
  // Rows are stored densely (one letter per env) or, when present in few envs, as [codes, env indices].
  function sparse(row) { return row.length > 3; }
  function slot(row, e) {  // position of env e in a sparse row, -1 where the row has no cell there
    if (!row.at) { row.at = {}; row[3].forEach(function (x, k) { row.at[x] = k; }); }
    var k = row.at[e]; return k === undefined ? -1 : k;
  }
  function codeAt(row, e) {
    if (!sparse(row)) return row[2].charAt(e);
    var k = slot(row, e); return k < 0 ? "M" : row[2].charAt(k);
  }
  function timeAt(row, ts, e) {
    if (!sparse(row)) return ts[e];
    var k = slot(row, e); return k < 0 ? null : ts[k];
  }
  // What the shown envs say about every row: outcome bits, divergence (unavailable aside, as in the full matrix)
  // and per-outcome cell counts. Computed once per env selection, in proportion to the cells.
  var viewKey = null, view = null;
  function summarise(cols) {
    var key = cols.join(","); if (key === viewKey) return view;
    var on = new Uint8Array(D.envs.length), counts = {}, bits = new Uint16Array(D.rows.length), order = [];
    cols.forEach(function (e) { on[e] = 1; });
    LETTERS.split("").forEach(function (c) { counts[c] = 0; });
    for (var r = 0; r < D.rows.length; r++) {
      var row = D.rows[r], codes = row[2], mask = 0, c;
      if (sparse(row)) {
        var seen = 0;
        for (var j = 0; j < row[3].length; j++) {
          if (!on[row[3][j]]) continue;
          c = codes.charAt(j); mask |= BIT[c]; counts[c]++; seen++;
        }
        if (seen < cols.length) { mask |= MISSING; counts.M += cols.length - seen; }
      } else {
        for (var k = 0; k < cols.length; k++) { c = codes.charAt(cols[k]); mask |= BIT[c]; counts[c]++; }
      }
      bits[r] = mask;
      order.push(r);
    }
    var div = new Uint8Array(D.rows.length), ndiv = 0, prob = new Uint8Array(D.rows.length), nprob = 0;
    for (r = 0; r < D.rows.length; r++) {
      var rest = bits[r] & ~UNAVAILABLE;
      if (rest & (rest - 1)) { div[r] = 1; ndiv++; }  // two or more outcomes
      if (bits[r] & FAILS) { prob[r] = 1; nprob++; }
    }
    // Rows where something broke in a shown env first, then divergent rows, then by area; within those, in the order
    // the checks were first read.
    order.sort(function (a, b) { return (prob[b] - prob[a]) || (div[b] - div[a]) || (D.rows[a][1] - D.rows[b][1]) ||
      (D.seen[a] - D.seen[b]); });
    viewKey = key;
    view = { bits: bits, div: div, ndiv: ndiv, prob: prob, nprob: nprob, counts: counts, order: order };
    return view;
  }
  function state() {
    var envOn = checked("env"), cols = [], mask = 0, outcomes = checked("outcome");
    D.envs.forEach(function (e, i) { if (envOn[String(i)]) cols.push(i); });
    LETTERS.split("").forEach(function (c) { if (outcomes[c]) mask |= BIT[c]; });
    return { outcomes: outcomes, mask: mask, cols: cols, area: form.area.value, div: form.divergent.checked,
             times: form.times.checked, msgs: form.msgs.checked, q: form.q.value.trim().toLowerCase() };
  }
  function keep(r, s, v) {
    var row = D.rows[r];
    if (s.div && !v.div[r]) return false;
    if (s.area !== "" && D.areas[row[1]] !== s.area) return false;
    if (s.q && row[0].toLowerCase().indexOf(s.q) < 0) return false;
    return (v.bits[r] & s.mask) !== 0;
  }
  // Env names break only after "/", "-" and a "." that ends a word (h100x2/ | cuda, xpu. | nightly), never inside
  // a word or a version number (torch2.11).
  // Long names come shortened by the page's generator so that they stay distinct (D.envLabels).
  function envLabel(i) {
    return esc(D.envLabels[i]).replace(/([\/\-]|\.(?![0-9]))/g, "$1<wbr>");
  }
  function head(cols) {
    var h = "<tr><th class=id scope=col>check</th>";
    cols.forEach(function (i) { h += "<th scope=col data-e=" + i + " title=\"" + esc(D.envs[i] + "\n" + D.envTitles[i]) +
      "\"><span class=env>" + envLabel(i) + "</span><small>" + esc(D.envShort[i]) + "</small>" +
      (D.envs.length > 1 ? "<button type=button tabindex=-1 class=only data-e=" + i + " title=\"show only " + esc(D.envs[i]) +
      "\">only</button>" : "") + "</th>"; });
    table.tHead.innerHTML = h + "</tr>";
  }
  function headings(s, v) {
    document.getElementById("ndiv").textContent = String(v.ndiv);
    form.querySelectorAll("input[name=outcome]").forEach(function (b) {
      b.parentNode.querySelector(".n").textContent = String(v.counts[b.value]); });
  }
  function pageCols(s) {
    var pages = Math.max(1, Math.ceil(s.cols.length / COLS));
    colPage = Math.min(Math.max(colPage, 0), pages - 1);
    pager.hidden = pages < 2;
    document.getElementById("colinfo").textContent = "envs " + (colPage * COLS + 1) + "\u2013" +
      Math.min(s.cols.length, (colPage + 1) * COLS) + " of " + s.cols.length;
    document.getElementById("colprev").disabled = colPage === 0;
    document.getElementById("colnext").disabled = colPage >= pages - 1;
    return s.cols.slice(colPage * COLS, (colPage + 1) * COLS);
  }
  // Text of a message with its links made clickable; a link into PyTorch's source at a release tag points at the
  // env's own torch release (an xfail written against 2.13 names the code a 2.11 run actually ran).
  function linkify(text, e) {
    var out = "", last = 0, re = /https?:\/\/[^\s<>"'`)\]]+/g, hit;
    while ((hit = re.exec(text)) !== null) {
      var url = hit[0].replace(/[.,;:]+$/, "");
      if (D.envTorch[e]) url = url.replace(/(github\.com\/pytorch\/pytorch\/(?:blob|tree)\/)v\d+\.\d+\.\d+(?=\/)/,
                                           "$1v" + D.envTorch[e]);
      out += esc(text.slice(last, hit.index)) + "<a href=\"" + esc(url) + "\" rel=\"noreferrer\">" + esc(url) + "</a>";
      last = hit.index + hit[0].replace(/[.,;:]+$/, "").length;
    }
    return out + esc(text.slice(last));
  }
  // The group row names the area: drop the matching module from the id to keep the column narrow, unless another
  // row's id would then read the same (test_split::x and test_stage::x).
  var shortLabel = D.rows.map(function (row) {
    var prefix = "test_" + D.areas[row[1]] + "::";
    return row[0].indexOf(prefix) === 0 ? row[0].slice(prefix.length) : row[0];
  }), uses = {};
  shortLabel.forEach(function (l) { uses[l] = (uses[l] || 0) + 1; });
  function labelOf(r) { return uses[shortLabel[r]] > 1 ? D.rows[r][0] : shortLabel[r]; }
  function firstLine(text) { var i = text.indexOf("\n"); return i < 0 ? text : text.slice(0, i); }
  function render() {
    var s = state(), v = summarise(s.cols), cols = pageCols(s), n = cols.length + 1;
    var html = [], shown = 0, total = 0, group = null, first = true;
    headings(s, v);
    head(cols);
    for (var o = 0; o < v.order.length; o++) {
      var r = v.order[o], row = D.rows[r];
      if (!keep(r, s, v)) continue;
      total++;
      if (shown >= limit) continue;
      shown++;
      var d = v.div[r], p = v.prob[r], g = (p ? "f" : d ? "d" : "c") + row[1];
      if (g !== group) {
        group = g;
        html.push("<tr class=\"grp" + (p ? " fail" : d ? " div" : "") + "\"><th colspan=" + n + " scope=colgroup>" +
          (p ? "failures · " : d ? "divergent · " : "") + esc(D.areas[row[1]]) + "</th></tr>");
      }
      var cells = "", ts = D.times[r].split(","), notes = [];
      for (var k = 0; k < cols.length; k++) {
        var e = cols[k], code = codeAt(row, e), t = code === "M" ? null : timeAt(row, ts, e), key = r + ":" + e;
        var has = Object.prototype.hasOwnProperty.call(D.msgs, key);
        var title = D.envs[e] + ": " + D.labels[code] + (t === null ? "" : " (" + t + " s)") + (has ? " - click for the message" : "");
        // One tab stop for the whole matrix (roving tabindex): arrow keys move between cells.
        cells += "<td class=\"c o-" + code + (has ? " has\" aria-expanded=\"false" : "") + "\" tabindex=\"" + (first ? 0 : -1) +
          "\" data-k=\"" + key + "\" title=\"" + esc(title) + "\">" + code +
          (s.times && t !== null ? " <small>" + t + "</small>" : "") + "</td>";
        first = false;
        if (s.msgs && has && FAIL_LETTERS.indexOf(code) >= 0) notes.push("<li><b>" + esc(D.envs[e]) + "</b> " +
          esc(D.labels[code]) + ": " + linkify(firstLine(D.msgs[key]), e) + "</li>");
      }
      var label = labelOf(r);
      html.push("<tr data-r=" + r + "><th class=id scope=row title=\"" + esc(row[0]) + "\"><div>" +
        esc(middle(label, ID_CHARS)) + "</div></th>" + cells + "</tr>");
      if (notes.length) html.push("<tr class=notes><td colspan=" + n + "><ul>" + notes.join("") + "</ul></td></tr>");
    }
    // Redrawing replaces the cells: a keyboard user keeps the focused cell where it is still shown.
    var focused = body.contains(document.activeElement) ? document.activeElement.getAttribute("data-k") : null;
    body.innerHTML = html.join("");
    var again = focused && body.querySelector("td[data-k='" + focused + "']");
    if (again) { body.querySelectorAll("td[tabindex='0']").forEach(function (c) { c.tabIndex = -1; });
      again.tabIndex = 0; again.focus(); }
    status.textContent = "showing " + shown + " of " + total + " matching checks (" + D.rows.length + " in all)";
    more.hidden = shown >= total;
    more.textContent = "show " + Math.min(PAGE, total - shown) + " more";
    table.setAttribute("data-rendered", String(shown));
    // The step-cost section follows the envs shown.
    var on = {}; s.cols.forEach(function (e) { on[D.envs[e]] = 1; });
    document.querySelectorAll("[data-stepenv]").forEach(function (el) {
      el.hidden = !on[el.getAttribute("data-stepenv")]; });
  }
  var opened = null;  // "env@check id" of the open message, kept in the address
  function openKey(key) {
    var rc = key.split(":");
    return encodeURIComponent(D.envs[+rc[1]]) + "@" + encodeURIComponent(D.rows[+rc[0]][0]);
  }
  body.addEventListener("click", function (ev) {
    var td = ev.target.closest("td.has");
    if (!td) return;
    var tr = td.parentNode, next = tr.nextElementSibling, key = td.getAttribute("data-k");
    body.querySelectorAll("td.has[aria-expanded=true]").forEach(function (c) { c.setAttribute("aria-expanded", "false"); });
    if (next && next.classList.contains("msg") && next.getAttribute("data-k") === key) {
      next.remove(); opened = null; toHash(); return;
    }
    if (next && next.classList.contains("msg")) next.remove();
    var e = +key.split(":")[1], code = td.textContent.charAt(0);
    var m = document.createElement("tr");
    m.className = "msg"; m.setAttribute("data-k", key);
    m.innerHTML = "<td colspan=" + tr.children.length + "><b>" + esc(D.envs[e]) + "</b> · " + esc(D.labels[code]) +
      " · <code>" + esc(D.rows[+key.split(":")[0]][0]) + "</code><pre>" + linkify(D.msgs[key], e) + "</pre></td>";
    tr.parentNode.insertBefore(m, next);
    td.setAttribute("aria-expanded", "true");
    opened = openKey(key);
    toHash();
  });
  thead.addEventListener("click", function (ev) {  // "only": this env alone, one click
    var btn = ev.target.closest("button.only");
    if (!btn) return;
    form.querySelectorAll("input[name=env]").forEach(function (b) { b.checked = b.value === btn.getAttribute("data-e"); });
    colPage = 0; update();
  });
  // A link carries a view: #div=1&area=split&q=bf16&outcomes=FEC&envs=cpu,cuda&cp=2&msgs=1&open=ENV@CHECK (env name
  // and check id, stable between reports), and the hash follows the form, so the address bar always holds a link to
  // what is shown.
  function fromHash() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i > 0) h[decode(kv.slice(0, i))] = kv.slice(i + 1);
    });
    if (h.div) form.divergent.checked = h.div === "1";
    if (h.times) form.times.checked = h.times === "1";
    if (h.msgs) form.msgs.checked = h.msgs === "1";
    if (h.area !== undefined) form.area.value = decode(h.area);
    if (h.q !== undefined) form.q.value = decode(h.q);
    if (h.cp !== undefined) colPage = (parseInt(h.cp, 10) || 1) - 1;
    if (h.outcomes !== undefined) { var letters = decode(h.outcomes);
      form.querySelectorAll("input[name=outcome]").forEach(function (b) { b.checked = letters.indexOf(b.value) >= 0; }); }
    var notice = document.getElementById("notice"), problems = [];
    if (h.envs !== undefined) {
      var want = h.envs.split(",").map(decode), known = want.filter(function (w) { return D.envs.indexOf(w) >= 0; });
      var unknown = want.filter(function (w) { return w && D.envs.indexOf(w) < 0; });
      if (unknown.length) problems.push("no env named " + unknown.join(", ") + (known.length ? "" : "; showing all envs"));
      form.querySelectorAll("input[name=env]").forEach(function (b) {
        b.checked = !known.length || known.indexOf(D.envs[+b.value]) >= 0; });
    }
    opened = h.open !== undefined ? h.open : null;
    if (opened && !/^\d+:\d+$/.test(opened)) {
      var at = opened.indexOf("@"), env = decode(opened.slice(0, at)), id = decode(opened.slice(at + 1));
      if (at < 0 || D.envs.indexOf(env) < 0) { problems.push("the linked cell's env " + env + " is not in this report"); opened = null; }
      else if (!D.rows.some(function (row) { return row[0] === id; })) {
        problems.push("the linked check " + id + " is not in this report"); opened = null; }
    }
    notice.textContent = problems.length ? "This link names what this report does not have: " + problems.join("; ") + "." : "";
    notice.hidden = !problems.length;
  }
  function toHash() {
    var s = state(), parts = [];
    if (s.div) parts.push("div=1");
    if (s.times) parts.push("times=1");
    if (s.msgs) parts.push("msgs=1");
    if (s.area) parts.push("area=" + encodeURIComponent(s.area));
    if (s.q) parts.push("q=" + encodeURIComponent(form.q.value.trim()));
    var letters = LETTERS.split("").filter(function (c) { return s.outcomes[c]; }).join("");
    if (letters !== LETTERS) parts.push("outcomes=" + letters);
    if (s.cols.length !== D.envs.length) parts.push("envs=" + s.cols.map(function (e) {
      return encodeURIComponent(D.envs[e]); }).join(","));
    if (colPage > 0) parts.push("cp=" + (colPage + 1));
    if (opened) parts.push("open=" + opened);
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash === location.hash || (!hash && !location.hash)) return;
    try { history.replaceState(null, "", hash || location.pathname + location.search); }
    catch (e) { location.replace(hash || "#"); }  // file:// pages where replaceState is refused
  }
  fromHash();
  // A link to a view on this page (the device-vs-version comparisons) changes only the hash: follow it.
  // An in-page anchor (the skip link's #wrap) names no view: redrawing for it would drop the keyboard focus.
  window.addEventListener("hashchange", function () {
    if (location.hash.indexOf("=") < 0) return;
    colPage = 0; fromHash(); limit = PAGE; render(); });
  body.addEventListener("keydown", function (ev) {  // keyboard users open messages too, and move with the arrows
    var td = ev.target.closest ? ev.target.closest("td.c") : null;
    if (!td) return;
    if ((ev.key === "Enter" || ev.key === " ") && td.matches("td.has")) { ev.preventDefault(); td.click(); return; }
    var tr = td.parentNode, to = null, i = Array.prototype.indexOf.call(tr.children, td);
    function row(step) {
      for (var x = step > 0 ? tr.nextElementSibling : tr.previousElementSibling; x;
           x = step > 0 ? x.nextElementSibling : x.previousElementSibling) if (x.hasAttribute("data-r")) return x;
      return null;
    }
    if (ev.key === "ArrowRight") to = td.nextElementSibling;
    else if (ev.key === "ArrowLeft") to = td.previousElementSibling;
    else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") { var x = row(ev.key === "ArrowDown" ? 1 : -1);
      to = x ? x.children[i] : null; }
    if (!to || !to.matches("td.c")) return;
    ev.preventDefault();
    td.tabIndex = -1; to.tabIndex = 0; to.focus();
  });
  function update() { limit = PAGE; render(); toHash(); }
  form.addEventListener("input", function (ev) { if (ev.target.name === "env") colPage = 0; update(); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  more.addEventListener("click", function () { limit += PAGE; render(); });
  document.getElementById("colprev").addEventListener("click", function () { colPage--; update(); });
  document.getElementById("colnext").addEventListener("click", function () { colPage++; update(); });
  document.getElementById("reset").addEventListener("click", function () {
    setTimeout(function () { colPage = 0; update(); }, 0);
  });
  // The outcome and env lists are open on a wide screen and folded on a phone.
  if (!window.matchMedia("(max-width: 700px)").matches) document.getElementById("lists").open = true;
  document.getElementById("failonly").addEventListener("click", function () {
    // One click: rows with a failure (failed, error, crashed, strict xpass) in a shown env, first lines inline.
    form.querySelectorAll("input[name=outcome]").forEach(function (b) { b.checked = FAIL_LETTERS.indexOf(b.value) >= 0; });
    form.msgs.checked = true; form.divergent.checked = false; update();
  });
  render();
  if (opened) {  // the cell a link names: its row shown (by its id when filters hide it), then opened
    var key = null, want = opened;
    if (/^\d+:\d+$/.test(want)) key = want;  // an older report's ROW:ENV
    else {
      var at = want.indexOf("@"), e = D.envs.indexOf(decode(want.slice(0, at))), id = decode(want.slice(at + 1));
      for (var r = 0; r < D.rows.length; r++) if (D.rows[r][0] === id) { key = r + ":" + e; break; }
      if (key && !body.querySelector("td[data-k='" + key + "']")) {
        form.q.value = id; form.querySelectorAll("input[name=outcome]").forEach(function (b) { b.checked = true; });
        form.querySelectorAll("input[name=env]").forEach(function (b) { if (+b.value === e) b.checked = true; });
        limit = PAGE; render();
      }
    }
    var cell = key && body.querySelector("td[data-k='" + key + "']");
    if (cell) { cell.click(); cell.scrollIntoView({block: "center"}); }
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
"""

STEPCOST_CSS = (".timeline{display:block;margin:4px 0 12px;font-family:sans-serif}.tl-key{display:inline-block;"
                "width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}table.stepcost td,table.stepcost th"
                "{padding:2px 8px;text-align:right}table.stepcost td:first-child,table.stepcost th:first-child"
                "{text-align:left}")
