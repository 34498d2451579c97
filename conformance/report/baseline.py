"""Compare the matrix with a previous run (compatibility.json or merged.xml): regressions, lost coverage, fixes,
new and removed checks, and what changed in the build or hardware an env ran on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.protocol import properties
from conformance.protocol.properties import BuildRecord
from conformance.protocol.stepcost import StepCost, read_costs
from conformance.report import model as m
from conformance.report import stepcost
from conformance.report.jsonfmt import READABLE_FORMATS
from conformance.report.junit_in import parse_bytes
from conformance.report.matrix import combine_runs
from conformance.report.model import BaselineDiff, Change

__all__ = ["COVERED", "LOST", "REGRESSED", "Baseline", "BaselineDiff", "BaselineError", "Change", "diff", "load"]

# passed -> one of these is a regression: the check ran and broke.
REGRESSED = frozenset({m.FAILED, m.ERROR, m.CRASHED})
# A check that ran (passed, or failed as expected) and now does not run at all is lost coverage: the device went
# away, the run died first (not run), the check vanished from the env, or it is skipped. It gates like a regression
# unless allowed (--allow-lost-coverage): a green report must not come from running less.
COVERED = frozenset({m.PASSED, m.XFAIL})
LOST = frozenset({m.UNAVAILABLE, m.NOT_RUN, m.MISSING, m.SKIPPED, m.NOT_APPLICABLE})


# Build fields whose change between the baseline and this run is said beside the diff.
COMPARED = (properties.DEVICE, properties.DEVICE_COUNT, properties.DEVICE_NAMES, properties.TORCH_VERSION)


class BaselineError(UsageError):
    """The --baseline file cannot be used; the message says why (exit 2, one line)."""


Outcomes = dict[str, dict[str, str]]  # env -> check id -> outcome


@dataclass
class Baseline:
    """What a previous report says: outcomes per env and check, each env's build and its step times."""

    path: str
    outcomes: Outcomes
    builds: dict[str, BuildRecord] = field(default_factory=dict)
    step_ms: stepcost.StepTimes = field(default_factory=dict)  # env -> (schedule, world) -> step ms


class _ShapeError(Exception):
    """A value of the baseline JSON does not have the documented type or value."""


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _expect(value: object, kind: type | tuple[type, ...], where: str) -> None:
    """Raise a one-line BaselineError when `value` is not of the documented JSON type."""
    # bool is an int in Python, never a string or list: no special case needed for the types checked here.
    if not isinstance(value, kind):
        names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
        want = " or ".join(names.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _ShapeError(f"{where} must be {want}, got {_kind(value)}")


def _outcome(value: object, where: str) -> str:
    _expect(value, str, where)
    assert isinstance(value, str)
    if value not in m.OUTCOMES:
        raise _ShapeError(f"{where} is {value!r}, not an outcome name")
    return value


def _env_names(data: dict[str, Any]) -> list[str]:
    envs = data.get("envs")
    _expect(envs, list, '"envs"')
    names = []
    for i, env in enumerate(envs):  # type: ignore[arg-type]
        _expect(env, dict, f'"envs"[{i}]')
        _expect(env.get("name"), str, f'"envs"[{i}].name')
        names.append(env["name"])
    return names


def _rows_v1(rows: list[Any], names: list[str], out: Outcomes) -> None:
    """Format 1: every row has "outcomes", a list aligned with "envs" ("missing" where absent)."""
    for r, row in enumerate(rows):
        _expect(row, dict, f'"rows"[{r}]')
        _expect(row.get("id"), str, f'"rows"[{r}].id')
        outcomes = row.get("outcomes")
        _expect(outcomes, list, f'"rows"[{r}].outcomes')
        if len(outcomes) != len(names):
            raise _ShapeError(f'"rows"[{r}].outcomes has {len(outcomes)} entries for {len(names)} envs')
        for name, value in zip(names, outcomes, strict=True):
            outcome = _outcome(value, f'"rows"[{r}].outcomes')
            if outcome != m.MISSING:
                out[name][row["id"]] = outcome


def _rows_v2(rows: list[Any], names: list[str], out: Outcomes) -> None:
    """Format 2: every row has "cells", env name -> {"outcome": ...}, only where the check exists."""
    for r, row in enumerate(rows):
        _expect(row, dict, f'"rows"[{r}]')
        _expect(row.get("id"), str, f'"rows"[{r}].id')
        cells = row.get("cells")
        _expect(cells, dict, f'"rows"[{r}].cells')
        for name, cell in cells.items():
            if name not in out:
                raise _ShapeError(f'"rows"[{r}].cells names env {name!r}, which "envs" does not list')
            _expect(cell, dict, f'"rows"[{r}].cells.{name}')
            out[name][row["id"]] = _outcome(cell.get("outcome"), f'"rows"[{r}].cells.{name}.outcome')


def _builds_and_times(data: dict[str, Any]) -> tuple[dict[str, BuildRecord], stepcost.StepTimes]:
    """Each env's build record and step times from a compatibility.json (its "properties" and "stepcost")."""
    builds: dict[str, BuildRecord] = {}
    times: stepcost.StepTimes = {}
    for env in data.get("envs") or []:
        props = env.get("properties")
        builds[env["name"]] = BuildRecord.from_properties(props if isinstance(props, dict) else {})
        costs = env.get("stepcost")
        costs = ([(str(d.get("check", "")), StepCost.from_dict(d)) for d in costs if isinstance(d, dict)]
                 if isinstance(costs, list) else [])
        times[env["name"]] = stepcost.step_times(costs)
    return builds, times


def _from_json(data: dict[str, Any], path: str) -> Baseline:
    """Outcomes and env properties of a compatibility.json, its shape checked against the documented format first."""
    fmt = data.get("format")
    if fmt not in READABLE_FORMATS or isinstance(fmt, bool):
        raise BaselineError(f"{path}: compatibility.json format {fmt!r}, this version reads formats "
                            f"{', '.join(map(str, READABLE_FORMATS))}")
    try:
        names = _env_names(data)
        out: Outcomes = {name: {} for name in names}
        rows = data.get("rows")
        _expect(rows, list, '"rows"')
        (_rows_v1 if fmt == 1 else _rows_v2)(rows, names, out)  # type: ignore[arg-type]
    except _ShapeError as exc:
        raise BaselineError(f"{path}: not a format {fmt} compatibility.json: {exc}") from None
    return Baseline(path, out, *_builds_and_times(data))


def load(path: str) -> Baseline:
    """Outcomes and env properties of a previous compatibility.json or merged.xml (or a single env file): the one
    reader of the baseline file (outcomes, builds and step costs all come from here)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    head = raw.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BaselineError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BaselineError(f"{path}: not a compatibility.json (top level is {_kind(data)}, not an object)")
        return _from_json(data, path)
    stem = file.name.removesuffix(".xml")
    parsed = parse_bytes(raw, path, stem)
    if not parsed.envs:
        reason = "; ".join(w.problem for w in parsed.warnings) or "no results"
        raise BaselineError(f"{path}: not usable as a baseline ({reason})")
    return Baseline(path, {env.name: _combined(env) for env in parsed.envs},
                    {env.name: BuildRecord.from_properties(env.properties) for env in parsed.envs},
                    {env.name: stepcost.step_times(read_costs(env.properties)) for env in parsed.envs})


def _combined(env: m.EnvResult) -> dict[str, str]:
    """check id -> outcome, repeated ids combined as the matrix does (a failed rerun is never dropped)."""
    groups: dict[str, list[m.Cell]] = {}
    for cell in env.cases:
        groups.setdefault(cell.key, []).append(cell)
    return {key: (cells[0].outcome if len(cells) == 1 else combine_runs(cells).outcome)
            for key, cells in groups.items()}


def build_changes(env: str, before: BuildRecord, after: BuildRecord) -> list[m.BuildChange]:
    """What differs in the hardware or torch an env ran on: results (and step times) then compare two machines.
    Nothing when the baseline recorded no build for the env (a format 1 JSON, a foreign JUnit file)."""
    if not (before.device or before.torch_version):
        return []
    out = []
    for name in COMPARED:
        was, now = getattr(before, name), getattr(after, name)
        if was != now and (was or now):
            out.append(m.BuildChange(env, name, str(was), str(now)))
    return out


def diff(matrix: m.Matrix, before: Baseline | Outcomes, path: str = "") -> BaselineDiff:
    """Per env of this run: regressions, lost coverage, fixes and new checks against `before`; checks gone from the
    run; build changes; step-time regressions."""
    base = before if isinstance(before, Baseline) else Baseline(path, before)
    old_outcomes = base.outcomes
    out = BaselineDiff(path or base.path)
    names = [c.name for c in matrix.envs]
    now_ids = {row.key for row in matrix.rows}
    out.new_envs = [n for n in names if n not in old_outcomes]
    out.removed_envs = sorted(n for n in old_outcomes if n not in names)
    for i, col in enumerate(matrix.envs):
        name = col.name
        old = old_outcomes.get(name)
        if old is None:
            continue
        if name in base.builds:
            out.builds += build_changes(name, base.builds[name], col.build)
        for row in matrix.rows:
            after = row.outcome(i)
            was = old.get(row.key)
            if was is None:
                if after != m.MISSING:
                    out.new.append(Change(name, row.key, m.MISSING, after))
            elif was == m.PASSED and after in REGRESSED:
                out.regressions.append(Change(name, row.key, was, after))
            elif was in COVERED and after in LOST:
                out.lost.append(Change(name, row.key, was, after))
            elif was in m.PROBLEMS and after == m.PASSED:
                out.fixes.append(Change(name, row.key, was, after))
        for key, was in old.items():
            if key not in now_ids:
                out.removed.append(Change(name, key, was, m.MISSING))
    out.step_time = stepcost.regressions(matrix, base.step_ms)
    out.step_before = base.step_ms
    return out
