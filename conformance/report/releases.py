"""The release delta and the device-vs-version axes of the report, as data: which columns differ only in torch
release, what changed between those releases per check, and which comparisons hold one axis fixed.

Renderers only format what `attach` computed (`ReleaseReport`); bad version columns become input warnings with
their own slugs, and a check whose outcome cannot be placed on one release (it is flaky there) never gets a
"first changed in".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from conformance.protocol import properties as P
from conformance.report import model as m
from conformance.repro.commandline import repro_command

# "cpu-torch2.14", "cuda_torch2.15.0", "h100x2/cpu-torch2.11": the device part, then the release the name claims.
_NAME = re.compile(r"^(?P<device>.*?)(?:^|[-_])torch[-_]?(?P<release>[^-_/]+)$", re.IGNORECASE)
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[.+-].*)?$")
# Outcomes read as "broken" when deciding newly failing / fixed: not_run is a run that died before the check.
FAILING = frozenset({m.FAILED, m.ERROR, m.CRASHED, m.NOT_RUN})
# What "fixed" must have been before: broken on the device (a run that died before the check is no bug fixed).
BROKEN = frozenset({m.FAILED, m.ERROR, m.CRASHED, m.XFAIL})
FLAKY = "flaky"  # the state of a release whose runs of a check disagree
_UNKNOWN = frozenset({m.UNAVAILABLE})  # says nothing about the release (device absent)

# Delta statuses, in the order the report shows them (the tracking-issue order: what broke first).
NEWLY_FAILING = "newly_failing"
FIXED = "fixed"
STILL_PRESENT = "still_present"
FLAKY_STATUS = "flaky"
NEW = "new"
REMOVED = "removed"
OTHER = "other"
STATUSES: tuple[str, ...] = (NEWLY_FAILING, FIXED, STILL_PRESENT, FLAKY_STATUS, NEW, REMOVED, OTHER)
STATUS_LABEL: dict[str, str] = {
    NEWLY_FAILING: "newly failing", FIXED: "fixed upstream", STILL_PRESENT: "known and still present (xfail)",
    FLAKY_STATUS: "flaky (outcome differs between runs of one release)", NEW: "new checks",
    REMOVED: "removed checks", OTHER: "other changes",
}
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Failure|Timeout|Interrupt|Exit))\b")
_FLAKY_PREFIX = re.compile(r"^(?:flaky: )?(?:(?:[a-z ()]+)(?: then [a-z ()]+)+|ran \d+ times: [^;]*); ")
FIRST_LINE_CHARS = 200
# Numbers that differ between runs of one error (ports, addresses, pids, sizes) do not split its group.
_GROUP_KEY = re.compile(r"0x[0-9a-fA-F]+|\d+")


def parse_release(text: str) -> tuple[int, int] | None:
    """(major, minor) of "2.14", "2.14.1+cu130" or "v2.15.0"; None when the text is no release."""
    match = _RELEASE.match(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def release_text(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]}"


@dataclass(frozen=True)
class EnvAxes:
    """Where one column sits on the two axes: device (and its count) and torch release (and build variant)."""

    index: int
    name: str
    device: str
    count: str
    release: tuple[int, int] | None
    version: str  # torch_version as recorded ("2.14.1+cu130"), "" when absent
    source: str  # build variant: host (the machine's torch) or pinned (installed by the project); "" when unknown
    ran: bool  # something executed on the device (an env that ran nothing says nothing about either axis)
    hardware: str = ""  # device names ("NVIDIA H100 80GB HBM3"): H100 and H200 columns are not one axis

    @property
    def release_label(self) -> str:
        return release_text(self.release) if self.release else "?"


@dataclass
class ReleaseColumn:
    """One release of a version axis: the env columns that ran it (two or more are read as reruns)."""

    release: tuple[int, int]
    envs: list[EnvAxes]

    @property
    def label(self) -> str:
        return release_text(self.release)

    @property
    def versions(self) -> str:
        return ", ".join(sorted({e.version for e in self.envs if e.version}))

    @property
    def sources(self) -> str:
        return ", ".join(sorted({e.source for e in self.envs if e.source}))


@dataclass
class DeltaCheck:
    """One check whose outcome differs across the releases of an axis."""

    id: str
    area: str
    status: str  # one of STATUSES
    states: list[str | None]  # per release: an outcome, FLAKY, or None (unknown there: device absent)
    runs: list[tuple[str, ...]]  # per release: every outcome seen (all columns, all reruns)
    first_changed: str | None  # release of the first change; None when a flaky release makes it unknowable
    uncertain: str  # why first_changed is None ("flaky at 2.14"), else ""
    failure_type: str
    first_line: str
    repro: str  # the repro command of a newly failing check repro covers, else ""


@dataclass
class ReleaseAxis:
    """Envs of one device that differ in torch release, oldest first, and the checks that changed."""

    device: str
    count: str
    columns: list[ReleaseColumn]
    checks: list[DeltaCheck] = field(default_factory=list)
    sources_differ: bool = False  # host and pinned builds on one axis: said beside the delta
    hardware: str = ""  # the device names all columns share
    named: bool = False  # another axis has the same device and count: the title names the hardware

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]

    @property
    def title(self) -> str:
        count = f" x{self.count}" if self.count not in ("", "0", "1") else ""
        named = f" ({self.hardware})" if self.named and self.hardware else ""
        return f"{self.device}{count}{named}: torch {' -> '.join(self.labels)}"

    def by_status(self) -> dict[str, list[DeltaCheck]]:
        out: dict[str, list[DeltaCheck]] = {s: [] for s in STATUSES}
        for check in self.checks:
            out[check.status].append(check)
        return out

    def groups(self, status: str) -> list[tuple[str, str, list[DeltaCheck]]]:
        """(failure type, first error line, checks) of one status, biggest group first."""
        found: dict[tuple[str, str], list[DeltaCheck]] = {}
        for check in self.checks:
            if check.status == status:
                found.setdefault((check.failure_type, _GROUP_KEY.sub("N", check.first_line)), []).append(check)
        # Shown with the first check's own line: the normalised key only decides who shares a group.
        return sorted(((t, cs[0].first_line, cs) for (t, _key), cs in found.items()),
                      key=lambda g: (-len(g[2]), g[0], g[1]))

    def counts(self) -> dict[str, int]:
        return {s: len(cs) for s, cs in self.by_status().items()}


@dataclass
class AxisView:
    """A set of columns that holds one axis fixed: same torch on several devices, or one device on several torch."""

    kind: str  # "same_release" or "same_device"
    key: str  # the fixed value ("2.13" or "cpu")
    envs: list[str]


@dataclass
class Mixed:
    """The matrix's columns differ in torch release (or build variant) as well as in device: what that means for
    the divergent rows, and the comparisons that hold one axis fixed."""

    releases: list[str]
    devices: list[str]
    sources: list[str]
    views: list[AxisView]
    by_device: int  # divergent rows that differ between devices on one torch release
    by_release: int  # divergent rows that differ between releases on one device
    undecided: int  # divergent only across columns that differ in both (no fixed-axis pair shows it)

    def text(self) -> str:
        """One sentence for the divergence view."""
        parts = []
        if len(self.releases) > 1:
            parts.append(f"torch release ({', '.join(self.releases)})")
        if len(self.sources) > 1:
            parts.append(f"build variant ({', '.join(self.sources)})")
        return (f"These columns differ in {' and '.join(parts)} as well as in device ({', '.join(self.devices)}): a "
                "divergent row may be a version difference, not a device one. Of the divergent rows, "
                f"{self.by_device} differ between devices on one torch release, {self.by_release} between releases "
                f"on one device, and {self.undecided} only across columns that differ in both.")


@dataclass
class ReleaseReport:
    """Everything the renderers show about releases: the version axes with their delta, and the mixed-axes note."""

    axes: list[ReleaseAxis] = field(default_factory=list)
    mixed: Mixed | None = None
    warnings: list[m.InputWarning] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return to_data(self)


def axes_of(matrix: m.Matrix) -> tuple[list[EnvAxes], list[m.InputWarning]]:
    """Each column's device, count, release and build variant, and the warnings about names that disagree."""
    found = []
    warnings = []
    for i, col in enumerate(matrix.envs):
        build = col.build
        base = col.name.rsplit("/", 1)[-1]
        match = _NAME.match(base)
        named_device = match.group("device") if match and match.group("device") else ""
        named_text = match.group("release") if match else ""
        named = parse_release(named_text) if match else None
        version = build.torch_version
        recorded = parse_release(version) if version else None
        device = build.device or named_device or base
        release = recorded or named
        where = col.result.path
        if match and named is None:
            fate = (f"its release is taken from torch_version {version}" if recorded
                    else "left out of the release delta")
            warnings.append(m.InputWarning(where, f"env '{col.name}' is named as a torch version column but "
                                                  f"'{named_text}' is no release (expected <device>-torchX.Y, e.g. "
                                                  f"cpu-torch2.15); {fate}", env=col.name, slug=m.W_RELEASE_NAME))
        elif named and recorded and named != recorded:
            warnings.append(m.InputWarning(where, f"env '{col.name}' is named for torch {release_text(named)} but "
                                                  f"ran torch {version} (torch_version); the recorded version is "
                                                  "used", env=col.name, slug=m.W_RELEASE_NAME))
        if named_device and build.device and named_device.lower() != build.device.lower():
            warnings.append(m.InputWarning(where, f"env '{col.name}' is named as a {named_device} release column but "
                                                  f"ran on {build.device}; it is compared as {build.device}, never "
                                                  f"against the {named_device} releases", env=col.name,
                                           slug=m.W_RELEASE_DEVICE))
        count = str(build.device_count) if build.device_count else ""
        found.append(EnvAxes(i, col.name, device, count, release, version, build.torch_source, col.counts.ran > 0,
                             build.device_names))
    return found, warnings


def _version_axes(envs: list[EnvAxes], warnings: list[m.InputWarning], matrix: m.Matrix) -> list[ReleaseAxis]:
    """Envs grouped by (device, device count, device names); a group with two or more releases is a version axis."""
    groups: dict[tuple[str, str, str], list[EnvAxes]] = {}
    for env in envs:
        if env.release is not None and env.ran:
            groups.setdefault((env.device, env.count, env.hardware), []).append(env)
    axes = []
    for (device, count, hardware), members in groups.items():
        by_release: dict[tuple[int, int], list[EnvAxes]] = {}
        for env in members:
            by_release.setdefault(env.release, []).append(env)  # type: ignore[arg-type]
        if len(by_release) < 2:
            continue  # one release only: a device comparison, not a version axis
        columns = [ReleaseColumn(r, by_release[r]) for r in sorted(by_release)]
        for column in columns:
            if len(column.envs) > 1:
                names = ", ".join(e.name for e in column.envs)
                warnings.append(m.InputWarning(
                    matrix.envs[column.envs[1].index].result.path,
                    f"envs {names} are all torch {column.label} on {device}; read as reruns of one release (a check "
                    "whose outcomes differ between them is flaky there, never 'changed')", env=column.envs[1].name,
                    slug=m.W_RELEASE_TWICE))
        axis = ReleaseAxis(device, count, columns, sources_differ=len({e.source for e in members if e.source}) > 1,
                           hardware=hardware)
        axis.checks = _delta(matrix, axis)
        axes.append(axis)
    axes.sort(key=lambda a: (a.device, a.count, a.hardware))
    shared = [(a.device, a.count) for a in axes]
    for axis in axes:
        axis.named = shared.count((axis.device, axis.count)) > 1  # two models of one device: say which
    return axes


def _state(row: m.Row, column: ReleaseColumn) -> tuple[str | None, tuple[str, ...]]:
    """The outcome of a check on one release (FLAKY when its runs disagree; None when the device was absent)."""
    seen: list[str] = []
    for env in column.envs:
        cell = row.cell(env.index)
        if cell is not None:
            seen.extend(cell.runs or (cell.outcome,))
    known = {o for o in seen if o not in _UNKNOWN}
    if not seen:
        return m.MISSING, (m.MISSING,)
    if not known:
        return None, tuple(seen)
    if len(known) > 1:
        return FLAKY, tuple(seen)
    return next(iter(known)), tuple(seen)


def _first_change(labels: list[str], states: list[str | None]) -> tuple[str | None, str]:
    """(release of the first change, "") or (None, why): a flaky release before or at the change hides where."""
    prev: str | None = None
    prev_label = ""
    for label, state in zip(labels, states, strict=True):
        if state is None:
            continue
        if prev is None:
            prev, prev_label = state, label
            if state == FLAKY:
                return None, f"flaky at {label}"
            continue
        if state == FLAKY:
            return None, f"flaky at {label}: changed after {prev_label}, in which release cannot be told"
        if state != prev:
            return label, ""
    return None, ""


def _existing(states: list[str | None], status: str) -> list[str | None]:
    """The states from the first release whose run has the check: an older suite that lacked it changed nothing
    there, so a check fixed or broken later is dated by that change, not by its appearance (a new one keeps it)."""
    if status == NEW:
        return states
    out: list[str | None] = []
    leading = True
    for state in states:
        leading = leading and state in (None, m.MISSING)
        out.append(None if leading else state)
    return out


def _status(states: list[str]) -> str:
    """The delta status from the known states, oldest first (at least two, not all equal)."""
    last, earlier = states[-1], states[:-1]
    if last == FLAKY:
        return FLAKY_STATUS
    if last in FAILING and any(s not in FAILING for s in earlier if s != FLAKY):
        return NEWLY_FAILING
    if last in (m.PASSED, m.XPASS) and any(s in BROKEN for s in earlier):
        return FIXED
    if last == m.XFAIL:
        return STILL_PRESENT
    if last == m.MISSING:
        return REMOVED
    if states[0] == m.MISSING:
        return NEW
    if FLAKY in earlier:
        return FLAKY_STATUS
    return OTHER


def failure_type(cell: m.Cell | None) -> str:
    """The error's type: the result element's own `type` when it names one, else the exception in its text."""
    if cell is None:
        return ""
    for tag, type_, _message, _text in cell.children:
        if tag in ("failure", "error") and type_ and _EXCEPTION.fullmatch(type_.rsplit(".", 1)[-1]):
            return type_
    for text in (cell.message, cell.detail.strip().rsplit("\n", 1)[-1] if cell.detail else ""):
        match = _EXCEPTION.search(text)
        if match:
            return match.group(1)
    return m.LABEL[cell.outcome]


def first_line(cell: m.Cell | None) -> str:
    """The message's first line, without the rerun summary the matrix puts in front, on one line and capped."""
    if cell is None:
        return ""
    text = _FLAKY_PREFIX.sub("", cell.message.strip(), count=1) or cell.detail.strip()
    text = " ".join(text.split("\n", 1)[0].split())
    return text if len(text) <= FIRST_LINE_CHARS else text[:FIRST_LINE_CHARS - 1] + "…"


def _witness(row: m.Row, axis: ReleaseAxis, states: list[str | None], status: str) -> m.Cell | None:
    """The cell whose message explains the change: the failing one of the release that decides the status."""
    order = list(range(len(axis.columns)))
    if status == FIXED:  # what was fixed: the last release where it still failed
        order = [i for i in reversed(order) if states[i] in BROKEN]
    else:
        order.reverse()
    for i in order:
        cells = [row.cell(e.index) for e in axis.columns[i].envs]
        present = [c for c in cells if c is not None]
        bad = [c for c in present if c.outcome in m.PROBLEMS or c.outcome == m.XFAIL]
        if bad or present:
            return (bad or present)[0]
    return None


def _delta(matrix: m.Matrix, axis: ReleaseAxis) -> list[DeltaCheck]:
    labels = axis.labels
    out = []
    for row in matrix.rows:
        pairs = [_state(row, column) for column in axis.columns]
        states = [s for s, _ in pairs]
        known = [s for s in states if s is not None]
        if len(known) < 2 or (len(set(known)) == 1 and FLAKY not in known):
            continue  # the same everywhere it ran: not a release change
        if all(s == m.MISSING for s in known):
            continue
        status = _status(known)
        first, why = _first_change(labels, _existing(states, status))
        cell = _witness(row, axis, states, status)
        # the repro command (quoted) for a newly failing check `conformance repro` covers; none for the others
        repro = (repro_command(row.key, axis.device) or "") if status == NEWLY_FAILING else ""
        out.append(DeltaCheck(row.key, row.area, status, states, [runs for _, runs in pairs], first, why,
                              failure_type(cell), first_line(cell), repro))
    rank = {s: i for i, s in enumerate(STATUSES)}
    out.sort(key=lambda c: (rank[c.status], c.failure_type, c.first_line, c.id))
    return out


def _diverges(row: m.Row, members: Iterable[int]) -> bool:
    kinds = {row.outcome(i) for i in members}
    kinds.discard(m.UNAVAILABLE)
    return len(kinds) > 1


def _mixed(matrix: m.Matrix, envs: list[EnvAxes]) -> Mixed | None:
    """The note for the divergence view when the columns that ran differ in device and in release or variant."""
    ran = [e for e in envs if e.ran]
    devices = sorted({e.device for e in ran})
    releases = sorted({e.release for e in ran if e.release})
    sources = sorted({e.source for e in ran if e.source})
    if len(devices) < 2 or (len(releases) < 2 and len(sources) < 2):
        return None
    views = []
    same_release: dict[str, list[EnvAxes]] = {}
    same_device: dict[str, list[EnvAxes]] = {}
    for e in ran:
        if e.release:
            same_release.setdefault(e.release_label, []).append(e)
            same_device.setdefault(e.device, []).append(e)
    for key in sorted(same_release, key=lambda k: parse_release(k) or (0, 0)):
        group = same_release[key]
        if len({e.device for e in group}) > 1:
            views.append(AxisView("same_release", key, [e.name for e in group]))
    for key in sorted(same_device):
        group = same_device[key]
        if len({e.release for e in group}) > 1:
            ordered = sorted(group, key=lambda e: e.release or (0, 0))
            views.append(AxisView("same_device", key, [e.name for e in ordered]))
    index = {e.name: e.index for e in ran}
    by_device = by_release = undecided = 0
    for row in matrix.rows:
        if not _diverges(row, (e.index for e in ran)):
            continue
        dev = any(_diverges(row, [index[n] for n in v.envs]) for v in views if v.kind == "same_release")
        rel = any(_diverges(row, [index[n] for n in v.envs]) for v in views if v.kind == "same_device")
        by_device += dev
        by_release += rel
        undecided += not (dev or rel)
    return Mixed([release_text(r) for r in releases], devices, sources, views, by_device, by_release, undecided)


def build(matrix: m.Matrix) -> ReleaseReport:
    """The release report of a matrix (pure: the warnings are returned, not added)."""
    envs, warnings = axes_of(matrix)
    axes = _version_axes(envs, warnings, matrix)
    return ReleaseReport(axes, _mixed(matrix, envs), warnings)


def attach(matrix: m.Matrix) -> ReleaseReport:
    """Compute the release report once, keep it on the matrix and add its warnings to the matrix's."""
    report = build(matrix)
    matrix.releases = report
    matrix.warnings.extend(report.warnings)
    return report


def of(matrix: m.Matrix) -> ReleaseReport:
    """The report `attach` kept, or one computed now (a matrix built without the engine, as in tests)."""
    report = matrix.releases
    if report is None:
        report = build(matrix)
        matrix.releases = report
    assert isinstance(report, ReleaseReport)
    return report


def summary_lines(report: ReleaseReport, limit: int = 5) -> list[str]:
    """Plain lines for the console: per version axis its counts and the first newly failing checks, then the
    device-vs-version note."""
    lines = []
    for axis in report.axes:
        counts = ", ".join(f"{n} {STATUS_LABEL[s].split(' (')[0]}" for s, n in axis.counts().items() if n)
        lines.append(f"release delta {axis.title}: {counts or 'no change'}")
        failing = [c for c in axis.checks if c.status == NEWLY_FAILING]
        for check in failing[:limit]:
            lines.append(f"  newly failing since {check.first_changed or '? (' + check.uncertain + ')'}: {check.id}: "
                         f"{check.first_line}")
        if len(failing) > limit:
            lines.append(f"  ... {len(failing) - limit} more newly failing (see the reports)")
    if report.mixed is not None:
        lines.append(f"device vs version: {report.mixed.text()}")
    return lines


def view_hash(envs: list[str]) -> str:
    """The compatibility.html address that shows these envs, divergent rows only."""
    return "#div=1&envs=" + ",".join(quote(e, safe="") for e in envs)


def to_data(report: ReleaseReport) -> dict[str, Any]:
    """The JSON "releases" object (jsonfmt FORMAT 3)."""
    axes = []
    for axis in report.axes:
        labels = axis.labels
        axes.append({
            P.DEVICE: axis.device, P.DEVICE_COUNT: axis.count, P.DEVICE_NAMES: axis.hardware,
            "releases": [{"release": c.label, "torch": c.versions, "source": c.sources,
                          "envs": [e.name for e in c.envs]} for c in axis.columns],
            "sources_differ": axis.sources_differ,
            "counts": axis.counts(),
            "checks": [{"id": c.id, "area": c.area, "status": c.status, "first_changed": c.first_changed,
                        **({"uncertain": c.uncertain} if c.uncertain else {}),
                        "outcomes": dict(zip(labels, c.states, strict=True)),
                        **({"runs": {label: list(runs) for label, runs, state in zip(labels, c.runs, c.states,
                                                                                       strict=True)
                                     if state == FLAKY}} if FLAKY in c.states else {}),
                        "type": c.failure_type, "first_line": c.first_line,
                        **({"repro": c.repro} if c.repro else {})} for c in axis.checks],
        })
    mixed = report.mixed
    return {
        "axes": axes,
        "mixed": None if mixed is None else {
            "releases": mixed.releases, "devices": mixed.devices, "sources": mixed.sources,
            "divergent_by_device": mixed.by_device, "divergent_by_release": mixed.by_release,
            "divergent_undecided": mixed.undecided,
            "views": [{"kind": v.kind, "fixed": v.key, "envs": v.envs} for v in mixed.views]},
    }
