"""Build the checks x envs Matrix once from the env results; renderers never recompute anything."""

from __future__ import annotations

import functools
import re
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


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that reads numbers as numbers: cpu5 before cpu47, h100x2 before h100x16."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def order_envs(envs: list[m.EnvResult], expect: list[str]) -> list[m.EnvResult]:
    """Envs named by --expect first, in that order, then the others by name, numbers read as numbers."""
    rank = {name: i for i, name in enumerate(expect)}
    return sorted(envs, key=lambda e: (rank.get(e.claimed or e.name, len(rank)), natural_key(e.name), e.name))


def duplicate_warnings(envs: list[m.EnvResult]) -> list[m.InputWarning]:
    """A check id twice in one env: the matrix combines the runs (a failure wins), merged.xml keeps each one."""
    found = []
    for env in envs:
        if env.duplicates:
            dups = sorted(env.duplicates)
            sample = ", ".join(dups[:3]) + (" ..." if len(dups) > 3 else "")
            found.append(m.InputWarning(env.path, f"{len(dups)} check ids appear more than once ({sample}); every "
                                                  "run is kept: the cell shows the worst outcome and lists the runs",
                                        env=env.name, slug=m.W_DUPLICATE))
    return found


# Which run of a repeated id decides the cell: any problem beats a pass, so a failed rerun is never hidden.
_COMBINE_ORDER = (m.CRASHED, m.FAILED, m.XPASS, m.ERROR, m.NOT_RUN, m.PASSED, m.XFAIL, m.UNAVAILABLE,
                  m.NOT_APPLICABLE, m.SKIPPED)
_COMBINE_RANK = {name: i for i, name in enumerate(_COMBINE_ORDER)}
_RUNS_SPELLED_OUT = 4  # up to this many runs the message lists each ("failed then passed")


def describe_runs(runs: tuple[str, ...]) -> str:
    """'flaky: failed then passed', 'failed then failed' or 'ran 10 times: 3 failed, 7 passed'."""
    if len(runs) <= _RUNS_SPELLED_OUT:
        text = " then ".join(m.LABEL[o] for o in runs)
    else:
        tally = Counter(runs)
        text = f"ran {len(runs)} times: " + ", ".join(f"{tally[o]} {m.LABEL[o]}" for o in m.OUTCOMES if tally[o])
    flaky = m.PASSED in runs and any(o in m.PROBLEMS for o in runs)
    return ("flaky: " if flaky else "") + text


def combine_runs(cells: list[m.Cell]) -> m.Cell:
    """One cell for every run of a repeated check id: the worst outcome, with each run named in the message."""
    chosen = min(cells, key=lambda c: _COMBINE_RANK[c.outcome])
    runs = tuple(c.outcome for c in cells)
    message = describe_runs(runs) + (f"; {chosen.message}" if chosen.message else "")
    time = sum(c.time for c in cells)
    return m.Cell(chosen.classname, chosen.name, chosen.outcome, time, message, chosen.detail, chosen.children,
                  "", runs)


def _table(envs: list[m.EnvResult]) -> dict[str, m.Cells]:
    """check id -> {env index: cell}, in first-seen order; repeated ids of one env combined into one cell."""
    table: dict[str, m.Cells] = {}
    repeats: dict[tuple[str, int], list[m.Cell]] = {}
    for i, env in enumerate(envs):
        for cell in env.cases:
            key = cell.key
            slots = table.get(key)
            if slots is None:
                table[key] = m.Cells({i: cell})
            elif i not in slots:
                slots[i] = cell
            else:
                repeats.setdefault((key, i), [slots[i]]).append(cell)
                env.duplicates.add(key)
    for (key, i), cells in repeats.items():
        table[key][i] = combine_runs(cells)
    return table


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
                                                      "file", env=name, slug=m.W_EXPECTED))
    table = _table(envs)
    warnings += duplicate_warnings(envs)
    rows = _rows(table, len(envs))
    return m.Matrix(_columns(envs, rows), rows, warnings, absent, generated_at, generator)


def _rows(table: dict[str, m.Cells], n: int) -> list[m.Row]:
    """Sparse rows; within an area first-seen (test file) order, which reads better than alphabetical ids."""
    letter = m.LETTER
    unavailable = letter[m.UNAVAILABLE]
    blank = [letter[m.MISSING]] * n
    rows = []
    for order, (key, slots) in enumerate(table.items()):
        codes_list = blank.copy()
        for i, c in slots.items():
            codes_list[i] = letter[c.outcome]
        codes = "".join(codes_list)
        # An absent device says nothing about compatibility: unavailable cells alone never make a row divergent.
        kinds = set(codes)
        kinds.discard(unavailable)
        cell = next(iter(slots.values()))
        rows.append((order, m.Row(key, cell.classname, cell.name, area_of(cell.classname), slots, codes,
                                  len(kinds) > 1)))
    rows.sort(key=lambda pair: (not pair[1].divergent, pair[1].area, pair[0]))
    return [row for _, row in rows]


def _columns(envs: list[m.EnvResult], rows: list[m.Row]) -> list[m.EnvColumn]:
    """Each env's counts over the rows: one per check, repeated ids counted once with their combined outcome."""
    tallies: list[Counter[str]] = [Counter() for _ in envs]
    for row in rows:
        for i, cell in row.cells.items():
            tallies[i][cell.outcome] += 1
    columns = []
    for env, tally in zip(envs, tallies, strict=True):
        tally[m.MISSING] = len(rows) - sum(tally.values())
        columns.append(m.EnvColumn(env, m.Counts(**tally)))
    return columns
