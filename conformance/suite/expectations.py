"""Expectation files: known upstream failures per device and torch version, applied as strict xfail.

Files live in `conformance/suite/expectations/`; the file name says when a file applies:

    all.txt                         every device and build
    <device>.txt                    every build on that device (cpu, cuda, xpu, hpu)
    torch-<X.Y>.txt                 torch X.Y on every device
    torch-lt-<X.Y>.txt              every torch older than X.Y
    <device>-torch-<X.Y>.txt        torch X.Y on that device
    <device>-torch-lt-<X.Y>.txt     torch older than X.Y on that device

Each line is a test-id prefix (node id relative to the suite, e.g.
`test_split.py::test_pipe_numerics[TransformerBlock-bf16]`) followed by an optional `# comment` with the
upstream link. A block of comment lines heads a group of entries (up to the next blank line or comment block):
an entry without its own comment takes the block's text as its reason. Every collected check whose node id
starts with an entry becomes `xfail(strict=True)`, so an upstream fix shows as an unexpected pass (a failure)
and the entry can be removed. An entry that matches no collected check is reported as a warning naming the
file and line: it is either a typo or stale (entries for a check module the run did not select at all, e.g.
`conformance run -- test_split.py`, are not reported).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass

import pytest

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expectations")
_NAME = re.compile(r"^(?:(?P<device>[a-z]+)(?:-|$))?(?:torch-(?P<lt>lt-)?(?P<major>\d+)\.(?P<minor>\d+))?$")


class ExpectationWarning(pytest.PytestWarning):
    """An expectation entry that matched no collected check."""


@dataclass(frozen=True)
class Entry:
    prefix: str
    reason: str  # the comment (upstream link), may be empty
    file: str  # path shown to users, relative to the package
    line: int
    path: str = ""  # absolute path, for warnings


def applies(filename: str, device: str, version: tuple[int, int] | None) -> bool:
    """Whether an expectation file named `filename` is for this device and torch (major, minor)."""
    stem = filename[:-4] if filename.endswith(".txt") else filename
    if stem == "all":
        return True
    m = _NAME.match(stem)
    if m is None or not stem:
        return False
    if m.group("device") is not None and m.group("device") != device:
        return False
    if m.group("major") is not None:
        if version is None:
            return False
        want = (int(m.group("major")), int(m.group("minor")))
        return version < want if m.group("lt") else version == want
    return True


def parse(text: str, file: str, path: str = "") -> list[Entry]:
    entries: list[Entry] = []
    pending: list[str] = []  # the comment block heading the current group of entries
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            pending = []
            continue
        prefix, _, comment = line.partition("#")
        prefix, comment = prefix.strip(), comment.strip()
        if not prefix:
            if entries and entries[-1].line == lineno - 1:
                pending = []  # a comment after entries starts the next group's block
            pending.append(comment)
            continue
        # an entry's own comment wins; else the comment block heading its group (entries up to a blank line)
        reason = comment or " ".join(pending).strip()
        entries.append(Entry(prefix, reason, file, lineno, path or file))
    return entries


def load(device: str, version: tuple[int, int] | None, directory: str = DIR) -> list[Entry]:
    """Every entry of every file in `directory` that applies to this device and version, in file order."""
    if not os.path.isdir(directory):
        return []
    entries: list[Entry] = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".txt") or not applies(name, device, version):
            continue
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8") as f:
            entries += parse(f.read(), os.path.join(os.path.basename(directory), name), path)
    return entries


def mark(items: list[pytest.Item], entries: list[Entry]) -> list[Entry]:
    """Add strict xfail markers to matching items; returns the entries that matched nothing."""
    unmatched = []
    for entry in entries:
        hit = False
        for item in items:
            if _nodeid(item).startswith(entry.prefix):
                reason = f"{entry.file}:{entry.line}: {entry.reason or '(no comment)'}"
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
                hit = True
        if not hit:
            unmatched.append(entry)
    return unmatched


def _nodeid(item: pytest.Item) -> str:
    # Node ids are relative to the rootdir; `conformance run` sets it to the suite folder, but a plain pytest
    # run from elsewhere prefixes the folder: compare from the check module's file name on.
    path, sep, rest = item.nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def apply(config: pytest.Config, items: list[pytest.Item], device: str, version: tuple[int, int] | None,
          directory: str | None = None) -> None:
    """The plugin's entry point: load the files for the run's device and build, mark, warn about leftovers."""
    collected = {_nodeid(item).partition("::")[0] for item in items}
    for entry in mark(items, load(device, version, directory or DIR)):
        module = entry.prefix.partition("::")[0]
        if module not in collected and (config.rootpath / module).is_file():
            continue  # a check module this run did not select (a subset run), not a stale entry
        warnings.warn_explicit(
            ExpectationWarning(f"expectation entry {entry.prefix!r} matches no collected check"),
            category=ExpectationWarning, filename=entry.path, lineno=entry.line,
        )
