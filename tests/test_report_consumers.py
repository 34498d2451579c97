"""The reports as their consumers read them, one test per consumer we claim.

- Jenkins (xunit plugin): merged.xml validates against its schema (tests/schemas/junit-10.xsd).
- GitLab: every testcase name unique across envs (GitLab keeps only the first of a duplicate), under 30 MB and
  500,000 cases.
- junitparser, read the way a dashboard reads JUnit: every env file and merged.xml load with the totals and the
  per-case outcomes our reader found.
- GitHub job summary: compatibility.md through a CommonMark renderer with GitHub's extensions (tables,
  autolinks, raw HTML allowed): tables intact, no image, link or HTML that came from the inputs.

On the real example runs (reports/examples/) and on large generated inputs (16 x 5,000 cases, as the benchmark).
"""

from __future__ import annotations

import importlib.util
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from junitparser import JUnitXml, TestSuite
from markdown_it import MarkdownIt
from markdown_it.token import Token

from conformance.cli import main
from conformance.report import markdown
from conformance.report import model as m
from conformance.report.inputs import read_inputs
from conformance.report.matrix import build_matrix

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "reports" / "examples"
EXAMPLE_INPUTS = sorted(p for p in EXAMPLES.rglob("*.xml") if "report" not in p.relative_to(EXAMPLES).parts)
MATRIX = sorted((ROOT / "tests" / "data" / "junit" / "matrix").glob("*.xml"))
GITLAB_MAX_BYTES = 30_000_000
GITLAB_MAX_CASES = 500_000

# What a JUnit consumer can tell apart: the element a case carries.
JUNIT_KIND = {m.PASSED: "passed", m.FAILED: "failure", m.XPASS: "failure", m.ERROR: "error", m.CRASHED: "error",
              m.XFAIL: "skipped", m.SKIPPED: "skipped", m.UNAVAILABLE: "skipped", m.NOT_APPLICABLE: "skipped",
              m.NOT_RUN: "skipped"}


def report(inputs: list[Path], out: Path) -> Path:
    """Run `conformance report` on `inputs` into `out`, as CI does."""
    code = main(["report", *map(str, inputs), "--output-dir", str(out)])
    assert code in (0, 1), f"conformance report exited {code}"
    return out


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "bench_report.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    assert len(EXAMPLE_INPUTS) >= 6, EXAMPLE_INPUTS  # the real runs committed under reports/examples/
    return report(EXAMPLE_INPUTS, tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[list[Path], Path]:
    """16 envs x 5,000 pytest-xunit2 cases with failures, crashes, skips and xfails (the benchmark's generator)."""
    import random

    bench = load_bench()
    folder = tmp_path_factory.mktemp("large")
    rng = random.Random(20260105)
    inputs = []
    for i in range(16):
        path = folder / "in" / f"env{i:02d}.xml"
        path.parent.mkdir(exist_ok=True)
        bench.write_env(path, f"env{i:02d}", 5000, rng)
        inputs.append(path)
    return inputs, report(inputs, folder / "out")


# --- Jenkins --------------------------------------------------------------------------------------------------------

def test_jenkins_xunit_schema_accepts_merged_xml(examples, junit_schema):
    junit_schema.validate(str(examples / "merged.xml"))
    junit_schema.validate(str(EXAMPLES / "report" / "merged.xml"))  # the committed example too


# --- GitLab ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["examples", "large"])
def test_gitlab_sees_every_case_once_and_within_its_limits(which, request):
    merged = request.getfixturevalue("examples") / "merged.xml" if which == "examples" else \
        request.getfixturevalue("large")[1] / "merged.xml"
    names = Counter((c.get("classname"), c.get("name")) for c in ET.parse(merged).getroot().iter("testcase"))
    repeated = [key for key, n in names.items() if n > 1]
    assert not repeated, f"GitLab would keep only the first of {repeated[:3]}"
    assert merged.stat().st_size < GITLAB_MAX_BYTES
    assert sum(names.values()) < GITLAB_MAX_CASES


# --- junitparser ----------------------------------------------------------------------------------------------------

def junitparser_suites(path: Path) -> list[TestSuite]:
    xml = JUnitXml.fromfile(str(path))
    return [xml] if isinstance(xml, TestSuite) else list(xml)


def junitparser_kind(case) -> str:
    kinds = {type(r).__name__.lower() for r in case.result}
    return next((k for k in ("error", "failure", "skipped") if k in kinds), "passed")


def assert_suite_matches(suite: TestSuite, env: m.EnvResult, *, where: str) -> None:
    """Declared totals, counted totals and the outcome of every case, in file order."""
    cases = list(suite)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == \
        (env.tests, env.failures, env.errors, env.skipped), f"{where}: declared totals"
    counted = Counter(junitparser_kind(c) for c in cases)
    assert (len(cases), counted["failure"], counted["error"], counted["skipped"]) == \
        (env.tests, env.failures, env.errors, env.skipped), f"{where}: totals counted from the cases"
    theirs = [(c.name, junitparser_kind(c)) for c in cases]
    ours = [(cell.name, JUNIT_KIND[cell.outcome]) for cell in env.cases]
    assert len(theirs) == len(ours)
    # merged.xml may suffix a repeated name to keep it unique; the outcome never changes.
    diff = [(a, b) for a, b in zip(theirs, ours, strict=True) if a[1] != b[1] or not a[0].startswith(b[0])]
    assert not diff, f"{where}: {len(diff)} cases differ, e.g. {diff[:3]}"


def assert_junitparser_agrees(inputs: list[Path], merged: Path) -> None:
    envs, warnings = read_inputs(inputs)
    assert not [w for w in warnings if w.slug != m.W_DUPLICATE], warnings
    by_path = {}
    for env in envs:
        by_path.setdefault(Path(env.path).resolve(), []).append(env)
    for path in inputs:
        for suite, env in zip(junitparser_suites(path), by_path[path.resolve()], strict=True):
            assert_suite_matches(suite, env, where=str(path))
    merged_suites = {s.name: s for s in junitparser_suites(merged)}
    assert sorted(merged_suites) == sorted(e.name for e in envs)
    for env in envs:
        assert_suite_matches(merged_suites[env.name], env, where=f"merged.xml suite {env.name}")
    root = JUnitXml.fromfile(str(merged))
    assert root.tests == sum(e.tests for e in envs)
    assert root.failures == sum(e.failures for e in envs)
    assert root.errors == sum(e.errors for e in envs)


def test_junitparser_reads_the_example_runs_as_we_do(examples, monkeypatch):
    monkeypatch.chdir(ROOT)  # env paths are kept as given
    assert_junitparser_agrees(EXAMPLE_INPUTS, examples / "merged.xml")
    assert_junitparser_agrees(EXAMPLE_INPUTS, EXAMPLES / "report" / "merged.xml")


def test_junitparser_reads_large_generated_reports_as_we_do(large):
    inputs, out = large
    assert_junitparser_agrees(inputs, out / "merged.xml")


# --- GitHub job summary ---------------------------------------------------------------------------------------------

def github_markdown() -> MarkdownIt:
    """CommonMark plus what GitHub adds to a job summary: tables, strikethrough, autolinks, raw HTML."""
    md = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "strikethrough", "linkify"])
    md.linkify.set({"fuzzy_link": False})  # GitHub links www. and scheme URLs, not bare domains
    return md


def walk(tokens: list[Token]):
    for token in tokens:
        yield token
        yield from walk(token.children or [])


def inline_text(token: Token) -> str:
    return "".join(t.content for t in walk(token.children or []) if t.type in ("text", "code_inline", "text_special"))


def assert_inert(text: str) -> list[list[str]]:
    """No image, link or raw HTML beyond our own <sub> footer; every table row as wide as its header. Returns
    the cells of every body row as rendered text."""
    tokens = list(walk(github_markdown().parse(text)))
    assert not [t for t in tokens if t.type == "image"], "an image in the job summary"
    # The only links: PyTorch's source at a release tag, which the Markdown writes itself for xfail reasons.
    source = re.compile(r"https://github\.com/pytorch/pytorch/(?:blob|tree)/v\d+\.\d+\.\d+/[A-Za-z0-9_./-]+")
    links = [t.attrGet("href") for t in tokens if t.type == "link_open"]
    assert all(source.fullmatch(str(href)) for href in links), f"a link in the job summary: {links}"
    raw = [t.content.strip() for t in tokens if t.type in ("html_inline", "html_block")]
    assert raw == ["<sub>", "</sub>"], f"raw HTML from the inputs: {raw}"
    rows: list[list[str]] = []
    width = None
    current: list[str] | None = None
    for t in github_markdown().parse(text):
        if t.type == "thead_open":
            width = None
        elif t.type == "tr_open":
            current = []
        elif t.type == "inline" and current is not None:
            current.append(inline_text(t))
        elif t.type == "tr_close" and current is not None:
            width = len(current) if width is None else width
            assert len(current) == width, f"a table row split or merged: {current}"
            rows.append(current)
            current = None
    assert len(text.encode("utf-8")) <= markdown.LIMIT
    return rows


HOSTILE_IDS = [
    "two``backticks ![x](https://evil.example/i.png) <img src=x onerror=alert(1)>",
    "carriage\r<img src=https://evil.example/p.png>",
    "line\nbreak\u2028and\u2029separators\x0bvt\x0cff\x85nel",
    "pipe|inside and back\\|slash-pipe",
    "see https://evil.example/x and www.evil.example and mail@evil.example",
    "entity &lt;img src=x&gt; and &#60;b&#62;",
    "[link](javascript:alert(1)) <https://evil.example> *em* _u_ ~~s~~",
    "`leading and trailing`",
    "nul\x00and\x1bescape",
]


def hostile_matrix() -> m.Matrix:
    cases = [(f"test_x{i}", name) for i, name in enumerate(HOSTILE_IDS)]
    bad = m.EnvResult("cu<img src=y>|da", "a.xml", cases=[m.Cell(c, n, m.FAILED, 0.1, "<img src=z>") for c, n in cases])
    good = m.EnvResult("cpu", "b.xml", cases=[m.Cell(c, n, m.PASSED) for c, n in cases])
    return build_matrix([bad, good], [m.InputWarning("x|`y`.xml", "![w](https://evil.example/w.png)")])


def test_github_renders_hostile_ids_as_their_text():
    text = markdown.render_markdown(hostile_matrix())
    rows = assert_inert(text)
    checks = [r[0] for r in rows if len(r) == 3 and r[0].startswith("x")]
    # The rendered cell holds the area and the check's own name (the area names the module): whitespace runs and
    # line breaks as one space, other control characters as U+FFFD, cut in the middle beyond markdown.ID_CHARS.
    def shown(i: int, name: str) -> str:
        flat = " ".join(name.split()).replace("\x00", "\ufffd").replace("\x1b", "\ufffd")
        if len(flat) > markdown.ID_CHARS:
            half = (markdown.ID_CHARS - 1) // 2
            flat = f"{flat[:half]}…{flat[len(flat) - (markdown.ID_CHARS - 1 - half):]}"
        return f"x{i}: {flat}"

    assert sorted(checks) == sorted(shown(i, name) for i, name in enumerate(HOSTILE_IDS))
    assert "cu<img src=y>|da" in [r[0] for r in rows], "the env name is shown as text"


def test_github_renders_the_example_and_fixture_summaries_inertly(examples, monkeypatch):
    assert len(assert_inert((examples / "compatibility.md").read_text(encoding="utf-8"))) > 20
    monkeypatch.chdir(ROOT)
    envs, warnings = read_inputs(MATRIX)
    assert_inert(markdown.render_markdown(build_matrix(envs, warnings, ["cpu", "cuda", "xpu", "hpu", "rocm"])))
    # Truncation cuts whole lines: a summary cut at the limit still renders intact.
    assert_inert(markdown.render_markdown(hostile_matrix(), limit=2_500))


# --- Why junitparser is not the product's reader ---------------------------------------------------------------------

def _suite(body: str, attrs: str = 'name="s" tests="1"') -> str:
    return f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite {attrs}>{body}</testsuite></testsuites>'


_CASE = '<testcase classname="test_x" name="t" time="0.1"/>'
# Inputs real producers and real accidents write (see README "The cross-device report"): each is a file
# `conformance report` must turn into a report, with a warning where something was lost.
HOSTILE: dict[str, bytes] = {
    "empty file": b"",
    "whitespace only": b"  \n\t\n",
    "XML declaration only": b'<?xml version="1.0"?>',
    "truncated mid-case (killed run)": _suite(_CASE * 3).encode()[:-60],
    "truncated mid-attribute": _suite(_CASE).encode()[:80],
    "malformed tag": _suite("<testcase classname='a' name='b'><failure></testcase>").encode(),
    "wrong root element": b"<html><body>502 Bad Gateway</body></html>",
    "two roots": (_suite(_CASE) + _suite(_CASE)).encode(),
    "trailing garbage": (_suite(_CASE) + "\x00garbage").encode(),
    "latin-1 bytes, no declaration": _suite(_CASE.replace('name="t"', 'name="caf\xe9"')).encode("latin-1"),
    "UTF-16 with BOM": _suite(_CASE).encode("utf-16"),
    "UTF-8 BOM": b"\xef\xbb\xbf" + _suite(_CASE).encode(),
    "invalid control character": _suite(_CASE.replace('name="t"', 'name="t\x01"')).encode(),
    "NUL byte in a message": _suite('<testcase classname="a" name="b"><failure message="x\x00y"/></testcase>').encode(),
    "Surefire time with a comma": _suite(_CASE.replace('time="0.1"', 'time="1,001.5"')).encode(),
    "time is text": _suite(_CASE.replace('time="0.1"', 'time="fast"')).encode(),
    "time is inf": _suite(_CASE.replace('time="0.1"', 'time="inf"')).encode(),
    "tests attribute is text": _suite(_CASE, 'name="s" tests="many"').encode(),
    "failures attribute negative": _suite(_CASE, 'name="s" tests="1" failures="-1"').encode(),
    "failures attribute float": _suite(_CASE, 'name="s" tests="1" failures="1.0"').encode(),
    "bare testsuite root": _suite(_CASE).replace("<testsuites>", "").replace("</testsuites>", "").encode(),
    "nested testsuites (Bazel, ctest)": _suite(f'<testsuite name="inner">{_CASE}</testsuite>').encode(),
    "namespaced root": b'<j:testsuites xmlns:j="urn:x"><j:testsuite name="s"><j:testcase name="t"/></j:testsuite>'
                       b"</j:testsuites>",
    "testcase without name": _suite('<testcase classname="a"/>').encode(),
    "testcase outside a suite": b'<testsuites><testcase classname="a" name="b"/></testsuites>',
    "Surefire flakyFailure and rerunFailure": _suite('<testcase classname="a" name="b"><flakyFailure message="x"/>'
                                                     '<rerunFailure message="y"/></testcase>').encode(),
    "ctest status=disabled": _suite('<testcase name="b" status="disabled"/>').encode(),
    "failure and skipped on one case": _suite('<testcase name="b"><failure/><skipped/></testcase>').encode(),
    "external entity (XXE)": b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
                             b'<testsuites><testsuite name="s"><testcase name="&x;"/></testsuite></testsuites>',
    "undefined entity": _suite('<testcase name="&nope;"/>').encode(),
    "entity expansion (billion laughs, small)": (
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><testsuites><testsuite name="s"><testcase name="&c;"/>'
        b"</testsuite></testsuites>"),
    "deep nesting": ("<testsuites>" + "<testsuite name='n'>" * 5000 + _CASE + "</testsuite>" * 5000
                     + "</testsuites>").encode(),
    "10 MB failure text": _suite('<testcase name="b"><failure>' + "x" * 10_000_000 + "</failure></testcase>").encode(),
    "CDATA with a fake closing tag": _suite('<testcase name="b"><system-out><![CDATA[</testcase>]]></system-out>'
                                            "</testcase>").encode(),
    "processing instruction and comments": _suite("<?pi x?><!-- c -->" + _CASE).encode(),
}


def junitparser_reading(path: Path) -> str:
    """'' when junitparser loads the file and yields what a dashboard shows (totals, case names, times,
    results), else the exception that stopped it."""
    try:
        shown = []
        for suite in junitparser_suites(path):
            shown.append((suite.name, suite.tests, suite.failures, suite.errors, suite.skipped, suite.time))
            shown += [(case.classname, case.name, case.time, [r.type for r in case.result]) for case in suite]
    except Exception as exc:  # any failure is junitparser stopping on this input
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return ""


def test_our_reader_survives_inputs_that_stop_junitparser(tmp_path, capsys):
    stopped = {}
    for i, (label, data) in enumerate(HOSTILE.items()):
        path = tmp_path / f"h{i:02d}.xml"
        path.write_bytes(data)
        read_inputs([path])  # must not raise: a bad file is a warning, never the end of the report
        reason = junitparser_reading(path)
        if reason:
            stopped[label] = reason
    assert stopped, "junitparser now reads every hostile input: re-measure its role (README)"
    with capsys.disabled():  # the figure the README quotes
        print(f"\njunitparser stopped on {len(stopped)} of {len(HOSTILE)} hostile inputs that conformance report "
              "reads:")
        for label, reason in stopped.items():
            print(f"  {label}: {reason}")
