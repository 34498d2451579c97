"""Tests of compatibility.md: gold file, divergences first, escaping and the 65,535-byte cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.report import markdown
from conformance.report import model as m
from conformance.report.matrix import build_matrix
from report_gold import check_gold, fixture_matrix, scrub


def test_markdown_gold(monkeypatch):
    matrix = fixture_matrix(monkeypatch)
    check_gold("compatibility.md", scrub(markdown.render_markdown(matrix), matrix))


def test_divergent_rows_come_before_consistent_summary(monkeypatch):
    text = markdown.render_markdown(fixture_matrix(monkeypatch))
    assert text.index("### Divergent checks") < text.index("### Consistent checks")
    assert text.index("### Input warnings") < text.index("### Divergent checks")
    assert "| **rocm** | ❔ no results file |" in text


def big_matrix(rows: int, envs: int = 12) -> m.Matrix:
    results = []
    for e in range(envs):
        env = m.EnvResult(f"env{e:02d}", f"env{e:02d}.xml")
        for r in range(rows):
            outcome = m.FAILED if (r + e) % 3 == 0 else m.PASSED
            env.cases.append(m.Cell(f"test_area{r % 7}", f"test_check_{r}[param-{r}]", outcome))
        results.append(env)
    return build_matrix(results)


def test_size_cap_truncates_with_a_note():
    text = markdown.render_markdown(big_matrix(3000))
    size = len(text.encode("utf-8"))
    assert 60_000 < size <= markdown.LIMIT
    shown = sum(1 for line in text.splitlines() if line.startswith("| check |"))
    rows = sum(1 for line in text.splitlines() if line.startswith("| ") and "`" in line)
    assert shown == 1
    assert 0 < rows < 3000
    assert (f"**Truncated** to stay under GitHub's 65,535-byte limit: {3000 - rows} of 3000 divergent rows not "
            "shown") in text
    assert text.rstrip().endswith("</sub>")


def test_small_report_is_not_truncated():
    text = markdown.render_markdown(big_matrix(20, envs=3))
    assert "Truncated" not in text
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and "`" in line) == 20


@pytest.mark.parametrize("limit", [2_000, 10_000])
def test_custom_limit_is_respected(limit):
    assert len(markdown.render_markdown(big_matrix(300), limit=limit).encode("utf-8")) <= limit


def test_pipes_and_backticks_are_escaped():
    env = m.EnvResult("a|b", "x.xml", cases=[m.Cell("test_x", "t[a|b`c]", m.FAILED)])
    other = m.EnvResult("c", "y.xml", cases=[m.Cell("test_x", "t[a|b`c]", m.PASSED)])
    text = markdown.render_markdown(build_matrix([env, other]))
    assert "| x: `` t[a\\|b`c] `` | ❌ | ✅ |" in text
    assert "**a\\|b**" in text


def env(name: str, outcomes: dict[str, str]) -> m.EnvResult:
    return m.EnvResult(name, f"{name}.xml", cases=[m.Cell(f"test_{k.split('::')[0]}", k.split("::")[1], o)
                                                   for k, o in outcomes.items()])


# a and b agree (b's passed where a had no device aside); c differs from both on two checks.
AGREE = {"split::a": m.PASSED, "split::b": m.PASSED, "stage::c": m.FAILED, "backward::e": m.UNAVAILABLE}
VIEW_ENVS = [env("a", AGREE), env("b", {**AGREE, "backward::e": m.PASSED}),
             env("c", {**AGREE, "split::b": m.FAILED, "stage::c": m.PASSED})]


def test_envs_that_agree_have_no_divergent_check():
    matrix = build_matrix(VIEW_ENVS)
    assert matrix.divergent == 2
    text = markdown.render_markdown(matrix, envs=["a", "b"])
    assert "**4 checks x 2 of 3 envs: 0 divergent, problems in a, b in this view; problems outside it in c**" in text
    assert "### Divergent checks" not in text
    assert "| split | 2 | 2 ✅ passed |" in text
    assert "| backward | 1 | 1 ✅ passed |" in text
    assert "| **c** |" not in text
    assert "View: a, b; divergence is among these envs only" in text


def test_envs_view_names_a_failing_env_outside_it():
    # The run exits 1 for c's failure: a view of a and b must not read "no failures" without naming c.
    envs = [env("a", {"split::a": m.PASSED}), env("b", {"split::a": m.PASSED}), env("c", {"split::a": m.FAILED})]
    text = markdown.render_markdown(build_matrix(envs), envs=["a", "b"])
    assert "**1 checks x 2 of 3 envs: 0 divergent, no failures in this view; problems outside it in c**" in text


def test_envs_view_lists_the_checks_that_differ_among_them():
    text = markdown.render_markdown(build_matrix(VIEW_ENVS), envs=["c", "a"])  # matrix order, not argument order
    assert "Columns: **A** a · **B** c" in text
    assert "| check | A | B |" in text
    assert "| split: `b` | ✅ | ❌ |" in text
    assert "| stage: `c` | ❌ | ✅ |" in text
    assert "### Divergent checks (2;" in text


def test_all_envs_named_is_the_full_report():
    matrix = build_matrix(VIEW_ENVS)
    assert markdown.render_markdown(matrix, envs=["a", "b", "c"]) == markdown.render_markdown(matrix)


def write_junit(path: Path, envr: m.EnvResult) -> Path:
    tags = {m.FAILED: "<failure message='x'/>", m.UNAVAILABLE: "<skipped message='unavailable: no device'/>"}
    cases = "".join(f'<testcase classname="{c.classname}" name="{c.name}" time="0.1">{tags.get(c.outcome, "")}'
                    "</testcase>" for c in envr.cases)
    path.write_text(f'<testsuites><testsuite name="{envr.name}" tests="{len(envr.cases)}"><properties>'
                    f'<property name="env" value="{envr.name}"/></properties>{cases}</testsuite></testsuites>')
    return path


def test_report_command_envs_option(tmp_path, capsys):
    from conformance.cli import main

    files = [str(write_junit(tmp_path / f"{e.name}.xml", e)) for e in VIEW_ENVS]
    assert main(["report", *files, "--envs", "a,b", "--format", "md", "--output-dir", "-"]) == 1
    out = capsys.readouterr().out
    assert "4 checks x 2 of 3 envs: 0 divergent" in out
    assert "### Divergent checks" not in out
    assert main(["report", *files, "--envs", "a,zz", "--format", "md", "--output-dir", "-"]) == 2
    assert "--envs: no env named zz" in capsys.readouterr().err
