"""Compare the matrix with a previous run (compatibility.json or merged.xml): regressions, fixes, new, removed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.report import model as m
from conformance.report.jsonfmt import FORMAT
from conformance.report.junit_in import parse_bytes

# passed -> one of these is a regression; not_run counts too: the run died before reaching a check that passed.
REGRESSED = frozenset({m.FAILED, m.ERROR, m.CRASHED, m.MISSING, m.NOT_RUN})


class BaselineError(Exception):
    """The --baseline file cannot be used; the message says why."""


@dataclass(frozen=True)
class Change:
    env: str
    id: str
    before: str
    after: str


@dataclass
class BaselineDiff:
    """Per-env changes between the baseline and this run."""

    path: str
    regressions: list[Change] = field(default_factory=list)  # passed -> failed/error/crashed/missing/not_run
    fixes: list[Change] = field(default_factory=list)  # failed/error/crashed/xpass -> passed
    new: list[Change] = field(default_factory=list)  # check absent from the baseline of that env
    removed: list[Change] = field(default_factory=list)  # check gone from every env of this run
    new_envs: list[str] = field(default_factory=list)
    removed_envs: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        def rows(changes: list[Change]) -> list[dict[str, str]]:
            return [{"env": c.env, "id": c.id, "before": c.before, "after": c.after} for c in changes]

        return {"path": self.path, "regressions": rows(self.regressions), "fixes": rows(self.fixes),
                "new": rows(self.new), "removed": rows(self.removed), "new_envs": self.new_envs,
                "removed_envs": self.removed_envs}

    def summary(self) -> str:
        return (f"{len(self.regressions)} regressions, {len(self.fixes)} fixes, {len(self.new)} new, "
                f"{len(self.removed)} removed")


def _from_json(data: dict[str, Any], path: str) -> dict[str, dict[str, str]]:
    fmt = data.get("format")
    if fmt != FORMAT:
        raise BaselineError(f"{path}: compatibility.json format {fmt!r}, this version reads format {FORMAT}")
    try:
        names = [e["name"] for e in data["envs"]]
        out: dict[str, dict[str, str]] = {name: {} for name in names}
        for row in data["rows"]:
            for name, outcome in zip(names, row["outcomes"]):
                if outcome != m.MISSING:
                    out[name][row["id"]] = outcome
    except (KeyError, TypeError) as exc:
        raise BaselineError(f"{path}: not a compatibility.json (missing {exc})") from None
    return out


def load(path: str) -> dict[str, dict[str, str]]:
    """env -> check id -> outcome of a previous compatibility.json or merged.xml (or a single env file)."""
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
            raise BaselineError(f"{path}: not a compatibility.json")
        return _from_json(data, path)
    stem = file.name[:-4] if file.name.endswith(".xml") else file.name
    parsed = parse_bytes(raw, path, stem)
    if not parsed.envs:
        reason = "; ".join(w.problem for w in parsed.warnings) or "no results"
        raise BaselineError(f"{path}: not usable as a baseline ({reason})")
    return {env.name: {c.key: c.outcome for c in reversed(env.cases)} for env in parsed.envs}


def diff(matrix: m.Matrix, before: dict[str, dict[str, str]], path: str) -> BaselineDiff:
    out = BaselineDiff(path)
    names = [c.name for c in matrix.envs]
    now_ids = {row.key for row in matrix.rows}
    out.new_envs = [n for n in names if n not in before]
    out.removed_envs = sorted(n for n in before if n not in names)
    for i, name in enumerate(names):
        old = before.get(name)
        if old is None:
            continue
        for row in matrix.rows:
            after = row.outcome(i)
            was = old.get(row.key)
            if was is None:
                if after != m.MISSING:
                    out.new.append(Change(name, row.key, m.MISSING, after))
            elif was == m.PASSED and after in REGRESSED:
                out.regressions.append(Change(name, row.key, was, after))
            elif was in m.PROBLEMS and after == m.PASSED:
                out.fixes.append(Change(name, row.key, was, after))
        for key, was in old.items():
            if key not in now_ids:
                out.removed.append(Change(name, key, was, m.MISSING))
    return out
