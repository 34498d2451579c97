"""Expectation files: known upstream failures per device over a torch release range, applied as strict xfail.

Files live in `conformance/suite/expectations/`, one per device plus one for all of them:

    all.txt         every device
    <device>.txt    that device (cpu.txt, cuda.txt, xpu.txt, hpu.txt, ... an out-of-tree device's name)

Each line is one entry, whitespace-separated:

    <check-id prefix>  [torch>=X.Y]  [torch<X.Y]  # <upstream link>

The prefix is a node id relative to the suite (`test_split.py::test_pipe_numerics[TransformerBlock-bf16]`) and
never contains whitespace. The optional range says which torch releases have the bug: `torch>=2.13` since 2.13,
`torch<2.15` up to and without 2.15, both for a closed range, neither for every release. A bug that is still open
has no upper bound, so a new torch release carries it without editing any file; when upstream fixes it, the check
passes there, which is a strict XPASS (a failure) whose message names the file, line and the range edit to make
("fixed in 2.15: add `torch<2.15` to conformance/suite/expectations/cpu.txt:12").

The comment after `#` is the reason (the upstream link). A block of comment lines heads a group of entries (up to
the next blank line or comment block): an entry without its own comment takes the block's text as its reason.
Every collected check whose node id starts with an entry that applies becomes `xfail(strict=True)`. An applying
entry that matches no collected check is reported as a warning naming the file and line: it is either a typo or
stale (entries for a check module the run did not select at all, e.g. `conformance run -- test_split.py`, are not
reported). A malformed range, or a file named the retired way (`torch-2.13.txt`), stops the run with one line
naming the file, line and fix.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Generator
from dataclasses import dataclass

import pytest

from conformance.errors import UsageError

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expectations")
_SHIPPED_DIR = DIR  # DIR may be pointed elsewhere (tests); messages name only the shipped folder by its repo path
SHIPPED_AS = "conformance/suite/expectations"  # how messages name the shipped folder (its path in the repository)
_RANGE = re.compile(r"^torch(?P<op>>=|<)(?P<major>\d+)\.(?P<minor>\d+)$")
# Files of the retired per-version scheme: their entries now carry ranges in all.txt / <device>.txt.
_RETIRED = re.compile(r"^(?:[a-z0-9_]+-)?torch-(?:lt-)?\d+\.\d+$")

Version = tuple[int, int]


class ExpectationWarning(pytest.PytestWarning):
    """An expectation entry that matched no collected check."""


class ExpectationError(UsageError):
    """An expectation file that cannot be read as entries: the message names file:line and the fix."""


@dataclass(frozen=True)
class Entry:
    prefix: str
    reason: str  # the comment (upstream link), may be empty
    file: str  # path shown to users: conformance/suite/expectations/<name> for the shipped files
    line: int
    path: str = ""  # absolute path, for warnings
    since: Version | None = None  # first release with the bug (torch>=X.Y)
    until: Version | None = None  # first release without it (torch<X.Y)

    def applies(self, version: Version | None) -> bool:
        """Whether this torch (major, minor) is in the entry's range; an unknown version is only in the open one."""
        if version is None:
            return self.since is None and self.until is None
        return (self.since is None or version >= self.since) and (self.until is None or version < self.until)

    @property
    def range(self) -> str:
        """The range as written in the file (`torch>=2.13 torch<2.15`), "" for every release."""
        parts = [f"torch>={_v(self.since)}" if self.since else "", f"torch<{_v(self.until)}" if self.until else ""]
        return " ".join(p for p in parts if p)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def xfail_reason(self) -> str:
        scope = f" [{self.range}]" if self.range else ""
        return f"{self.where}{scope}: {self.reason or '(no comment)'}"

    def edit_when_passing(self, version: Version) -> str:
        """The range edit to make when the check passes on `version` although the entry says it fails there."""
        v = _v(version)
        if self.since == version:
            return (f"passes on {v}, the first release of `torch>={v}`: move the lower bound up to the first "
                    f"release that fails, or remove the entry, at {self.where}")
        if self.until is None:
            return f"fixed in {v}: add `torch<{v}` to {self.where}"
        return f"fixed in {v}: change `torch<{_v(self.until)}` to `torch<{v}` at {self.where}"


def _v(version: Version | None) -> str:
    return "" if version is None else f"{version[0]}.{version[1]}"


def applies(filename: str, device: str) -> bool:
    """Whether an expectation file named `filename` is for this device (all.txt is for every device)."""
    if not filename.endswith(".txt"):
        return False
    stem = filename[:-4]
    return stem in ("all", device)


def _parse_range(tokens: list[str], where: str) -> tuple[Version | None, Version | None]:
    since: Version | None = None
    until: Version | None = None
    for token in tokens:
        m = _RANGE.match(token)
        if m is None:
            raise ExpectationError(
                f"{where}: {token!r} is not a torch range: write `torch>=X.Y` (first release with the bug) and/or "
                "`torch<X.Y` (first release without it), without spaces; the check-id prefix itself has no spaces")
        version = (int(m.group("major")), int(m.group("minor")))
        if m.group("op") == ">=":
            if since is not None:
                raise ExpectationError(f"{where}: two lower bounds (`torch>=`): keep one")
            since = version
        else:
            if until is not None:
                raise ExpectationError(f"{where}: two upper bounds (`torch<`): keep one")
            until = version
    if since is not None and until is not None and until <= since:
        raise ExpectationError(f"{where}: empty range `torch>={_v(since)} torch<{_v(until)}` matches no release: "
                               "the upper bound must be above the lower one")
    return since, until


def parse(text: str, file: str, path: str = "") -> list[Entry]:
    """The entries of one file; `file` is how messages name it. Raises ExpectationError on a malformed line."""
    entries: list[Entry] = []
    pending: list[str] = []  # the comment block heading the current group of entries
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            pending = []
            continue
        body, _, comment = line.partition("#")
        tokens, comment = body.split(), comment.strip()
        if not tokens:
            if entries and entries[-1].line == lineno - 1:
                pending = []  # a comment after entries starts the next group's block
            pending.append(comment)
            continue
        since, until = _parse_range(tokens[1:], f"{file}:{lineno}")
        # an entry's own comment wins; else the comment block heading its group (entries up to a blank line)
        reason = comment or " ".join(pending).strip()
        entries.append(Entry(tokens[0], reason, file, lineno, path or file, since, until))
    return entries


def _shown(directory: str, name: str) -> str:
    if os.path.abspath(directory) == _SHIPPED_DIR:
        return f"{SHIPPED_AS}/{name}"
    return f"{os.path.basename(os.path.normpath(directory))}/{name}"


def load(device: str, version: Version | None, directory: str = DIR) -> list[Entry]:
    """Every entry of `directory`'s files for this device whose range holds `version`, in file order."""
    if not os.path.isdir(directory):
        return []
    entries: list[Entry] = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".txt") and _RETIRED.match(name[:-4]):
            raise ExpectationError(
                f"{_shown(directory, name)}: per-version expectation files are retired: move its entries into "
                "all.txt or <device>.txt with a range (`<prefix>  torch>=X.Y  torch<X.Y  # link`)")
        if not applies(name, device):
            continue
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8") as f:
            entries += [e for e in parse(f.read(), _shown(directory, name), path) if e.applies(version)]
    return entries


_ENTRY = pytest.StashKey["Entry"]()


def mark(items: list[pytest.Item], entries: list[Entry]) -> list[Entry]:
    """Add strict xfail markers to matching items; returns the entries that matched nothing.

    A check matched by several entries is marked by the first (file order), which its XPASS message then names.
    """
    unmatched = []
    for entry in entries:
        hit = False
        for item in items:
            if _nodeid(item).startswith(entry.prefix):
                hit = True
                if _ENTRY in item.stash:
                    continue
                item.stash[_ENTRY] = entry
                item.add_marker(pytest.mark.xfail(strict=True, reason=entry.xfail_reason()))
        if not hit:
            unmatched.append(entry)
    return unmatched


def _nodeid(item: pytest.Item) -> str:
    # Node ids are relative to the rootdir; `conformance run` sets it to the suite folder, but a plain pytest
    # run from elsewhere prefixes the folder: compare from the check module's file name on.
    path, sep, rest = item.nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


class _RangeEdit:
    """Appends the range edit to a strict XPASS: the fix shows where it has to be written down."""

    _XPASS = "[XPASS(strict)]"  # pytest's own prefix (skipping.py), which the report also reads

    def __init__(self, version: Version) -> None:
        self.version = version

    # tryfirst: the outermost wrapper, so pytest's skipping plugin has already turned the pass into an XPASS
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        entry = item.stash.get(_ENTRY, None)
        if (entry is not None and rep.failed and isinstance(rep.longrepr, str)
                and rep.longrepr.startswith(self._XPASS)):
            rep.longrepr = f"{rep.longrepr} -- {entry.edit_when_passing(self.version)}"
        return rep


def apply(config: pytest.Config, items: list[pytest.Item], device: str, version: Version | None,
          directory: str | None = None) -> None:
    """The plugin's entry point: load the files for the run's device and build, mark, warn about leftovers."""
    try:
        entries = load(device, version, directory or DIR)
    except ExpectationError as exc:
        raise pytest.UsageError(str(exc)) from None
    if version is not None and not config.pluginmanager.has_plugin("conformance-expectations"):
        config.pluginmanager.register(_RangeEdit(version), "conformance-expectations")
    collected = {_nodeid(item).partition("::")[0] for item in items}
    for entry in mark(items, entries):
        module = entry.prefix.partition("::")[0]
        if module not in collected and (config.rootpath / module).is_file():
            continue  # a check module this run did not select (a subset run), not a stale entry
        warnings.warn_explicit(
            ExpectationWarning(f"expectation entry {entry.prefix!r} matches no collected check"),
            category=ExpectationWarning, filename=entry.path, lineno=entry.line,
        )
