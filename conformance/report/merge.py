"""Write merged.xml (junit-10.xsd valid, one suite per env, unique case names) and verify totals are conserved.

Each env becomes `<testsuite name="<env>">` with its suite properties; every testcase classname is prefixed
with the env (`cuda.test_split`) because GitLab keeps only the first of duplicate names. Names are unique by
construction: a (classname, name) pair already written gets ` [duplicate N]` (N = 2, 3, ...), and a name that
already ends like a generated suffix (` [duplicate N]` or ` [literal]`) gets ` [literal]` appended first, so a
generated suffix can always be told from an input's text. While writing, the text is counted again and compared
with what was read: a mismatch raises MergeError, never a silent wrong total.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import TextIO

from conformance import errors
from conformance.protocol import properties
from conformance.report import model as m
from conformance.report.junit_in import MERGED_MARKER


class MergeError(errors.ConformanceError):
    """merged.xml would not conserve the input totals: an internal error, nothing is written."""

    exit_code = errors.INTERNAL


_RESERVED = re.compile(r" \[(?:duplicate \d+|literal)\]$")
LITERAL = " [literal]"
_BATCH = 200  # testcases formatted per step: few calls, and never a whole 300 MB suite in one string
_CHUNK_CHARS = 1 << 20  # longest text joined for one write


_CTRL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Most names need no escaping at all; one C-level scan tells.
_SPECIAL_ATTR = re.compile('[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


def _text(s: str) -> str:
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    return _CTRL.sub("\ufffd", s)


def _attr(s: str) -> str:
    s = _text(s)
    if '"' in s:
        s = s.replace('"', "&quot;")
    if "\n" in s or "\r" in s or "\t" in s:
        s = s.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return s


def _seconds(t: float | Decimal) -> str:
    # junit-10.xsd restricts suite times to plain decimals: no sign, no exponent, never "inf".
    return f"{max(t, 0):.3f}"


def _env_seconds(env: m.EnvResult) -> float | Decimal:
    return env.time if math.isfinite(env.time) else env.time_exact()


class _Names:
    """Testcase names of merged.xml, unique per (prefixed classname, name) across the whole file."""

    def __init__(self, envs: list[m.EnvResult]) -> None:
        owners: dict[str, int] = {}
        for env in envs:
            for classname in {env.name + "." + c.classname for c in env.cases}:
                owners[classname] = owners.get(classname, 0) + 1
        # Prefixed classnames two envs share (env "a" + "b.c" and env "a.b" + "c"): only there can envs collide.
        self.shared = {c for c, n in owners.items() if n > 1}
        self.taken: dict[str, set[str]] = {}
        self.next: dict[tuple[str, str], int] = {}

    def needs_care(self, env: m.EnvResult, classnames: dict[str, str]) -> bool:
        """False when every name of the env can be written as it is (the common case, one fast loop)."""
        if env.duplicates or any(env.name + "." + c in self.shared for c in classnames):
            return True
        return any(_RESERVED.search(c.name) for c in env.cases)

    def unique(self, classname: str, name: str) -> str:
        if _RESERVED.search(name):
            name += LITERAL
        written = self.taken.setdefault(classname, set())
        out = name
        if out in written:
            k = self.next.get((classname, name), 2)
            out = f"{name} [duplicate {k}]"
            while out in written:
                k += 1
                out = f"{name} [duplicate {k}]"
            self.next[(classname, name)] = k + 1
        written.add(out)
        return out


def _case(classname: str, cell: m.Cell, name: str) -> str:
    """`classname` arrives escaped (and env-prefixed) already: a suite has few distinct ones."""
    if _SPECIAL_ATTR.search(name):
        name = _attr(name)
    head = f'<testcase classname="{classname}" name="{name}" time="{_attr(cell.time_text or f"{cell.time:.3f}")}"'
    if not cell.children:
        return head + "/>"
    parts = [head, ">"]
    for tag, type_, message, text in cell.children:
        parts.append(f"<{tag}")
        if type_ is not None:
            parts.append(f' type="{_attr(type_)}"')
        elif tag in ("rerunFailure", "rerunError", "flakyFailure", "flakyError"):
            parts.append(' type=""')  # required by the schema for these
        if message is not None:
            parts.append(f' message="{_attr(message)}"')
        parts.append(f">{_text(text)}</{tag}>" if text else "/>")
    parts.append("</testcase>")
    return "".join(parts)


def _suite(col: m.EnvColumn, names: _Names) -> Iterator[str]:
    """The suite of one env in chunks: head and properties, testcases in batches, captured output."""
    env = col.result
    props = dict(env.properties)
    props.setdefault(properties.ENV, env.name)
    if env.incomplete:
        props[properties.INCOMPLETE] = env.incomplete
    head = (f'<testsuite name="{_attr(env.name)}" tests="{env.tests}" failures="{env.failures}" '
            f'errors="{env.errors}" skipped="{env.skipped}" time="{_seconds(_env_seconds(env))}"')
    if env.timestamp:
        head += f' timestamp="{_attr(env.timestamp)}"'
    if env.hostname:
        head += f' hostname="{_attr(env.hostname)}"'
    out = [head + ">", "<properties>"]
    out += [f'<property name="{_attr(k)}" value="{_attr(v)}"/>' for k, v in props.items()]
    out.append("</properties>")
    yield "".join(out)
    prefix = env.name + "."
    classnames: dict[str, str] = {}
    for cell in env.cases:
        if cell.classname not in classnames:
            classnames[cell.classname] = _attr(prefix + cell.classname)
    special = _SPECIAL_ATTR.search
    careful = names.needs_care(env, classnames)
    cases = env.cases
    for start in range(0, len(cases), _BATCH):
        batch = cases[start:start + _BATCH]
        if not careful:
            # The common case, kept in one comprehension: a passed case with a plain name is one f-string.
            # time_text came through float() in the reader: digits, sign, dot, exponent, nothing to escape.
            lines = [f'<testcase classname="{classnames[c.classname]}" name="{c.name}" time="{c.time_text}"/>'
                     if not c.children and c.time_text and not special(c.name)
                     else _case(classnames[c.classname], c, c.name) for c in batch]
        else:
            lines = [_case(classnames[c.classname], c, names.unique(classnames[c.classname], c.name)) for c in batch]
        yield from _joined(lines)
    tail = []
    if env.system_out:
        tail.append(f"<system-out>{_text(env.system_out)}</system-out>")
    if env.system_err:
        tail.append(f"<system-err>{_text(env.system_err)}</system-err>")
    tail.append("</testsuite>\n")
    yield "".join(tail)


def _joined(lines: list[str]) -> Iterator[str]:
    """`lines` joined into chunks of about _CHUNK_CHARS: few writes, and never a copy of a huge suite at once."""
    if sum(map(len, lines)) <= _CHUNK_CHARS:
        yield "".join(lines)
        return
    buf: list[str] = []
    size = 0
    for line in lines:
        buf.append(line)
        size += len(line)
        if size >= _CHUNK_CHARS:
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


def write_merged(matrix: m.Matrix, stream: TextIO) -> None:
    """Write merged.xml to `stream`, counting while writing; raises MergeError when its totals differ from the
    inputs' (the caller discards the half-written file)."""
    envs = [c.result for c in matrix.envs]
    tests = sum(e.tests for e in envs)
    failures = sum(e.failures for e in envs)
    errors_ = sum(e.errors for e in envs)
    time: float | Decimal = sum(e.time for e in envs)
    if not math.isfinite(time):
        time = sum((e.time_exact() for e in envs), Decimal(0))
    stream.write('<?xml version="1.0" encoding="utf-8"?>\n'
                 f'<testsuites name="{MERGED_MARKER}" tests="{tests}" failures="{failures}" errors="{errors_}" '
                 f'time="{_seconds(time)}">\n')
    names = _Names(envs)
    problems = []
    for col in matrix.envs:
        got = [0, 0, 0, 0]
        for chunk in _suite(col, names):
            for i, n in enumerate(_count(chunk)):
                got[i] += n
            stream.write(chunk)
        env = col.result
        want = [env.tests, env.failures, env.errors, env.skipped]
        if got != want:
            problems.append(f"{env.name} ({env.path}): read tests/failures/errors/skipped={tuple(want)}, "
                            f"wrote {tuple(got)}")
    stream.write("</testsuites>\n")
    if problems:
        raise MergeError("merged totals differ from the inputs: " + "; ".join(problems))


def render_merged(matrix: m.Matrix) -> str:
    """merged.xml text; raises MergeError when its totals differ from the inputs'."""
    stream = io.StringIO()
    write_merged(matrix, stream)
    return stream.getvalue()


def _count(text: str) -> tuple[int, int, int, int]:
    # Text and attribute values are escaped, so "<tag" can only be a real element start, and no other element
    # of the schema starts with these names (closing tags start with "</").
    return text.count("<testcase"), text.count("<failure"), text.count("<error"), text.count("<skipped")


def verify(text: str, matrix: m.Matrix) -> None:
    """Count testcases/failures/errors/skipped per suite in a written merged.xml against what the inputs held."""
    chunks = text.split("<testsuite ")[1:]
    if len(chunks) != len(matrix.envs):
        raise MergeError(f"merged.xml has {len(chunks)} suites for {len(matrix.envs)} envs")
    problems = []
    for chunk, col in zip(chunks, matrix.envs, strict=True):
        env = col.result
        want = (env.tests, env.failures, env.errors, env.skipped)
        got = _count(chunk)
        if got != want:
            problems.append(f"{env.name} ({env.path}): read tests/failures/errors/skipped={want}, wrote {got}")
    if problems:
        raise MergeError("merged totals differ from the inputs: " + "; ".join(problems))
