"""The report as its readers use it, in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a
browser): the view defects of issue #24, each with a test, and the three readers' paths measured in actions."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conformance.report import html, markdown
from conformance.report import model as m
from conformance.report.engine import Options, Streams, run_report
from conformance.report.matrix import build_matrix

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "reports" / "examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags of every run: headless, no sandbox (containers), nothing fetched or updated behind the test's back.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def _missing(reason: str) -> None:
    if os.environ.get("CONFORMANCE_REQUIRE_E2E") == "1":  # set by .ci/run: CI must not pass by skipping
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    if not Path(CHROMIUM).exists():
        _missing("chromium is not installed (apt-get install -y chromium): the real-browser tests cannot run")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Page:
    """One page in one viewport, with what the page's script reported (an error fails the test)."""

    def __init__(self, browser, path: Path, fragment: str = "", viewport: dict | None = None) -> None:
        self.page = browser.new_page(viewport=viewport or DESKTOP)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri() + fragment)
        self.page.wait_for_function("document.documentElement.getAttribute('data-js') === 'ready'")
        self.actions = 0  # clicks and key presses a reader made

    def js(self, code: str, arg=None):
        return self.page.evaluate(code, arg)

    def click(self, selector: str) -> None:
        self.actions += 1
        self.page.click(selector)

    def rows(self) -> list[str]:
        return self.js("Array.from(document.querySelectorAll('#matrix tbody tr[data-r] .id')).map(t => t.title)")

    def close(self) -> None:
        assert not self.errors, self.errors
        self.page.close()


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The committed examples' report, rendered by this version (all envs, traces beside it)."""
    out = tmp_path_factory.mktemp("examples")
    inputs = sorted(str(p) for p in EXAMPLES.rglob("*.xml") if p.parent.name != "report")
    code = run_report(Options(inputs=inputs, output_dir=str(out), generator="conformance test"),
                      Streams(out=open(os.devnull, "w"), err=open(os.devnull, "w")))  # noqa: SIM115
    assert code == 1  # cpu-torch2.11 holds failures
    return out


@pytest.fixture(scope="module")
def data(examples) -> dict:
    """The examples' compatibility.json: the numbers the page must show come from it, not from this file."""
    return json.loads((examples / "compatibility.json").read_text(encoding="utf-8"))


def failing(data: dict) -> tuple[int, str, int]:
    """(index, name, failing rows) of the first env with a failure, error, crash or strict xpass."""
    problems = ("failed", "error", "crashed", "xpass")
    i, env_ = next((i, e) for i, e in enumerate(data["envs"]) if any(e["counts"][o] for o in problems))
    rows = sum(1 for r in data["rows"] if r["cells"].get(env_["name"], {}).get("outcome") in problems)
    return i, env_["name"], rows


def env(name: str, outcomes: dict[str, str], messages: dict[str, str] | None = None, **props: str) -> m.EnvResult:
    messages = messages or {}
    cases = [m.Cell(f"test_{key.split('::')[0]}", key.split("::")[1], outcome, 0.5,
                     messages.get(key, "boom" if outcome == m.FAILED else "")) for key, outcome in outcomes.items()]
    return m.EnvResult(name, f"{name}.xml", cases=cases, properties={"env": name, **props})


def page_of(tmp_path: Path, matrix: m.Matrix) -> Path:
    path = tmp_path / "compatibility.html"
    path.write_text(html.render_html(matrix), encoding="utf-8")
    return path


# --- the sticky header and the anchors ---

def test_env_headers_stay_visible_and_anchors_land_uncovered(browser, examples):
    p = Page(browser, examples / "compatibility.html")
    # Scroll the page 700 px past the matrix title: what sits where the env headers are is an env header.
    # The page scrolled to the matrix, the matrix 700 px down its rows: the env headers are on top, uncovered.
    seen = p.js("""() => {
      const wrap = document.getElementById('wrap'); wrap.scrollIntoView(); wrap.scrollTop = 700;
      const th = document.querySelector('#matrix thead th[data-e]'), r = th.getBoundingClientRect();
      const at = document.elementFromPoint(r.left + r.width / 2, Math.max(r.top, 0) + 3);
      return {covered: !(at && at.closest('#matrix thead')), top: r.top};
    }""")
    assert not seen["covered"], seen
    p.click('a[href="#stepcost"]')
    landed = p.js("""() => { const h = document.getElementById('stepcost'), r = h.getBoundingClientRect();
      const at = document.elementFromPoint(r.left + 5, r.top + r.height / 2);
      return {top: r.top, mine: !!(at && at.closest('#stepcost'))}; }""")
    assert landed["mine"] and -1 <= landed["top"] < 50, landed
    p.close()


# --- the phone ---

def test_phone_shows_outcomes_without_page_scroll_and_compact_filters(browser, examples):
    p = Page(browser, examples / "compatibility.html", viewport=PHONE)
    seen = p.js("""() => {
      document.getElementById('filters').scrollIntoView();
      const cell = document.querySelector('#matrix tbody td.c'), r = cell.getBoundingClientRect();
      const form = document.getElementById('filters').getBoundingClientRect();
      return {page: document.documentElement.scrollWidth, view: innerWidth, cellLeft: r.left, cellRight: r.right,
              filters: form.height, cellText: cell.textContent};
    }""")
    assert seen["page"] <= seen["view"], f"the page is wider than the phone: {seen}"
    assert 0 <= seen["cellLeft"] and seen["cellRight"] <= seen["view"], f"no outcome on screen: {seen}"
    assert seen["cellText"] in m.FROM_LETTER
    assert seen["filters"] <= 0.25 * PHONE["height"], f"the filters take {seen['filters']} px of 844"
    p.close()


# --- check ids ---

def test_no_two_rows_read_the_same_and_no_id_is_cut_at_the_end(browser, examples, data):
    p = Page(browser, examples / "compatibility.html")
    shown = p.js("""() => Array.from(document.querySelectorAll('#matrix tbody tr[data-r] .id')).map(t => ({
      text: t.textContent, title: t.title, cut: t.firstChild.scrollWidth > t.firstChild.clientWidth + 1}))""")
    assert len(shown) == len(data["rows"])  # every check of the examples has its row
    texts = [s["text"] for s in shown]
    assert len(set(texts)) == len(texts), "two rows read the same"
    assert not [s["title"] for s in shown if s["cut"]], "ids cut at the end"
    assert all(s["text"] in s["title"] for s in shown)  # wrapped, not cut (all ids here are under 160 characters)
    p.close()


# --- failures first, one click to "failures only" and to "only this env" ---

def test_failures_first_and_one_click_filters(browser, examples, data):
    index, name, _ = failing(data)
    problems = ("failed", "error", "crashed", "xpass")
    broken = [r for r in data["rows"] if any(c["outcome"] in problems for c in r["cells"].values())]
    cells = sum(1 for r in broken for c in r["cells"].values() if c["outcome"] in problems and c.get("message"))
    p = Page(browser, examples / "compatibility.html")
    groups = p.js("Array.from(document.querySelectorAll('#matrix tr.grp th')).map(t => t.textContent)")
    assert groups[0].startswith("failures · "), groups[:3]
    assert set(p.rows()[: len(broken)]) == {r["id"] for r in broken}, "the rows with a failure come first"
    p.click("#failonly")
    assert sorted(p.rows()) == sorted(r["id"] for r in broken)
    notes = p.js("document.querySelectorAll('#matrix tr.notes li').length")
    assert notes == cells, "failures only shows the first line of every failure's message"
    p.click(f'#matrix thead button.only[data-e="{index}"]')
    assert p.js("Array.from(document.querySelectorAll('#matrix thead span.env')).map(s => s.textContent)") == [name]
    assert p.actions == 2
    p.close()


# --- the env view, the address, notices ---

def test_opening_a_cell_puts_a_stable_key_in_the_address(browser, tmp_path):
    envs = [env("cpu", {"split::a": m.PASSED, "split::b": m.FAILED}),
            env("cuda", {"split::a": m.FAILED, "split::b": m.PASSED})]
    path = page_of(tmp_path, build_matrix(envs))
    p = Page(browser, path)
    p.click('#matrix td.has[title^="cuda"]')
    hash_ = p.js("location.hash")
    assert hash_ == "#open=cuda@test_split%3A%3Aa", hash_
    assert p.js("document.querySelector('#matrix td.has[title^=\"cuda\"]').getAttribute('aria-expanded')") == "true"
    p.close()
    # The same link opens the same cell in another report whose rows and envs come in another order.
    other = build_matrix([env("rocm", {"split::z": m.FAILED}), *envs])
    again = Page(browser, page_of(tmp_path / "..", other), hash_)
    opened = again.js("(() => { const t = document.querySelector('#matrix tr.msg td'); return t && t.textContent; })()")
    assert opened and opened.startswith("cuda · failed · test_split::a"), opened
    again.close()


def test_unknown_env_in_the_link_is_said_not_an_empty_page(browser, tmp_path):
    path = page_of(tmp_path, build_matrix([env("cpu", {"split::a": m.PASSED}), env("cuda", {"split::a": m.FAILED})]))
    p = Page(browser, path, "#envs=xpu")
    notice = p.js("(() => { const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent; })()")
    assert "no env named xpu" in notice and "showing all envs" in notice
    assert len(p.rows()) == 1
    p.close()


def test_long_env_names_stay_distinct_and_envs_sort_naturally(browser, tmp_path):
    base = "gaudi3/hpu-torch2.7.1-synapse1.21.0-build-20260105-"
    names = [base + "nightly/driver-1.21", base + "release/driver-1.21", "cpu47", "cpu5"]
    matrix = build_matrix([env(n, {"split::a": m.PASSED}) for n in names])
    assert [c.name for c in matrix.envs] == ["cpu5", "cpu47", *names[:2]]
    p = Page(browser, page_of(tmp_path, matrix))
    heads = p.js("Array.from(document.querySelectorAll('#matrix thead span.env')).map(s => s.textContent)")
    assert len(set(heads)) == 4, heads
    assert all(len(h) <= 40 for h in heads), heads
    assert "nightly" in heads[2] and "release" in heads[3], heads
    p.close()


def test_column_pager_sits_by_the_header(browser, tmp_path):
    envs = [env(f"env{i:03d}", {"split::a": m.PASSED if i else m.FAILED}) for i in range(60)]
    p = Page(browser, page_of(tmp_path, build_matrix(envs)))
    gap = p.js("""() => document.querySelector('#matrix thead').getBoundingClientRect().top -
                        document.getElementById('colpager').getBoundingClientRect().bottom""")
    assert 0 <= gap < 60, gap
    p.close()


# --- step cost ---

def test_step_cost_follows_the_view_ranks_schedules_and_links_traces(browser, examples, data):
    traced = next(e for e in data["envs"] if e.get("traces") and e.get("stepcost"))
    worlds = {c["world"] for c in traced["stepcost"]}
    p = Page(browser, examples / "compatibility.html", f"#envs={traced['name']}")
    seen = p.js("""() => ({
      envs: Array.from(document.querySelectorAll('section.stepenv')).filter(s => !s.hidden)
        .map(s => s.getAttribute('data-stepenv')),
      ranked: Array.from(document.querySelectorAll('table.rank')).length,
      defs: (document.querySelector('.stepdefs') || {}).textContent || '',
      links: Array.from(document.querySelectorAll('section.stepenv:not([hidden]) details.tl summary a'))
        .map(a => a.getAttribute('href'))})""")
    assert seen["envs"] == [traced["name"]], seen["envs"]
    assert seen["ranked"] >= len(worlds)
    for word in ("step", "ideal", "bubble"):
        assert word in seen["defs"].lower(), seen["defs"]
    assert seen["links"] and all(h.startswith("traces/") for h in seen["links"])
    assert all((examples / h).is_file() for h in seen["links"]), "a timeline links a trace file that is not there"
    p.close()


def test_xfail_links_are_clickable_and_point_at_the_envs_release(browser, examples, data):
    # An env whose xfail reasons link PyTorch's source at a release tag other than its own torch's.
    linked = re.compile(r"github\.com/pytorch/pytorch/blob/v(\d+\.\d+\.\d+)/")
    for e in data["envs"]:
        tag = e["properties"].get("torch_version", "").split("+")[0]
        tags = {linked.search(c["message"]).group(1) for r in data["rows"] for n, c in r["cells"].items()
                if n == e["name"] and c["outcome"] == "xfail" and linked.search(c.get("message", ""))}
        if tags and tags != {tag}:
            break
    else:
        pytest.fail("no env of the examples has an xfail link at another torch release: nothing to check")
    p = Page(browser, examples / "compatibility.html", f"#envs={e['name']}&outcomes=x")
    p.click("#matrix td.has.o-x")
    href = p.js("(() => { const a = document.querySelector('#matrix tr.msg a'); return a && a.href; })()")
    assert href and f"/blob/v{tag}/" in href, (href, tag)
    p.close()


# --- accessibility ---

def _luminance(rgb: tuple[float, float, float]) -> float:
    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(text: str) -> tuple[float, float, float]:
    if text.startswith("#"):
        return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    return tuple(float(x) for x in re.findall(r"[\d.]+", text)[:3])  # type: ignore[return-value]


def _deuteranopia(rgb):
    """Machado et al. 2009, severity 1.0, on linear RGB approximated by the gamma-encoded values."""
    r, g, b = rgb
    return (0.367 * r + 0.861 * g - 0.228 * b, 0.280 * r + 0.673 * g + 0.047 * b, -0.012 * r + 0.043 * g + 0.969 * b)


def test_timeline_kinds_differ_under_deuteranopia_and_labels_read():
    from conformance.report import timeline

    w, b = _rgb(timeline.COLOURS["W"]), _rgb(timeline.COLOURS["B"])
    assert _contrast(_deuteranopia(w), _deuteranopia(b)) >= 2.0, "W and B look alike without red-green"
    for kind, colour in timeline.COLOURS.items():
        assert _contrast(_rgb(timeline.LABEL_COLOURS[kind]), _rgb(colour)) >= 4.5, kind


def test_cells_read_keyboard_reaches_the_matrix_and_headers_have_scope(browser, tmp_path):
    envs = [env("cpu", {"split::a": m.PASSED, "split::b": m.FAILED, "split::c": m.MISSING}),
            env("cuda", {"split::a": m.XFAIL, "split::b": m.PASSED})]
    envs[0].cases = [c for c in envs[0].cases if c.outcome != m.MISSING]
    p = Page(browser, page_of(tmp_path, build_matrix(envs)))
    colours = p.js("""() => Array.from(document.querySelectorAll('#matrix td.c, .legend .k')).map(c => {
      const s = getComputedStyle(c); return [c.className, s.color, s.backgroundColor, s.backgroundImage]; })""")
    for cls, fg, bg, image in colours:
        if image != "none":
            continue  # the striped `not run` background: its darker stop is checked below
        assert _contrast(_rgb(fg), _rgb(bg)) >= 4.5, (cls, fg, bg)
    assert _contrast(_rgb("#7a4a00"), _rgb("#ffe6c2")) >= 4.5
    tabbable = p.js("document.querySelectorAll('#matrix [tabindex=\"0\"]').length")
    assert tabbable == 1, "one tab stop for the whole matrix (arrow keys move inside it)"
    p.page.keyboard.press("Tab")
    assert p.js("document.activeElement.className") == "skip", "the skip link is the first tab stop"
    p.page.keyboard.press("Enter")
    p.page.keyboard.press("Tab")
    assert p.js("document.activeElement.matches('#matrix td.c')"), p.js("document.activeElement.outerHTML")
    p.page.keyboard.press("ArrowRight")
    assert p.js("document.activeElement.getAttribute('data-k')").endswith(":1")
    # The skip link's hash change may land after the reader has tabbed on (a loaded machine): it must not take
    # the focused cell away, and neither may a redraw the reader asks for.
    focused = p.js("document.activeElement.getAttribute('data-k')")
    p.js("() => { history.replaceState(null, '', '#wrap'); dispatchEvent(new HashChangeEvent('hashchange')); }")
    assert p.js("document.activeElement.getAttribute('data-k')") == focused, "an in-page anchor redrew the matrix"
    p.js("() => { const t = document.querySelector('#filters [name=times]'); t.checked = true;"
         " t.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert p.js("document.activeElement.getAttribute('data-k')") == focused, "a redraw dropped the keyboard focus"
    assert p.js("Array.from(document.querySelectorAll('#matrix thead th')).every(t => t.getAttribute('scope'))")
    assert p.js("Array.from(document.querySelectorAll('.envs th')).every(t => t.getAttribute('scope'))")
    assert p.js("Array.from(document.querySelectorAll('#matrix td.has')).every(t => t.hasAttribute('aria-expanded'))")
    p.close()


# --- Markdown in a PR column ---

def test_markdown_fits_a_pr_column_and_puts_divergences_before_step_cost(browser, examples, tmp_path):
    from test_report_consumers import github_markdown

    text = (examples / "compatibility.md").read_text(encoding="utf-8")
    # Step cost after the divergent checks (or cut for room, which the truncation note then says).
    assert ("### Step cost" in text and text.index("### Divergent checks") < text.index("### Step cost")) or (
        "step-cost lines" in text[text.index("> **Truncated**"):])
    assert "### Reasons" in text
    links = re.findall(r"\[(\d+\.\d+\.\d+)\]\(https://github\.com/pytorch/pytorch/blob/v(\d+\.\d+\.\d+)/", text)
    assert links and all(shown == target for shown, target in links), "each source link at the release it names"
    body = github_markdown().render(text)
    # GitHub's PR column: 880 px of content, 14 px text, cells padded 6 px 13 px.
    page = tmp_path / "pr.html"
    page.write_text("<!DOCTYPE html><meta charset=utf-8><style>body{margin:0;font:14px/1.5 -apple-system,'Segoe UI',"
                    "Helvetica,Arial,sans-serif}#c{width:880px}table{border-collapse:collapse;display:block;"
                    "width:max-content;max-width:100%;overflow:auto}td,th{padding:6px 13px;border:1px solid #d0d7de}"
                    "code{font:12px ui-monospace,SFMono-Regular,monospace;padding:.2em .4em}</style>"
                    f"<div id=c>{body}</div>", encoding="utf-8")
    p = browser.new_page(viewport={"width": 1200, "height": 900})
    p.goto(page.as_uri())
    widths = p.evaluate("""Array.from(document.querySelectorAll('table')).map(t => [
      t.querySelector('th').textContent, t.scrollWidth])""")
    p.close()
    divergent = next(w for head, w in widths if head == "check")
    assert divergent <= 880, f"the divergent table is {divergent} px wide in an 880 px column"


# --- the three readers ---

def test_release_engineer_reaches_failing_checks_of_an_env_against_cuda_with_messages(browser, examples, data):
    """'Which checks fail on my device against CUDA, and why?': env X (the examples' failing env) against the CUDA
    env that passed the most, in at most 3 actions."""
    index, name, rows = failing(data)
    cuda = max((i for i, e in enumerate(data["envs"]) if e["properties"].get("device") == "cuda"),
               key=lambda i: data["envs"][i]["counts"]["passed"])
    p = Page(browser, examples / "compatibility.html")
    p.click(f'#matrix thead button.only[data-e="{index}"]')  # only env X
    p.click(f'#filters input[name=env][value="{cuda}"]')  # ... and the CUDA env beside it
    p.click("#failonly")  # failures only, with their messages
    assert p.actions <= 3
    heads = p.js("Array.from(document.querySelectorAll('#matrix thead span.env')).map(s => s.textContent)")
    assert sorted(heads) == sorted([name, data["envs"][cuda]["name"]])
    assert len(p.rows()) == rows
    notes = p.js("Array.from(document.querySelectorAll('#matrix tr.notes li')).map(li => li.textContent)")
    assert len(notes) == rows and all(n.startswith(name + " ") for n in notes)
    messages = {c["message"].split("\n")[0] for r in data["rows"] for n, c in r["cells"].items()
                if n == name and c["outcome"] in ("failed", "error", "crashed", "xpass")}
    assert {n.split(": ", 1)[1] for n in notes} == messages
    p.close()


def test_researcher_sees_schedules_ranked_with_bubble_per_env_and_the_definitions(browser, examples, data):
    measured = [e["name"] for e in data["envs"] if any(c["world"] == 2 for c in e.get("stepcost", []))]
    assert measured, "no env of the examples measured step cost at world 2"
    p = Page(browser, examples / "compatibility.html")
    p.click('a[href="#stepcost"]')
    table = p.js("""() => { const t = Array.from(document.querySelectorAll('table.rank'))
        .find(t => t.caption.textContent === 'world 2');
      return {envs: Array.from(t.querySelectorAll('thead th')).slice(1).map(th => th.textContent),
              rows: Array.from(t.querySelectorAll('tbody tr')).map(tr => [tr.querySelector('th').textContent,
                ...Array.from(tr.querySelectorAll('td')).map(td => td.textContent)])}; }""")
    assert table["envs"] == measured
    first = table["rows"][0]
    assert all("bubble" in cell for cell in first[1:] if cell != "—"), first
    ranks = [int(cell.rsplit("#", 1)[1]) for cell in first[1:] if "#" in cell]
    assert min(ranks) == 1, first  # the fastest schedule of some env leads
    defs = p.js("(document.querySelector('.stepdefs') || {}).textContent || ''").lower()
    assert "ideal" in defs and "bubble" in defs and "step" in defs
    assert p.actions == 1
    p.close()


def test_ci_maintainer_sees_outcome_coverage_and_step_time_regressions_at_the_top(browser, tmp_path):
    """h200x2 against h200x4 as the baseline: lost coverage, the hardware change and the step-time regressions all
    sit in the first screen's baseline section, before the matrix."""
    base = tmp_path / "base"
    null = Streams(out=open(os.devnull, "w"), err=open(os.devnull, "w"))  # noqa: SIM115
    assert run_report(Options(inputs=[str(EXAMPLES / "h200x4" / "cuda.xml")], output_dir=str(base)), null) == 0
    now = tmp_path / "now"
    code = run_report(Options(inputs=[str(EXAMPLES / "h200x2" / "cuda.xml")], output_dir=str(now),
                              baseline=str(base / "compatibility.json")), null)
    assert code == 5
    from test_report_baseline import device_count, expected_lost

    n_lost, _ = expected_lost(EXAMPLES / "h200x4" / "cuda.xml", EXAMPLES / "h200x2" / "cuda.xml")
    counts = (f"device count {device_count(EXAMPLES / 'h200x4' / 'cuda.xml')} -> "
              f"{device_count(EXAMPLES / 'h200x2' / 'cuda.xml')}")
    step_time = json.loads((now / "compatibility.json").read_text(encoding="utf-8"))["baseline"].get("step_time")
    p = Page(browser, now / "compatibility.html")
    order = p.js("""() => { const y = s => { const e = document.querySelector(s); return e ?
        e.getBoundingClientRect().top + scrollY : -1; };
      return {baseline: y('#baseline'), lost: y('h3.regress'), steps: y('#step-regressions'),
              matrix: y('#matrix-title'), text: document.getElementById('baseline').textContent}; }""")
    assert 0 < order["baseline"] < order["lost"] < order["matrix"], order
    if step_time:  # the two hosts' step times differ beyond the threshold (they did when the issue was filed)
        assert 0 < order["baseline"] < order["steps"] < order["matrix"], order
    assert f"{n_lost} lost coverage (gating)" in order["text"]
    assert p.js(f"document.getElementById('baseline').parentNode.textContent.includes({json.dumps(counts)})")
    p.close()
    text = (now / "compatibility.md").read_text(encoding="utf-8")
    if step_time:
        assert text.index("**Step-time regressions") < text.index("### Step cost")
    assert markdown.LIMIT >= len(text.encode("utf-8"))
