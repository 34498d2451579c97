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
#filters { position: sticky; top: 0; z-index: 5; background: #fff; padding: .5em 0; border-bottom: 1px solid var(--b);
  display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center; }
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
#matrix td.id, #matrix th.id { position: sticky; left: 0; z-index: 2; background: #fff; text-align: left;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; white-space: nowrap; }
/* A table cell ignores max-width: the box inside it holds a long id to 34em (the whole id is in the tooltip). */
#matrix td.id > div { max-width: 34em; overflow: hidden; text-overflow: ellipsis; }
#matrix thead th.id { z-index: 4; background: #f3f5f8; }
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
  color: #7a4a00; } .o-M { background: #fff; color: #999; border: 1px dashed #bbb !important; }
.legend span.k { display: inline-block; min-width: 1.6em; text-align: center; font-family: ui-monospace, monospace;
  font-weight: 700; border: 1px solid #ccc; margin: 0 .2em 0 .6em; }
#more { margin: .6em 0; }
footer { margin-top: 1.5em; color: var(--muted); font-size: .85em; }
"""

JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("matrix-data").textContent);
  var PAGE = 1000, limit = PAGE, COLS = 50, colPage = 0;
  var LETTERS = "PFECXxsUNRM", BIT = {}, UNAVAILABLE = 1 << LETTERS.indexOf("U"), MISSING = 1 << LETTERS.indexOf("M");
  for (var b = 0; b < LETTERS.length; b++) BIT[LETTERS.charAt(b)] = 1 << b;
  var table = document.getElementById("matrix"), body = table.tBodies[0];
  var status = document.getElementById("status"), more = document.getElementById("more");
  var form = document.getElementById("filters"), pager = document.getElementById("colpager");
  var NAME_CHARS = 40;  // longer env names are shortened in the header; the tooltip has them whole
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
    var div = new Uint8Array(D.rows.length), ndiv = 0;
    for (r = 0; r < D.rows.length; r++) {
      var rest = bits[r] & ~UNAVAILABLE;
      if (rest & (rest - 1)) { div[r] = 1; ndiv++; }  // two or more outcomes
    }
    // Divergent rows of this view first, then by area; within those, in the order the checks were first read.
    order.sort(function (a, b) { return (div[b] - div[a]) || (D.rows[a][1] - D.rows[b][1]) || (D.seen[a] - D.seen[b]); });
    viewKey = key;
    view = { bits: bits, div: div, ndiv: ndiv, counts: counts, order: order };
    return view;
  }
  function state() {
    var envOn = checked("env"), cols = [], mask = 0, outcomes = checked("outcome");
    D.envs.forEach(function (e, i) { if (envOn[String(i)]) cols.push(i); });
    LETTERS.split("").forEach(function (c) { if (outcomes[c]) mask |= BIT[c]; });
    return { outcomes: outcomes, mask: mask, cols: cols, area: form.area.value, div: form.divergent.checked,
             times: form.times.checked, q: form.q.value.trim().toLowerCase() };
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
  function envLabel(name) {
    return esc(middle(name, NAME_CHARS)).replace(/([\/\-]|\.(?![0-9]))/g, "$1<wbr>");
  }
  function head(cols) {
    var h = "<tr><th class=id>check</th>";
    cols.forEach(function (i) { h += "<th title=\"" + esc(D.envs[i] + "\n" + D.envTitles[i]) + "\"><span class=env>" +
      envLabel(D.envs[i]) + "</span><small>" + esc(D.envShort[i]) + "</small></th>"; });
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
  function render() {
    var s = state(), v = summarise(s.cols), cols = pageCols(s), n = cols.length + 1;
    var html = [], shown = 0, total = 0, group = null;
    headings(s, v);
    head(cols);
    for (var o = 0; o < v.order.length; o++) {
      var r = v.order[o], row = D.rows[r];
      if (!keep(r, s, v)) continue;
      total++;
      if (shown >= limit) continue;
      shown++;
      var d = v.div[r], g = (d ? "d" : "c") + row[1];
      if (g !== group) {
        group = g;
        html.push("<tr class=\"grp" + (d ? " div" : "") + "\"><th colspan=" + n + ">" +
          (d ? "divergent · " : "") + esc(D.areas[row[1]]) + "</th></tr>");
      }
      var cells = "", ts = D.times[r].split(",");
      for (var k = 0; k < cols.length; k++) {
        var e = cols[k], code = codeAt(row, e), t = code === "M" ? null : timeAt(row, ts, e), key = r + ":" + e;
        var has = Object.prototype.hasOwnProperty.call(D.msgs, key);
        var title = D.envs[e] + ": " + D.labels[code] + (t === null ? "" : " (" + t + " s)") + (has ? " - click for the message" : "");
        cells += "<td class=\"c o-" + code + (has ? " has\" tabindex=\"0" : "") + "\" data-k=\"" + key + "\" title=\"" + esc(title) +
          "\">" + code + (s.times && t !== null ? " <small>" + t + "</small>" : "") + "</td>";
      }
      // The group row names the area: drop the matching module from the id to keep the column narrow.
      var prefix = "test_" + D.areas[row[1]] + "::", label = row[0].indexOf(prefix) === 0 ? row[0].slice(prefix.length) : row[0];
      html.push("<tr data-r=" + r + "><td class=id title=\"" + esc(row[0]) + "\"><div>" + esc(middle(label, ID_CHARS)) +
        "</div></td>" + cells + "</tr>");
    }
    body.innerHTML = html.join("");
    status.textContent = "showing " + shown + " of " + total + " matching checks (" + D.rows.length + " in all)";
    more.hidden = shown >= total;
    more.textContent = "show " + Math.min(PAGE, total - shown) + " more";
    table.setAttribute("data-rendered", String(shown));
  }
  body.addEventListener("click", function (ev) {
    var td = ev.target.closest("td.has");
    if (!td) return;
    var tr = td.parentNode, next = tr.nextElementSibling, key = td.getAttribute("data-k");
    if (next && next.classList.contains("msg") && next.getAttribute("data-k") === key) { next.remove(); return; }
    if (next && next.classList.contains("msg")) next.remove();
    var e = +key.split(":")[1], code = td.textContent.charAt(0);
    var m = document.createElement("tr");
    m.className = "msg"; m.setAttribute("data-k", key);
    m.innerHTML = "<td colspan=" + tr.children.length + "><b>" + esc(D.envs[e]) + "</b> · " + esc(D.labels[code]) +
      " · <code>" + esc(D.rows[+key.split(":")[0]][0]) + "</code><pre>" + esc(D.msgs[key]) + "</pre></td>";
    tr.parentNode.insertBefore(m, next);
  });
  // A link carries a view: #div=1&area=split&q=bf16&outcomes=FEC&envs=cpu,cuda&cp=2&open=ROW:ENV (the tests use
  // it), and the hash follows the form, so the address bar always holds a link to what is shown.
  function fromHash() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i > 0) h[decode(kv.slice(0, i))] = kv.slice(i + 1);
    });
    if (h.div) form.divergent.checked = h.div === "1";
    if (h.times) form.times.checked = h.times === "1";
    if (h.area !== undefined) form.area.value = decode(h.area);
    if (h.q !== undefined) form.q.value = decode(h.q);
    if (h.cp !== undefined) colPage = (parseInt(h.cp, 10) || 1) - 1;
    if (h.outcomes !== undefined) { var letters = decode(h.outcomes);
      form.querySelectorAll("input[name=outcome]").forEach(function (b) { b.checked = letters.indexOf(b.value) >= 0; }); }
    if (h.envs !== undefined) { var want = h.envs.split(",").map(decode);
      form.querySelectorAll("input[name=env]").forEach(function (b) { b.checked = want.indexOf(D.envs[+b.value]) >= 0; }); }
  }
  function toHash() {
    var s = state(), parts = [];
    if (s.div) parts.push("div=1");
    if (s.times) parts.push("times=1");
    if (s.area) parts.push("area=" + encodeURIComponent(s.area));
    if (s.q) parts.push("q=" + encodeURIComponent(form.q.value.trim()));
    var letters = LETTERS.split("").filter(function (c) { return s.outcomes[c]; }).join("");
    if (letters !== LETTERS) parts.push("outcomes=" + letters);
    if (s.cols.length !== D.envs.length) parts.push("envs=" + s.cols.map(function (e) {
      return encodeURIComponent(D.envs[e]); }).join(","));
    if (colPage > 0) parts.push("cp=" + (colPage + 1));
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash === location.hash || (!hash && !location.hash)) return;
    try { history.replaceState(null, "", hash || location.pathname + location.search); }
    catch (e) { location.replace(hash || "#"); }  // file:// pages where replaceState is refused
  }
  fromHash();
  // A link to a view on this page (the device-vs-version comparisons) changes only the hash: follow it.
  window.addEventListener("hashchange", function () { colPage = 0; fromHash(); limit = PAGE; render(); });
  body.addEventListener("keydown", function (ev) {  // keyboard users open messages too
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches("td.has")) { ev.preventDefault(); ev.target.click(); }
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
  render();
  if (/(^#|&)open=/.test(location.hash)) {
    var want = location.hash.split("open=")[1].split("&")[0], cell = body.querySelector("td[data-k='" + want + "']");
    if (cell) cell.click();
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
"""

STEPCOST_CSS = (".timeline{display:block;margin:4px 0 12px;font-family:sans-serif}.tl-key{display:inline-block;"
                "width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}table.stepcost td,table.stepcost th"
                "{padding:2px 8px;text-align:right}table.stepcost td:first-child,table.stepcost th:first-child"
                "{text-align:left}")
