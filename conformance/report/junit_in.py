"""Stream-parse one JUnit XML file (xunit1/xunit2, nested suites) into env results, never raising on bad XML.

What is kept per testcase: classname, name, time and the result/output children that junit-10.xsd allows
(failure, error, skipped, system-out, system-err, rerun*/flaky*). xunit1 extras that the schema forbids
(testcase `file`/`line` attributes, per-test `<properties>`) are not carried into merged.xml.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from conformance.report import model as m
from conformance.report.classify import classify

MERGED_MARKER = "conformance-merged"  # <testsuites name=...> of our own merged.xml

_RESULT_TAGS = frozenset({"failure", "error", "skipped"})
_KEEP_TAGS = _RESULT_TAGS | {"system-out", "system-err", "rerunFailure", "rerunError", "flakyFailure", "flakyError"}
# expat error codes that mean "the document stops early": what a file still being written looks like.
_TRUNCATION_CODES = {3, 5, 6}  # no element found, unclosed token, partial character
_JUNK_AFTER_ROOT = 9
_INF = float("inf")

_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.S)
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
        self.declared = [0, 0, 0, 0]  # tests, failures, errors, skipped of top-level suites
        self.has_declared = False

    def _env(self) -> m.EnvResult:
        if self.current is None:
            self.current = m.EnvResult(name=self.default_env, path=self.path)
            self.envs.append(self.current)
        return self.current

    def run(self, data: bytes) -> None:
        stack: list[str] = []
        for event, elem in ET.iterparse(io.BytesIO(data), events=("start", "end")):
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
        try:
            values = [int(elem.get(a) or 0) for a in ("tests", "failures", "errors", "skipped")]
        except ValueError:
            return
        if elem.get("tests") is not None:
            self.has_declared = True
        self.declared = [a + b for a, b in zip(self.declared, values)]

    def _case(self, env: m.EnvResult, elem: ET.Element) -> None:
        get = elem.get
        raw_time = get("time")
        try:
            time = float(raw_time) if raw_time else 0.0
        except ValueError:
            time = -1.0
        if not 0.0 <= time < _INF:  # negative, nan, inf or not a number: no schema-valid duration
            time = 0.0
            raw_time = "0"
            self.bad_times += 1
        elif not raw_time:
            raw_time = "0"
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
        env.tests += 1
        classname = get("classname", "")
        if self.split and classname.startswith(env.name + "."):
            classname = classname[len(env.name) + 1:]
        if results:
            outcome, message, detail = classify(results)
            env.cases.append(m.Cell(classname, get("name", ""), outcome, time, message, detail, tuple(kids), raw_time))
        else:
            env.cases.append(m.Cell(classname, get("name", ""), m.PASSED, time, "", "", tuple(kids), raw_time))


def parse_bytes(data: bytes, path: str, default_env: str, *, split_suites: bool | None = None) -> Parsed:
    """Parse one file's bytes. `split_suites=None` splits only a conformance merged.xml (one env per suite)."""
    out = Parsed()
    if not data.strip():
        out.warnings.append(m.InputWarning(path, "empty file (a run may still be writing it); not merged"))
        return out
    root = sniff_root(data)
    if root not in ("testsuites", "testsuite"):
        what = f"root element <{root}>" if root else "no XML element at the start"
        out.warnings.append(m.InputWarning(path, f"not a JUnit file ({what}, expected <testsuites> or "
                                                 "<testsuite>); not merged"))
        return out
    out.merged = root == "testsuites" and f'name="{MERGED_MARKER}"'.encode() in data[:4096]  # we write UTF-8
    split = out.merged if split_suites is None else split_suites
    reader = _Reader(path, default_env, split)
    problem = ""
    try:
        reader.run(data)
    except ET.ParseError as exc:
        bad = _utf8_problem(data)
        if bad is not None:
            # Captured test output sometimes holds raw bytes: keep the results, replace the bytes.
            fixed = data.decode("utf-8", "replace").encode("utf-8")
            again = parse_bytes(fixed, path, default_env, split_suites=split_suites)
            again.warnings.insert(0, m.InputWarning(
                path, f"not valid UTF-8 (first bad byte at offset {bad}); bad bytes replaced with U+FFFD"))
            return again
        line, _col = exc.position
        code = getattr(exc, "code", None)
        if code in _TRUNCATION_CODES:
            problem = f"incomplete: XML ends early at line {line} (truncated, or still being written)"
        elif code == _JUNK_AFTER_ROOT:
            out.warnings.append(m.InputWarning(path, f"content after the root element at line {line} ignored"))
        else:
            problem = f"malformed XML ({exc})"
    envs = reader.envs
    if problem:
        kept = sum(len(e.cases) for e in envs)
        if kept == 0:
            out.warnings.append(m.InputWarning(path, f"{problem}; no testcase could be read; not merged"))
            return out
        for env in envs:
            env.incomplete = problem
        out.warnings.append(m.InputWarning(path, f"{problem}; kept the {kept} testcases read before it, "
                                                 "env marked incomplete"))
    elif reader.has_declared and not split:
        counted = [sum(getattr(e, a) for e in envs) for a in ("tests", "failures", "errors", "skipped")]
        if counted != reader.declared:
            names = ("tests", "failures", "errors", "skipped")
            diff = ", ".join(f"{n} {d} declared / {c} found" for n, d, c in zip(names, reader.declared, counted)
                             if d != c)
            out.warnings.append(m.InputWarning(path, f"suite totals disagree with its testcases ({diff}); "
                                                     "the testcases are what is merged"))
    if reader.bad_times:
        out.warnings.append(m.InputWarning(path, f"{reader.bad_times} testcases have no valid time (not a "
                                                 "non-negative number); counted as 0 s"))
    if not split and envs and not envs[0].cases and not problem:
        out.warnings.append(m.InputWarning(path, "contains no testcases (nothing collected?)"))
    for env in envs:
        if not split:
            env.name = env.properties.get("env") or default_env
    out.envs = envs
    return out
