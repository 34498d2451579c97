"""Build the checks x envs Matrix once from the env results; renderers never recompute anything."""

from __future__ import annotations

import functools
from collections import Counter

from conformance.report import model as m


@functools.lru_cache(maxsize=4096)
def area_of(classname: str) -> str:
    """Area of a check from the module part of its classname: `pkg.test_split.TestX` -> `split`."""
    parts = classname.split(".") if classname else []
    for part in reversed(parts):
        if part.startswith("test_") and len(part) > 5:
            return part[5:]
        if part.endswith("_test") and len(part) > 5:
            return part[:-5]
    for part in parts:
        if part and not part[0].isupper():
            return part
    return parts[0] if parts else "(none)"


def order_envs(envs: list[m.EnvResult], expect: list[str]) -> list[m.EnvResult]:
    """Envs named by --expect first, in that order, then the others by name."""
    rank = {name: i for i, name in enumerate(expect)}
    return sorted(envs, key=lambda e: (rank.get(e.claimed or e.name, len(rank)), e.name))


def duplicate_warnings(envs: list[m.EnvResult]) -> list[m.InputWarning]:
    """A check id twice in one env: the matrix shows the first, merged.xml keeps both (renamed)."""
    found = []
    for env in envs:
        if env.duplicates:
            dups = sorted(env.duplicates)
            sample = ", ".join(dups[:3]) + (" ..." if len(dups) > 3 else "")
            found.append(m.InputWarning(env.path, f"{len(dups)} check ids appear more than once ({sample}); the "
                                                  "matrix shows the first result", env=env.name))
    return found


def build_matrix(envs: list[m.EnvResult], warnings: list[m.InputWarning] | None = None,
                 expect: list[str] | None = None, *, generated_at: str = "", generator: str = "") -> m.Matrix:
    """Rows = union of check ids; divergent rows first, then by area.

    A row is divergent when its outcomes differ across envs, not counting `unavailable` (device absent): an env
    without its device would otherwise make every row divergent and hide the real compatibility gaps.
    """
    expect = expect or []
    envs = order_envs(envs, expect)
    warnings = list(warnings or [])
    present = {e.name for e in envs} | {e.claimed for e in envs}
    absent = [name for name in expect if name not in present]
    for name in absent:
        warnings.append(m.InputWarning(f"{name}.xml", f"env '{name}' was expected (--expect) but has no results "
                                                      "file", env=name))
    n = len(envs)
    table: dict[str, list[m.Cell | None]] = {}
    tallies: list[Counter[str]] = [Counter() for _ in envs]
    for i, env in enumerate(envs):
        tally = tallies[i]
        for cell in env.cases:
            key = cell.key
            slots = table.get(key)
            if slots is None:
                slots = table[key] = [None] * n
            if slots[i] is None:
                slots[i] = cell
                tally[cell.outcome] += 1
            else:
                env.duplicates.add(key)
    warnings += duplicate_warnings(envs)
    missing = m.MISSING
    letter = m.LETTER.__getitem__
    rows = []
    for order, (key, slots) in enumerate(table.items()):
        outcomes = tuple([c.outcome if c is not None else missing for c in slots])
        # An absent device says nothing about compatibility: unavailable cells alone never make a row divergent.
        kinds = set(outcomes)
        kinds.discard(m.UNAVAILABLE)
        cell = next(c for c in slots if c is not None)
        times = tuple([c.time if c is not None else None for c in slots])
        texts = ",".join([(c.time_text or f"{c.time:g}") if c is not None else "" for c in slots])
        rows.append((order, m.Row(key, cell.classname, cell.name, area_of(cell.classname), tuple(slots), outcomes,
                                  "".join(map(letter, outcomes)), times, texts, len(kinds) > 1)))
    # Within an area keep first-seen (test file) order, which reads better than alphabetical ids.
    rows.sort(key=lambda pair: (not pair[1].divergent, pair[1].area, pair[0]))
    columns = []
    for env, tally in zip(envs, tallies):
        tally[missing] = len(rows) - sum(tally.values())
        columns.append(m.EnvColumn(env, m.Counts(**tally)))
    return m.Matrix(columns, [row for _, row in rows], warnings, absent, generated_at, generator)
