"""Stream-parse one JUnit XML file (xunit1/xunit2, nested suites) into env results, never raising on bad XML.

What is kept per testcase: classname, name, time and the result/output children that junit-10.xsd allows
(failure, error, skipped, system-out, system-err, rerun*/flaky*). xunit1 extras that the schema forbids
(testcase `file`/`line` attributes, per-test `<properties>`) are not carried into merged.xml.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat
from xml.sax.saxutils import escape

from conformance.protocol import properties
from conformance.report import model as m
from conformance.report.classify import classify
from conformance.report.matrix import describe_runs

MERGED_MARKER = "conformance-merged"  # <testsuites name=...> of our own merged.xml

_RESULT_TAGS = frozenset({"failure", "error", "skipped"})
_KEEP_TAGS = _RESULT_TAGS | {"system-out", "system-err", "rerunFailure", "rerunError", "flakyFailure", "flakyError"}
# expat error codes that mean "the document stops early": what a file still being written looks like.
_TRUNCATION_CODES = {3, 5, 6}  # no element found, unclosed token, partial character
_JUNK_AFTER_ROOT = 9
_INF = float("inf")
_HEAD_BYTES = 8192  # enough to sniff the root element and our merged marker
_COUNTS = ("tests", "failures", "errors", "skipped")
# Maven Surefire formats times with the JVM locale's grouping: time="1,001.5" (the junit-10.xsd suite time
# pattern allows it). Only well-formed groups of three are read this way; "1,5" stays invalid.
_GROUPED_TIME = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
# ctest writes status="disabled" on a testcase without any result element (cmCTestTestHandler::WriteJUnitXML):
# read as a skip, never a pass; merged.xml gets the <skipped> element so dashboards agree.
_CTEST_DISABLED = ("skipped", "disabled", 'disabled (ctest status="disabled")', "")
# The producers' own markers, per tests/data/junit/producers/README.md (from each producer's source):
# googletest writes a DISABLED_ test as status="notrun" result="suppressed" with no result element.
_DISABLED_STATUS = {"disabled": "ctest", "notrun": "googletest"}
_DISABLED_RESULT = {"suppressed": "googletest", "skipped": "googletest"}
# unittest-xml-reporting 3: expectedFailure -> <skipped type="XFAIL">, unexpected success -> <error
# type="UnexpectedSuccess">.
_XFAIL_TYPES = frozenset({"xfail"})
_XPASS_TYPES = frozenset({"unexpectedsuccess"})
# Catch2 3 writes this <skipped> before the <failure>s of a [!mayfail] / [!shouldfail] test that failed.
_CATCH2_MAYFAIL = "TEST_CASE tagged with !mayfail"
_CATCH2_SKIPPED = "SKIPPED"  # Catch2's SKIP(): no message attribute, the text is "SKIPPED\n<reason>\nat <file:line>"
# Playwright writes test annotations as per-test properties; `test.fail()` is the annotation "fail".
_PLAYWRIGHT_FAIL = "fail"
# Boost.Test writes this at the top of <system-err> only for a test case that failed; a case whose failures were all
# expected (`expected_failures(n)`) keeps its <failure> elements without it.
_BOOST_FAILED = "Failures detected in:"
_RERUN_TAGS = {"flakyFailure": m.FAILED, "flakyError": m.ERROR, "rerunFailure": m.FAILED, "rerunError": m.ERROR}

_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.DOTALL)
_TAG = re.compile(rb"\s*<([A-Za-z_][\w.:-]*)")


@dataclass
class Parsed:
    """What one file gave: zero or more env results (several only for our own merged.xml) and warnings."""

    envs: list[m.EnvResult] = field(default_factory=list)
    warnings: list[m.InputWarning] = field(default_factory=list)
    merged: bool = False  # the file is a conformance merged.xml


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def sniff_root(data: bytes) -> str | None:
    """Name of the root element, read from the first bytes without parsing the document."""
    pos = 0
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 (some Windows tools): sniff the decoded head
        data = data[:8192].decode("utf-16", "replace").encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):
        pos = 3
    while True:
        match = _PROLOG.match(data, pos)
        if not match:
            break
        pos = match.end()
    match = _TAG.match(data, pos)
    if not match:
        return None
    return _local(match.group(1).decode("ascii", "replace").split(":")[-1])


def _utf8_problem(data: bytes) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, or None when the bytes decode."""
    head = data[:200].lower()
    if b"encoding=" in head and b"utf-8" not in head and b"utf8" not in head:
        return None  # another declared encoding: expat decodes it itself
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


class _Reader:
    """State of one streaming pass; one EnvResult per file, or per top-level suite of a merged.xml."""

    def __init__(self, path: str, default_env: str, split_suites: bool) -> None:
        self.path = path
        self.default_env = default_env
        self.split = split_suites
        self.envs: list[m.EnvResult] = []
        self.current: m.EnvResult | None = None
        self.bad_times = 0
        # Per total (tests, failures, ...): the sum over top-level suites, or None once a suite left it out:
        # an absent attribute declares nothing (pytest and Surefire omit `skipped` at times).
        self.declared: dict[str, int | None] = dict.fromkeys(_COUNTS, 0)
        self.has_declared = False
        self.disabled = 0  # cases read as skipped without a <skipped> element (ctest, googletest disabled)
        # Producers whose suite totals count something else than testcases (Catch2: assertions; Boost.Test: run
        # cases without the skipped ones, plus suite fixtures): their totals declare nothing checkable.
        self.own_counters = ""
        self.boost = False  # Boost.Test's JUnit log: its expected failures keep their <failure> elements
        self.recovered = False  # read from repaired bytes: a replaced testcase's declared result is unknown

    def _env(self) -> m.EnvResult:
        if self.current is None:
            self.current = m.EnvResult(name=self.default_env, path=self.path)
            self.envs.append(self.current)
        return self.current

    def run(self, source: BinaryIO) -> None:
        stack: list[str] = []
        for event, elem in ET.iterparse(source, events=("start", "end")):
            tag = elem.tag
            if "}" in tag:
                tag = _local(tag)
            if event == "start":
                if tag == "testsuite":
                    top = "testsuite" not in stack
                    if top and self.split:
                        self.current = None
                        self._env().name = elem.get("name") or self.default_env
                    env = self._env()
                    if not env.timestamp:
                        env.timestamp = elem.get("timestamp", "")
                    if not env.hostname:
                        env.hostname = elem.get("hostname", "")
                    if top:
                        self._declare(elem)
                        if elem.get("hostname") == "tbd":  # Catch2's JUnit reporter; its totals count assertions
                            self.own_counters = "Catch2 counts assertions"
                stack.append(tag)
                continue
            stack.pop()
            if tag == "testcase":
                self._case(self._env(), elem)
                elem.clear()
            elif tag == "property":
                if len(stack) >= 2 and stack[-1] == "properties" and stack[-2] == "testsuite":
                    name = elem.get("name")
                    if name is not None:
                        self._env().properties.setdefault(name, elem.get("value", ""))
            elif tag in ("system-out", "system-err") and stack and stack[-1] == "testsuite":
                env = self._env()
                text = elem.text or ""
                if tag == "system-out":
                    env.system_out += text
                else:
                    env.system_err += text
                elem.clear()
            elif tag == "testsuite":
                elem.clear()

    def _declare(self, elem: ET.Element) -> None:
        for name in _COUNTS:
            raw = elem.get(name)
            total = self.declared[name]
            try:
                value = int(raw) if raw is not None else None
            except ValueError:
                value = None
            self.declared[name] = None if value is None or total is None else total + value
        if elem.get("tests") is not None:
            self.has_declared = True

    def forget_foreign_totals(self) -> None:
        """A producer whose totals count other things (assertions, cases without skips) declares nothing here."""
        if self.own_counters:
            self.declared = dict.fromkeys(_COUNTS, None)

    def totals_problem(self) -> str:
        """'' when the declared suite totals match the testcases, else what differs."""
        counted = {a: sum(getattr(e, a) for e in self.envs) for a in _COUNTS}
        diffs = []
        for name in _COUNTS:
            declared = self.declared[name]
            found = counted[name]
            if declared is None or declared == found:
                continue
            if name == "tests" and declared == len({(c.classname, c.name) for e in self.envs for c in e.cases}):
                continue  # each rerun listed as a testcase, the test counted once (gotestsum, Gradle retries)
            if name != "tests" and self.recovered:
                continue  # a damaged testcase now reads as an error; what it declared is unknown
            if name == "skipped" and declared == found - self.disabled:
                continue  # ctest counts disabled tests apart (its `disabled` attribute)
            diffs.append(f"{name} {declared} declared / {found} found")
        return ", ".join(diffs)

    def _time(self, raw: str | None) -> tuple[float, str]:
        """Seconds and the text merged.xml copies; (0, "0") counted as bad for what is no duration."""
        if not raw:
            return 0.0, "0"
        try:
            time = float(raw)
        except ValueError:
            if _GROUPED_TIME.match(raw):
                raw = raw.replace(",", "")
                time = float(raw)
            else:
                time = -1.0
        if not 0.0 <= time < _INF:  # negative, nan, inf or not a number: no schema-valid duration
            self.bad_times += 1
            return 0.0, "0"
        return time, raw

    def _case(self, env: m.EnvResult, elem: ET.Element) -> None:
        get = elem.get
        time, raw_time = self._time(get("time"))
        kids: list[tuple[str, str | None, str | None, str]] = []
        results = []
        reruns = annotated = False
        for child in elem:
            ctag = child.tag
            if "}" in ctag:
                ctag = _local(ctag)
            if ctag in _KEEP_TAGS:
                item = (ctag, child.get("type"), child.get("message"), child.text or "")
                kids.append(item)
                if ctag in _RESULT_TAGS:
                    results.append(item)
                    if ctag == "failure":
                        env.failures += 1
                    elif ctag == "error":
                        env.errors += 1
                    else:
                        env.skipped += 1
                elif ctag in _RERUN_TAGS:
                    reruns = True
            elif ctag == "properties":
                annotated = True
        if not results:
            status, result = get("status"), get("result")
            disabled = _disabled(status, result) if status or result else None
            if disabled:
                kids.append(disabled)
                results.append(disabled)
                env.skipped += 1
                self.disabled += 1
        if not self.boost and get("assertions") is not None and get("file") is None and get("class") is None:
            self.boost = True  # PHPUnit, the other producer with `assertions`, writes file and class
            self.own_counters = "Boost.Test counts run cases without the skipped ones"
        env.tests += 1
        classname = get("classname", "")
        name = get("name", "")
        if self.split and classname.startswith(env.name + "."):
            classname = classname[len(env.name) + 1:]
        if results:
            outcome, message, detail = classify(results)
            if annotated or self.boost or len(results) > 1 or results[0][1]:
                outcome, message = _dialect(outcome, message, results, kids, elem, self.boost)
            message = m.cap_text(message, m.MESSAGE_LIMIT)
            detail = m.cap_text(detail, m.DETAIL_LIMIT)
        else:
            outcome, message, detail = m.PASSED, "", ""
            if annotated and _annotated_fail(elem):  # Playwright test.fail() that failed as expected: no child
                outcome, message = m.XFAIL, "expected to fail (Playwright test.fail())"
        runs: tuple[str, ...] = ()
        if reruns:
            # Surefire/Playwright/nextest reruns inside one testcase: flaky*/rerun* for each failed run before the
            # final one, whose result is the testcase's own.
            runs = (*(_RERUN_TAGS[k[0]] for k in kids if k[0] in _RERUN_TAGS), outcome)
            first = next((k[2] or k[3].strip().split("\n", 1)[0] for k in kids if k[0] in _RERUN_TAGS), "")
            message = m.cap_text("; ".join(x for x in (describe_runs(runs), message or first) if x), m.MESSAGE_LIMIT)
        env.cases.append(m.Cell(classname, name, outcome, time, message, detail, tuple(kids), raw_time, runs))

def _disabled(status: str | None, result: str | None) -> tuple[str, str | None, str | None, str] | None:
    """The <skipped> a producer implies for a disabled test written without a result element, or None."""
    if status == "disabled":
        return _CTEST_DISABLED
    producer = _DISABLED_STATUS.get(status or "") or _DISABLED_RESULT.get(result or "")
    if producer is None:
        return None
    attrs = " ".join(f'{k}="{v}"' for k, v in (("status", status), ("result", result)) if v)
    return ("skipped", "disabled", f"disabled ({producer} {attrs})", "")


def _annotated_fail(elem: ET.Element) -> bool:
    """A per-test property `fail` (Playwright's test.fail() annotation): the test is expected to fail."""
    for child in elem:
        if _local(child.tag) == "properties":
            return any(_local(p.tag) == "property" and p.get("name") == _PLAYWRIGHT_FAIL for p in child)
    return False


def _dialect(outcome: str, message: str, results: list[tuple[str, str | None, str | None, str]],
             kids: list[tuple[str, str | None, str | None, str]], elem: ET.Element, boost: bool) -> tuple[str, str]:
    """Expected failures and unexpected successes as other runners mark them (README of the producer samples)."""
    types = {(t or "").lower() for tag, t, _m, _x in results}
    bad = [r for r in results if r[0] in ("failure", "error")]
    if types & _XPASS_TYPES:
        return m.XPASS, message
    if types & _XFAIL_TYPES and not bad:
        return m.XFAIL, message
    if any(tag == "skipped" and msg == _CATCH2_MAYFAIL for tag, _t, msg, _x in results):
        first = next((r[2] or r[3].strip() for r in bad), "")
        return m.XFAIL, f"{_CATCH2_MAYFAIL} (Catch2): {first}" if first else _CATCH2_MAYFAIL
    if bad and _annotated_fail(elem):
        return m.XPASS, f"expected to fail (Playwright test.fail()) but passed: {message}"
    if bad and boost and not any(k[0] == "system-err" and k[3].lstrip().startswith(_BOOST_FAILED) for k in kids):
        return m.XFAIL, f"expected failure (Boost.Test expected_failures): {message}"
    if outcome == m.SKIPPED and message == _CATCH2_SKIPPED:  # Catch2's SKIP(): the reason is the text's next line
        lines = [line.strip() for line in results[0][3].strip().splitlines()]
        return outcome, lines[1] if len(lines) > 2 and lines[0] == _CATCH2_SKIPPED else message
    return outcome, message


def parse_bytes(data: bytes, path: str, default_env: str, *, split_suites: bool | None = None) -> Parsed:
    """Parse one file's bytes. `split_suites=None` splits only a conformance merged.xml (one env per suite)."""
    return _parse(data[:_HEAD_BYTES], not data.strip(), lambda: io.BytesIO(data), lambda: data, path, default_env,
                  split_suites)


def parse_file(file: Path, path: str, default_env: str, *, split_suites: bool | None = None) -> Parsed:
    """Parse one file streaming from disk: a 300 MB input is never held in memory as bytes as well."""
    with file.open("rb") as stream:
        head = stream.read(_HEAD_BYTES)
        empty = not head.strip() and not stream.read(1)
    return _parse(head, empty, lambda: file.open("rb"), file.read_bytes, path, default_env, split_suites)


def _parse(head: bytes, empty: bool, opener: Callable[[], BinaryIO], whole: Callable[[], bytes], path: str,
           default_env: str, split_suites: bool | None, *, recover: bool = True) -> Parsed:
    out = Parsed()
    if empty:
        out.warnings.append(m.InputWarning(path, "empty file (a run may still be writing it); not merged",
                                           slug=m.W_EMPTY))
        return out
    root = sniff_root(head)
    if root not in ("testsuites", "testsuite"):
        what = f"root element <{root}>" if root else "no XML element at the start"
        out.warnings.append(m.InputWarning(path, f"not a JUnit file ({what}, expected <testsuites> or "
                                                 "<testsuite>); not merged", slug=m.W_NOT_JUNIT))
        return out
    out.merged = root == "testsuites" and f'name="{MERGED_MARKER}"'.encode() in head[:4096]  # we write UTF-8
    split = out.merged if split_suites is None else split_suites
    reader = _Reader(path, default_env, split)
    reader.recovered = not recover
    problem = ""
    slug = m.W_MALFORMED
    try:
        with opener() as source:
            reader.run(source)
    except ET.ParseError as exc:
        data = whole()
        bad = _utf8_problem(data)
        if bad is not None:
            # Captured test output sometimes holds raw bytes: keep the results, replace the bytes.
            fixed = data.decode("utf-8", "replace").encode("utf-8")
            again = parse_bytes(fixed, path, default_env, split_suites=split_suites)
            again.warnings.insert(0, m.InputWarning(
                path, f"not valid UTF-8 (first bad byte at offset {bad}); bad bytes replaced with U+FFFD",
                slug=m.W_ENCODING))
            return again
        line, _col = exc.position
        code = getattr(exc, "code", None)
        if code in _TRUNCATION_CODES:
            problem = (f"incomplete: XML ends early at byte {len(data)} (line {line}); "
                       f"{_declared_note(reader)} (truncated, or still being written)")
            slug = m.W_TRUNCATED
        elif code == _JUNK_AFTER_ROOT:
            out.warnings.append(m.InputWarning(path, f"content after the root element at line {line} ignored",
                                               slug=m.W_TRAILING))
        else:
            repaired = _recover(data) if recover else None
            if repaired is not None:
                fixed, notes = repaired
                again = _parse(fixed[:_HEAD_BYTES], False, lambda: io.BytesIO(fixed), lambda: fixed, path,
                               default_env, split_suites, recover=False)
                again.warnings.insert(0, m.InputWarning(path, f"not well-formed XML, recovered: {'; '.join(notes)}",
                                                        slug=m.W_RECOVERED))
                return again
            problem = f"malformed XML ({exc})"
    _finish(out, reader, problem, slug, path, split, default_env)
    return out


# XML 1.0 forbids C0 control characters other than tab, LF and CR, even as character references (&#x1b;), yet
# producers write ANSI colour codes that way; each becomes its Control Picture (U+241B for ESC), so the text stays
# readable and the rest of the file is read.
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BARE_AMP = re.compile(rb"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#[xX][0-9a-fA-F]+);)")
_OPEN_CASE = re.compile(rb"<testcase\b[^<>]*?(/?)>")
_CASE_ATTR = re.compile(rb'\b(classname|name)\s*=\s*"([^"<&]*)"')
_MAX_REPAIRS = 50  # damaged testcases replaced before the file is called beyond recovery


def _xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _picture(code: int) -> bytes:
    """A character reference to the visible stand-in of a forbidden character."""
    return f"&#x{0x2400 + code:x};".encode() if code < 0x20 else b"&#xfffd;"


def _char_fixes(data: bytes, notes: list[str]) -> bytes:
    """Forbidden character references, raw control bytes and bare '&' made well-formed; what was done in `notes`."""
    refs: list[bytes] = []

    def ref(hit: re.Match[bytes]) -> bytes:
        code = int(hit.group(1), 16) if hit.group(1) else int(hit.group(2))
        if _xml_char(code):
            return hit.group(0)
        refs.append(hit.group(0))
        return _picture(code)

    data = _CHAR_REF.sub(ref, data)
    if refs:
        sample = ", ".join(sorted({r.decode("ascii") for r in refs})[:3])
        notes.append(f"{len(refs)} character references to control characters ({sample}) shown as control pictures")
    data, raw = _RAW_CONTROL.subn(lambda hit: _picture(hit.group(0)[0]), data)
    if raw:
        notes.append(f"{raw} raw control characters shown as control pictures")
    data, amps = _BARE_AMP.subn(b"&amp;", data)
    if amps:
        notes.append(f"{amps} unescaped '&' read as text")
    return data


def _first_error(data: bytes) -> tuple[int, int, str] | None:
    """(byte index, expat code, message) of the first well-formedness error, or None when the bytes parse."""
    parser = expat.ParserCreate()
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        return parser.ErrorByteIndex, exc.code, expat.ErrorString(exc.code) or str(exc)
    return None


def _damaged_case(data: bytes, pos: int) -> tuple[int, int] | None:
    """(start, end) of the testcase element that holds byte `pos`, or None when the damage is outside one."""
    start = data.rfind(b"<testcase", 0, pos + 1)
    if start < 0 or data.find(b"</testcase>", start, pos) >= 0:
        return None
    tag = _OPEN_CASE.match(data, start)
    if tag and tag.end() <= pos and tag.group(1):
        return None  # a self-closed testcase ends before the damage
    ends = [i for i in (data.find(b"<testcase", pos), data.find(b"</testsuite", pos)) if i >= 0]
    close = data.find(b"</testcase>", pos)
    if close >= 0:
        ends.append(close + len(b"</testcase>"))
    return (start, min(ends)) if ends else None


def _recover(data: bytes) -> tuple[bytes, list[str]] | None:
    """The bytes with local damage repaired and what was done, or None when nothing could be repaired.

    Character-level damage is fixed in place; a testcase that still does not parse is replaced by one with the same
    name whose result is an <error> saying so: its result is unknown, and an unknown result never reads as a pass.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None  # UTF-16: byte patterns would cut characters
    notes: list[str] = []
    data = _char_fixes(data, notes)
    replaced: list[str] = []
    for _ in range(_MAX_REPAIRS):
        error = _first_error(data)
        if error is None or error[1] in _TRUNCATION_CODES:
            break
        pos, _code, what = error
        span = _damaged_case(data, pos)
        if span is None:
            break
        start, end = span
        attrs = dict(_CASE_ATTR.findall(data[start:min(pos, start + 4096)]))
        name = attrs.get(b"name") or f"unreadable testcase at byte {start}".encode()
        message = f"unreadable: not well-formed XML in this testcase at byte {pos} ({what}); its result is unknown"
        error_elem = b'<error type="unreadable" message="' + escape(message, {'"': "&quot;"}).encode() + b'"/>'
        data = (data[:start] + b'<testcase classname="' + attrs.get(b"classname", b"") + b'" name="' + name
                + b'">' + error_elem + b"</testcase>" + data[end:])
        replaced.append(f"byte {pos} ({what})")
    if replaced:
        plural = "s" if len(replaced) != 1 else ""
        notes.append(f"{len(replaced)} damaged testcase{plural} read as errors ({', '.join(replaced[:3])}"
                     f"{' ...' if len(replaced) > 3 else ''})")
    return (data, notes) if notes else None


def _declared_note(reader: _Reader) -> str:
    """'90 of 452 declared testcases read' (or '90 testcases read' when no suite declared a total)."""
    reader.forget_foreign_totals()
    kept = sum(len(e.cases) for e in reader.envs)
    declared = reader.declared["tests"]
    if reader.has_declared and declared is not None and declared > kept:
        return f"{kept} of {declared} declared testcases read"
    return f"{kept} testcases read"


def _finish(out: Parsed, reader: _Reader, problem: str, slug: str, path: str, split: bool, default_env: str) -> None:
    """Warnings about what was read (cut short, totals, times, nothing) and the env names."""
    reader.forget_foreign_totals()
    envs = reader.envs
    if problem:
        kept = sum(len(e.cases) for e in envs)
        if kept == 0:
            out.warnings.append(m.InputWarning(path, f"{problem}; no testcase could be read; not merged", slug=slug))
            return
        for env in envs:
            env.incomplete = problem
        out.warnings.append(m.InputWarning(path, f"{problem}; kept the {kept} testcases read before it, "
                                                 "env marked incomplete", slug=slug))
    elif reader.has_declared and not split:
        diff = reader.totals_problem()
        declared, found = reader.declared["tests"], sum(e.tests for e in envs)
        if declared is not None and declared > found:
            # Cases lost between the producer and this file (cut and re-closed, a writer that died): the report
            # fails on it by default, as on a file that ends early.
            out.warnings.append(m.InputWarning(path, f"incomplete: holds {found} of {declared} declared testcases "
                                                     f"({diff}); env marked incomplete", slug=m.W_FEWER))
            for env in envs:
                env.incomplete = env.incomplete or f"{found} of {declared} declared testcases"
        elif diff:
            out.warnings.append(m.InputWarning(path, f"suite totals disagree with its testcases ({diff}); "
                                                     "the testcases are what is merged", slug=m.W_TOTALS))
    if reader.bad_times:
        out.warnings.append(m.InputWarning(path, f"{reader.bad_times} testcases have no valid time (not a "
                                                 "non-negative number); counted as 0 s", slug=m.W_BAD_TIME))
    if not split and envs and not envs[0].cases and not problem:
        out.warnings.append(m.InputWarning(path, "contains no testcases (nothing collected?)", slug=m.W_NO_TESTS))
    for env in envs:
        if not split:
            env.name = env.properties.get(properties.ENV) or default_env
    out.envs = envs
