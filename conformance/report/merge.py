"""Write merged.xml (junit-10.xsd valid, one suite per env, unique case names) and verify totals are conserved.

Each env becomes `<testsuite name="<env>">` with its suite properties; every testcase classname is prefixed
with the env (`cuda.test_split`) because GitLab keeps only the first of duplicate names. After rendering, the
written text is counted again and compared with what was read: a mismatch raises MergeError, never a silent
wrong total.
"""

from __future__ import annotations

import re

from conformance.report import model as m
from conformance.report.junit_in import MERGED_MARKER


class MergeError(RuntimeError):
    """merged.xml would not conserve the input totals: an internal error, nothing is written."""


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


def _seconds(t: float) -> str:
    # junit-10.xsd restricts suite times to plain decimals: no sign, no exponent.
    return f"{max(t, 0.0):.3f}"


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


def _suite(col: m.EnvColumn) -> list[str]:
    env = col.result
    props = dict(env.properties)
    props.setdefault("env", env.name)
    if env.incomplete:
        props["conformance_incomplete"] = env.incomplete
    head = (f'<testsuite name="{_attr(env.name)}" tests="{env.tests}" failures="{env.failures}" '
            f'errors="{env.errors}" skipped="{env.skipped}" time="{_seconds(env.time)}"')
    if env.timestamp:
        head += f' timestamp="{_attr(env.timestamp)}"'
    if env.hostname:
        head += f' hostname="{_attr(env.hostname)}"'
    out = [head + ">", "<properties>"]
    out += [f'<property name="{_attr(k)}" value="{_attr(v)}"/>' for k, v in props.items()]
    out.append("</properties>")
    prefix = env.name + "."
    classnames: dict[str, str] = {}
    for cell in env.cases:
        if cell.classname not in classnames:
            classnames[cell.classname] = _attr(prefix + cell.classname)
    special = _SPECIAL_ATTR.search
    if not env.duplicates:
        # The common case, kept in one comprehension: a passed case with a plain name is one f-string.
        # time_text came through float() in the reader: digits, sign, dot, exponent, nothing to escape.
        out += [f'<testcase classname="{classnames[c.classname]}" name="{c.name}" time="{c.time_text}"/>'
                if not c.children and c.time_text and not special(c.name) else _case(classnames[c.classname], c, c.name)
                for c in env.cases]
    else:
        seen: set[str] = set()
        repeats: dict[str, int] = {}
        for cell in env.cases:
            key, name = cell.key, cell.name
            if key in seen:
                # A duplicate id inside one env stays (totals are conserved) but gets a suffix to stay unique.
                n = repeats[key] = repeats.get(key, 1) + 1
                name = f"{name} [duplicate {n}]"
            else:
                seen.add(key)
            out.append(_case(classnames[cell.classname], cell, name))
    if env.system_out:
        out.append(f"<system-out>{_text(env.system_out)}</system-out>")
    if env.system_err:
        out.append(f"<system-err>{_text(env.system_err)}</system-err>")
    out.append("</testsuite>")
    return out


def render_merged(matrix: m.Matrix) -> str:
    """merged.xml text; raises MergeError when its totals differ from the inputs'."""
    envs = [c.result for c in matrix.envs]
    tests = sum(e.tests for e in envs)
    failures = sum(e.failures for e in envs)
    errors = sum(e.errors for e in envs)
    time = sum(e.time for e in envs)
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n',
             f'<testsuites name="{MERGED_MARKER}" tests="{tests}" failures="{failures}" errors="{errors}" '
             f'time="{_seconds(time)}">\n']
    for col in matrix.envs:
        parts += _suite(col)
        parts.append("\n")
    parts.append("</testsuites>\n")
    text = "".join(parts)
    verify(text, matrix)
    return text


def _count(text: str) -> tuple[int, int, int, int]:
    # Text and attribute values are escaped, so "<tag" can only be a real element start, and no other element
    # of the schema starts with these names (closing tags start with "</").
    return text.count("<testcase"), text.count("<failure"), text.count("<error"), text.count("<skipped")


def verify(text: str, matrix: m.Matrix) -> None:
    """Count testcases/failures/errors/skipped per suite in the written text against what the inputs held."""
    chunks = text.split("<testsuite ")[1:]
    if len(chunks) != len(matrix.envs):
        raise MergeError(f"merged.xml has {len(chunks)} suites for {len(matrix.envs)} envs")
    problems = []
    for chunk, col in zip(chunks, matrix.envs):
        env = col.result
        want = (env.tests, env.failures, env.errors, env.skipped)
        got = _count(chunk)
        if got != want:
            problems.append(f"{env.name} ({env.path}): read tests/failures/errors/skipped={want}, wrote {got}")
    if problems:
        raise MergeError("merged totals differ from the inputs: " + "; ".join(problems))
