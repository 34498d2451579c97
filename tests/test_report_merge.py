"""Tests of merged.xml: junit-10.xsd validity, unique case names, properties kept, totals conserved and checked."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.report import merge
from conformance.report.inputs import read_inputs
from conformance.report.matrix import build_matrix

DATA = Path(__file__).parent / "data" / "junit"

ALL = sorted((DATA / "matrix").glob("*.xml")) + [DATA / "xunit1.xml", DATA / "nested.xml",
                                                   DATA / "bad" / "latin1.xml", DATA / "bad" / "truncated.xml"]


@pytest.fixture(scope="module")
def merged():
    envs, warnings = read_inputs(ALL)
    matrix = build_matrix(envs, warnings)
    return matrix, envs, merge.render_merged(matrix)


def test_merged_validates_against_junit_10_xsd(merged, junit_schema):
    errors = list(junit_schema.iter_errors(merged[2]))
    assert errors == []


def test_every_case_name_unique_across_envs(merged):
    root = ET.fromstring(merged[2])
    ids = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert len(ids) == len(set(ids)) == sum(len(e.cases) for e in merged[1])
    assert ("matrix/cuda.test_split", "test_split_points[END-4]") in ids  # two files claim env cuda
    assert ("xunit1.test_split", "test_split_points[END-4]") in ids


def test_totals_conserved_per_suite_and_overall(merged):
    _, envs, text = merged
    root = ET.fromstring(text)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == sorted(e.name for e in envs)
    inputs = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for path in ALL:
        data = path.read_bytes()
        if b"<testcase" not in data:
            continue
        # Count the inputs independently of the reader: elements as ElementTree sees them (complete files).
        try:
            tree = ET.fromstring(data.decode("utf-8", "replace"))
        except ET.ParseError:
            continue  # the truncated file: compared per suite below
        inputs["tests"] += len(list(tree.iter("testcase")))
        for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            inputs[key] += len(list(tree.iter(tag)))
    truncated = next(s for s in suites if s.find("properties/property[@name='conformance_incomplete']") is not None)
    assert truncated.get("name") == "bad/cuda"
    inputs["tests"] += len(truncated.findall("testcase"))
    merged_totals = {k: sum(int(s.get(k)) for s in suites) for k in inputs}
    assert merged_totals == inputs
    assert root.get("tests") == str(inputs["tests"])
    for suite in suites:
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))


def test_suite_properties_and_outputs_kept(merged):
    root = ET.fromstring(merged[2])
    cuda = next(s for s in root.findall("testsuite") if s.get("name") == "matrix/cuda")
    props = {p.get("name"): p.get("value") for p in cuda.iter("property")}
    assert props["driver_version"] == "580.65.06" and props["env"] == "cuda"
    nested = next(s for s in root.findall("testsuite") if s.get("name") == "nested")
    assert nested.find("system-err").text == "suite level stderr"
    assert nested.find("testcase/system-out").text == "captured stdout & more"
    crashed = nested.find("testcase/error")
    assert crashed.get("type") == "crashed"


def test_mismatch_is_an_internal_error(merged):
    matrix = merged[0]
    env = matrix.envs[0].result
    env.failures += 1
    try:
        with pytest.raises(merge.MergeError, match=r"merged totals differ from the inputs: .*read tests/failures"):
            merge.render_merged(matrix)
    finally:
        env.failures -= 1


def test_duplicate_ids_in_one_env_are_renamed_not_dropped():
    xml = (b'<testsuite name="s"><testcase classname="test_a" name="t"/><testcase classname="test_a" name="t">'
           b'<failure message="m"/></testcase></testsuite>')
    tmp = DATA.parent.parent / ".dup-test.xml"
    from conformance.report.junit_in import parse_bytes

    parsed = parse_bytes(xml, str(tmp), "dup")
    text = merge.render_merged(build_matrix(parsed.envs))
    names = [c.get("name") for c in ET.fromstring(text).iter("testcase")]
    assert names == ["t", "t [duplicate 2]"]


def test_escaping_of_special_characters():
    from conformance.report import model as m

    env = m.EnvResult("e&v", "x.xml")
    env.cases.append(m.Cell("test_a", 'p["<&>"]', m.FAILED, 1.5, "m\n\"q\"",
                            children=(("failure", None, "m\n\"q\"\t", "a < b && c ]]> \x01"),)))
    env.tests, env.failures = 1, 1
    text = merge.render_merged(build_matrix([env]))
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case.get("name") == 'p["<&>"]' and case.get("classname") == "e&v.test_a"
    failure = case.find("failure")
    assert failure.get("message") == "m\n\"q\"\t"
    assert failure.text == "a < b && c ]]> \ufffd"


def _pairs(text):
    return [(c.get("classname"), c.get("name")) for c in ET.fromstring(text).iter("testcase")]


def _env(name, *cases, time=0.5):
    from conformance.report import model as m

    env = m.EnvResult(name, f"{name}.xml", properties={"env": name})
    for classname, test in cases:
        env.cases.append(m.Cell(classname, test, m.PASSED, time, time_text=repr(time)))
    env.tests = len(cases)
    return env


def test_names_unique_when_the_env_prefix_makes_ids_collide(junit_schema):
    # env "a" + classname "b.c" and env "a.b" + classname "c" both give classname "a.b.c".
    matrix = build_matrix([_env("a", ("b.c", "t")), _env("a.b", ("c", "t"))])
    text = merge.render_merged(matrix)
    pairs = _pairs(text)
    assert len(set(pairs)) == 2
    assert sorted(pairs) == [("a.b.c", "t"), ("a.b.c", "t [duplicate 2]")]
    assert list(junit_schema.iter_errors(text)) == []


def test_a_name_that_already_ends_in_a_generated_suffix_cannot_collide():
    matrix = build_matrix([_env("cpu", ("c", "t"), ("c", "t"), ("c", "t [duplicate 2]"), ("c", "u [literal]"))])
    pairs = _pairs(merge.render_merged(matrix))
    assert [n for _, n in pairs] == ["t", "t [duplicate 2]", "t [duplicate 2] [literal]", "u [literal] [literal]"]
    assert len(set(pairs)) == 4


def test_summed_times_that_overflow_a_float_stay_finite_decimals(junit_schema):
    import json

    from conformance.report import jsonfmt

    matrix = build_matrix([_env("cpu", ("c", "t1"), ("c", "t2"), time=1.5e308)])
    text = merge.render_merged(matrix)
    assert "inf" not in text.lower()
    assert list(junit_schema.iter_errors(text)) == []
    suite_time = ET.fromstring(text).find("testsuite").get("time")
    assert suite_time.startswith("3") and suite_time.endswith(".000") and len(suite_time) == 309 + 4
    data = jsonfmt.render_json(matrix)  # allow_nan=False: would raise on Infinity
    assert json.loads(data)["envs"][0]["time"] is None
