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

from conformance.report import model as m
from conformance.report.classify import classify

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
        self.disabled = 0  # ctest cases read as skipped without a <skipped> element in the input

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

    def totals_problem(self) -> str:
        """'' when the declared suite totals match the testcases, else what differs."""
        counted = {a: sum(getattr(e, a) for e in self.envs) for a in _COUNTS}
        diffs = []
        for name in _COUNTS:
            declared = self.declared[name]
            found = counted[name]
            if declared is None or declared == found:
                continue
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
        if not results and get("status") == "disabled":
            kids.append(_CTEST_DISABLED)
            results.append(_CTEST_DISABLED)
            env.skipped += 1
            self.disabled += 1
        env.tests += 1
        classname = get("classname", "")
        if self.split and classname.startswith(env.name + "."):
            classname = classname[len(env.name) + 1:]
        if results:
            outcome, message, detail = classify(results)
            message = m.cap_text(message, m.MESSAGE_LIMIT)
            detail = m.cap_text(detail, m.DETAIL_LIMIT)
            env.cases.append(m.Cell(classname, get("name", ""), outcome, time, message, detail, tuple(kids), raw_time))
        else:
            env.cases.append(m.Cell(classname, get("name", ""), m.PASSED, time, "", "", tuple(kids), raw_time))


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
           default_env: str, split_suites: bool | None) -> Parsed:
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
            problem = f"malformed XML ({exc})"
    _finish(out, reader, problem, slug, path, split, default_env)
    return out


def _declared_note(reader: _Reader) -> str:
    """'90 of 452 declared testcases read' (or '90 testcases read' when no suite declared a total)."""
    kept = sum(len(e.cases) for e in reader.envs)
    declared = reader.declared["tests"]
    if reader.has_declared and declared is not None and declared > kept:
        return f"{kept} of {declared} declared testcases read"
    return f"{kept} testcases read"


def _finish(out: Parsed, reader: _Reader, problem: str, slug: str, path: str, split: bool, default_env: str) -> None:
    """Warnings about what was read (cut short, totals, times, nothing) and the env names."""
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
            env.name = env.properties.get("env") or default_env
    out.envs = envs
