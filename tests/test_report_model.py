"""Tests of the Counts value: addition, sum(), rates and the description's denominator."""

from __future__ import annotations

import pytest

from conformance.report import model as m


def test_counts_add_and_sum():
    a = m.Counts(passed=3, failed=1, missing=2)
    b = m.Counts(passed=1, unavailable=4)
    assert a + b == m.Counts(passed=4, failed=1, unavailable=4, missing=2)
    assert sum([a, b]) == a + b
    assert sum([]) == 0  # sum of nothing stays the int start value
    with pytest.raises(TypeError):
        a + 1  # noqa: B018


def test_counts_totals_and_rates():
    c = m.Counts(passed=6, failed=1, error=1, xfail=2, unavailable=5, missing=3)
    assert c.total == 15  # missing is not a result of this env
    assert c.problems == 2
    assert c.ran == 10
    assert c.pass_rate == pytest.approx(40.0)
    assert c.run_pass_rate == pytest.approx(60.0)
    assert m.Counts().pass_rate == 0.0


def test_counts_describe_names_the_denominator():
    c = m.Counts(passed=41, failed=2, unavailable=3, not_applicable=2, missing=1)
    assert c.describe() == "41/48 passed, 2 failed, 3 unavailable, 2 not applicable, 1 missing"


def test_every_outcome_has_distinct_letter_and_label():
    assert len(set(m.LETTER.values())) == len(m.OUTCOMES)
    assert set(m.LABEL) == set(m.OUTCOMES)
    assert {f.name for f in m.Counts.__dataclass_fields__.values()} == set(m.OUTCOMES)


@pytest.mark.parametrize(
    ("outcomes", "incomplete", "status"),
    [([m.PASSED, m.FAILED], "", "failed"), ([m.PASSED, m.CRASHED], "truncated", "failed"),
     ([m.PASSED], "truncated", "incomplete"), ([m.UNAVAILABLE, m.UNAVAILABLE], "", "unavailable"),
     ([m.SKIPPED, m.NOT_APPLICABLE], "", "idle"), ([m.PASSED, m.UNAVAILABLE, m.XFAIL], "", "ok")],
)
def test_env_status_is_never_green_when_nothing_ran(outcomes, incomplete, status):
    from conformance.report.matrix import build_matrix

    env = m.EnvResult("e", "e.xml", incomplete=incomplete,
                      cases=[m.Cell("test_x", f"t{i}", o) for i, o in enumerate(outcomes)])
    assert build_matrix([env]).envs[0].status == status


def _imports(path, package):
    """Modules of `package` that a module imports anywhere: top level, in functions, under TYPE_CHECKING."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith(package + ".") and n.count(".") == package.count(".") + 1)
    return found


def test_report_package_has_no_import_cycles():
    from pathlib import Path

    import conformance.report

    package = "conformance.report"
    folder = Path(conformance.report.__file__).parent
    graph = {f"{package}.{p.stem}": _imports(p, package) for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph[node]):
            visit(dep, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])
    assert graph["conformance.report.model"] == set()  # the data model imports no other report module
