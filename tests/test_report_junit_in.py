"""Tests of the streaming JUnit reader: flavours, suite properties, nesting and every kind of bad XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.report import model as m
from conformance.report.junit_in import parse_bytes, parse_file, sniff_root

DATA = Path(__file__).parent / "data" / "junit"


def parse(name: str):
    path = DATA / name
    return parse_bytes(path.read_bytes(), str(path), path.stem)


def test_xunit2_env_from_property_and_every_outcome():
    parsed = parse("matrix/xpu.xml")
    assert parsed.warnings == []
    (env,) = parsed.envs
    assert env.name == "xpu"
    assert env.properties["device_names"] == "Intel(R) Data Center GPU Max 1550"
    outcomes = {c.key: c.outcome for c in env.cases}
    assert outcomes["test_schedules::test_schedule_matches_reference[ScheduleInterleaved1F1B-world2]"] == m.CRASHED
    assert outcomes["test_schedules::test_schedule_matches_reference[ScheduleDualPipeV-world2]"] == m.NOT_RUN
    assert outcomes["test_backward::test_scale_grads_default"] == m.SKIPPED
    assert (env.tests, env.failures, env.errors, env.skipped) == (18, 0, 1, 4)
    assert env.timestamp == "2026-01-05T10:00:05+00:00" and env.hostname == "pvc-3"


def test_xunit1_file_line_attrs_and_tuple_skip_reasons():
    parsed = parse("xunit1.xml")
    assert parsed.warnings == []
    (env,) = parsed.envs
    assert env.name == "xunit1"  # no env property: the file's base name
    got = {c.key: (c.outcome, c.message) for c in env.cases}
    assert got["test_stage::test_build_stage[world2]"] == (m.UNAVAILABLE, "unavailable: cuda no GPU visible")
    assert got["test_stage::test_stage_legacy"] == (m.NOT_APPLICABLE, "not applicable: removed in torch 2.6")
    assert got["test_backward::test_scale_grads_default"][0] == m.XFAIL
    assert got["test_split::test_pipe_split_marker"] == (m.FAILED, "assert 3 == 4")


def test_nested_suites_are_flattened_with_outputs_kept():
    (env,) = parse("nested.xml").envs
    assert [c.outcome for c in env.cases] == [m.PASSED, m.PASSED, m.CRASHED, m.NOT_RUN]
    assert env.properties == {"torch_version": "2.12.0+rocm6.4", "runtime": "hip"}
    assert env.system_err == "suite level stderr"
    assert env.cases[1].children == (("system-out", None, None, "captured stdout & more"),)
    assert env.cases[1].outcome == m.PASSED  # output alone is not a result


@pytest.mark.parametrize(
    ("name", "fragment", "kept"),
    [
        ("bad/empty.xml", "empty file", 0),
        ("bad/wrong_root.xml", "root element <coverage>", 0),
        ("bad/truncated.xml", "incomplete: XML ends early", 2),
        ("bad/malformed.xml", "malformed XML (mismatched tag: line 4", 1),
        ("bad/latin1.xml", "not valid UTF-8 (first bad byte at offset 209)", 1),
    ],
)
def test_bad_inputs_warn_with_the_problem(name, fragment, kept):
    parsed = parse(name)
    assert any(fragment in w.problem for w in parsed.warnings), parsed.warnings
    assert all(w.path.endswith(name) for w in parsed.warnings)
    assert sum(len(e.cases) for e in parsed.envs) == kept


def test_truncated_file_keeps_properties_and_marks_incomplete():
    (env,) = parse("bad/truncated.xml").envs
    assert env.name == "cuda" and env.incomplete.startswith("incomplete")
    assert env.properties["backend"] == "nccl"


def test_non_utf8_bytes_are_replaced_not_dropped():
    (env,) = parse("bad/latin1.xml").envs
    assert env.cases[0].message == "bad bytes \ufffd\ufffd here"
    assert env.cases[0].detail == "caf\ufffd output"


def test_declared_totals_mismatch_is_a_warning():
    xml = (b'<testsuite name="s" tests="3" failures="1" errors="0" skipped="0">'
           b'<testcase classname="test_a" name="t1"/></testsuite>')
    parsed = parse_bytes(xml, "x.xml", "x")
    # Fewer testcases than declared: cases were lost, the env is incomplete and the report fails on it by default.
    assert [(w.slug, w.problem) for w in parsed.warnings] == [
        ("fewer-cases", "incomplete: holds 1 of 3 declared testcases (tests 3 declared / 1 found, failures 1 "
                        "declared / 0 found); env marked incomplete")]
    more = parse_bytes(xml.replace(b'tests="3"', b'tests="1"'), "x.xml", "x")
    assert [w.problem for w in more.warnings] == [
        "suite totals disagree with its testcases (failures 1 declared / 0 found); the testcases are what is merged"]


def test_bad_times_are_counted_and_warned():
    xml = (b'<testsuite name="s"><testcase classname="test_a" name="t1" time="soon"/>'
           b'<testcase classname="test_a" name="t2" time="-1"/><testcase classname="test_a" name="t3" time="nan"/>'
           b'<testcase classname="test_a" name="t4" time="1,5"/><testcase classname="test_a" name="t5"/>'
           b'<testcase classname="test_a" name="t6" time="2.50"/></testsuite>')
    parsed = parse_bytes(xml, "x.xml", "x")
    assert [(c.time, c.time_text) for c in parsed.envs[0].cases] == [
        (0.0, "0"), (0.0, "0"), (0.0, "0"), (0.0, "0"), (0.0, "0"), (2.5, "2.50")]
    assert [w.problem for w in parsed.warnings] == [
        "4 testcases have no valid time (not a non-negative number); counted as 0 s"]


def test_text_over_10_mb_is_read_whole_for_merged_xml_and_capped_in_the_cell():
    big = "H" * 100 + "x" * (11 * 1024 * 1024) + "T" * 100
    xml = f'<testsuite name="s"><testcase classname="test_a" name="t"><failure message="{big}">{big}</failure>' \
          f"</testcase></testsuite>".encode()
    (env,) = parse_bytes(xml, "x.xml", "x").envs
    cell = env.cases[0]
    assert cell.children[0][3] == big  # merged.xml conserves the input's text
    for text, limit in ((cell.message, m.MESSAGE_LIMIT), (cell.detail, m.DETAIL_LIMIT)):
        assert len(text) < limit + 100
        assert text.startswith("H" * 100) and text.endswith("T" * 100)  # head and tail kept
        assert f"[... {len(big) - limit:,} characters cut by conformance report ...]" in text


def test_namespaced_and_bom_documents():
    xml = b'\xef\xbb\xbf<?xml version="1.0"?><!-- c --><t:testsuites xmlns:t="urn:x"><t:testsuite name="s">' \
          b'<t:testcase classname="test_a" name="t"><t:skipped message="unavailable: none"/></t:testcase>' \
          b"</t:testsuite></t:testsuites>"
    assert sniff_root(xml) == "testsuites"
    (env,) = parse_bytes(xml, "x.xml", "x").envs
    assert env.cases[0].outcome == m.UNAVAILABLE


def test_merged_file_is_split_per_suite_and_prefix_stripped():
    xml = (b'<testsuites name="conformance-merged"><testsuite name="cuda" tests="1" failures="0" errors="0">'
           b'<testcase classname="cuda.test_split" name="t"/></testsuite>'
           b'<testsuite name="cpu" tests="1" failures="1" errors="0"><testcase classname="cpu.test_split" name="t">'
           b'<failure message="m"/></testcase></testsuite></testsuites>')
    parsed = parse_bytes(xml, "merged.xml", "merged")
    assert parsed.merged
    assert [(e.name, e.cases[0].key, e.cases[0].outcome) for e in parsed.envs] == [
        ("cuda", "test_split::t", m.PASSED), ("cpu", "test_split::t", m.FAILED)]


def test_utf16_document_is_read():
    xml = '<?xml version="1.0" encoding="UTF-16"?><testsuite name="s"><testcase classname="test_a" name="é"/>' \
          "</testsuite>"
    parsed = parse_bytes(xml.encode("utf-16"), "x.xml", "x")
    assert parsed.warnings == []
    assert parsed.envs[0].cases[0].name == "é"


PRODUCERS = Path(__file__).parent / "data" / "junit" / "producers"


@pytest.mark.parametrize("path", sorted(PRODUCERS.rglob("*.xml")), ids=lambda p: p.name)
def test_valid_producer_files_draw_no_warning(path):
    # gotestsum, nextest, mocha and Bazel leave `skipped` out (it declares nothing, not "0 skipped"); Surefire
    # writes grouped times; ctest counts disabled tests apart.
    parsed = parse_file(path, path.name, "env")
    assert parsed.warnings == []
    assert parsed.envs and parsed.envs[0].cases


def test_absent_total_is_not_zero_declared_but_a_present_one_is_checked():
    absent = b'<testsuite name="s" tests="1"><testcase classname="c" name="t"><skipped/></testcase></testsuite>'
    assert parse_bytes(absent, "x.xml", "x").warnings == []
    wrong = absent.replace(b'tests="1"', b'tests="1" skipped="0"')
    (w,) = parse_bytes(wrong, "x.xml", "x").warnings
    assert (w.slug, w.problem) == (m.W_TOTALS, "suite totals disagree with its testcases (skipped 0 declared / 1 "
                                               "found); the testcases are what is merged")


def test_surefire_grouped_time_is_read_and_normalised():
    (env,) = parse_file(PRODUCERS / "TEST-com.example.ppconf.ScheduleTest.xml", "s.xml", "s").envs
    first = env.cases[0]
    assert (first.time, first.time_text) == (1000.25, "1000.25")
    bad = b'<testsuite name="s"><testcase classname="c" name="t" time="1,5"/></testsuite>'
    assert [w.slug for w in parse_bytes(bad, "x.xml", "x").warnings] == [m.W_BAD_TIME]  # not a grouping


def test_ctest_disabled_is_skipped_not_passed():
    (env,) = parse_file(PRODUCERS / "ctest.xml", "ctest.xml", "ctest").envs
    disabled = next(c for c in env.cases if c.name == "pp_dualpipev")
    assert disabled.outcome == m.SKIPPED
    assert disabled.message == 'disabled (ctest status="disabled")'
    assert ("skipped", "disabled", 'disabled (ctest status="disabled")', "") in disabled.children
    assert (env.tests, env.failures, env.skipped) == (4, 1, 2)  # merged.xml writes the <skipped> it implies


def test_warnings_carry_slugs():
    cases = {b"": m.W_EMPTY, b"<coverage/>": m.W_NOT_JUNIT, b"<testsuite><testcase name='t'/>": m.W_TRUNCATED,
             b"<testsuite><testcase name='t'/></testsuite><x/>": m.W_TRAILING,
             b"<testsuite><testcase name='t' time='-1'/></testsuite>": m.W_BAD_TIME,
             b"<testsuite></testsuite>": m.W_NO_TESTS}
    for data, slug in cases.items():
        assert [w.slug for w in parse_bytes(data, "x.xml", "x").warnings] == [slug], data


# Every producer's dialect (tests/data/junit/producers/README.md): what each sample's cases must read as. A
# disabled test is never passed, another runner's expected failure / unexpected success is xfail / xpass, a rerun
# that passed is a pass whose runs say it was flaky.
DIALECTS = {
    "googletest.xml": {"GPipeMatchesReference": m.PASSED, "OneFOneBMatchesReference": m.FAILED,
                       "DISABLED_DualPipeVOverlaps": m.SKIPPED, "ZeroBubbleOnGloo": m.SKIPPED},
    "catch2.xml": {"GPipe matches the reference": m.PASSED, "GPipe matches the reference/world 2": m.PASSED,
                   "1F1B matches the reference": m.FAILED,
                   "DualPipeV overlaps on gloo": m.XFAIL, "ZeroBubble on gloo": m.SKIPPED},
    "boost-test.xml": {"gpipe_matches_reference": m.PASSED, "one_f_one_b_matches_reference": m.FAILED,
                       "dualpipev_overlaps_on_gloo": m.XFAIL, "zero_bubble_on_gloo": m.SKIPPED},
    "xmlrunner.xml": {"test_gpipe": m.PASSED, "test_1f1b": m.FAILED, "test_dualpipev_overlap": m.XFAIL,
                      "test_zero_bubble_gloo": m.XPASS, "test_cuda_only": m.SKIPPED},
    "playwright.xml": {"schedule › gpipe matches the reference": m.PASSED, "schedule › 1f1b under load": m.PASSED,
                       "schedule › dualpipev overlap on webkit": m.XFAIL, "schedule › zero bubble": m.SKIPPED},
    "robot.xml": {"GPipe Matches Reference": m.PASSED, "1F1B Matches Reference": m.FAILED,
                  "ZeroBubble On Gloo": m.SKIPPED},
    "karma.xml": {"schedule gpipe matches the reference": m.PASSED, "schedule 1f1b matches the reference": m.FAILED,
                  "schedule dualpipev overlaps": m.SKIPPED},
    "junit-xml-testlogger.xml": {"GPipeMatchesReference": m.PASSED, "OneFOneBMatchesReference": m.FAILED,
                                 "DualPipeVOverlaps": m.SKIPPED},
    "trx2junit.xml": {"GPipeMatchesReference": m.PASSED, "OneFOneBMatchesReference": m.FAILED,
                      "DualPipeVOverlaps": m.SKIPPED},
    "TEST-com.example.ppconf.FlakyScheduleTest.xml": {"gpipeMatchesReference()": m.PASSED,
                                                      "oneFOneBUnderLoad()": m.PASSED, "dualPipeV()": m.SKIPPED},
    "TEST-com.example.ppconf.RerunTest.xml": {"gpipeUnderLoad": m.PASSED, "oneFOneBAlwaysBroken": m.FAILED,
                                              "dualPipeVDisabled": m.SKIPPED},
    "ctest.xml": {"pp_gpipe": m.PASSED, "pp_1f1b": m.FAILED, "pp_dualpipev": m.SKIPPED, "pp_zbv": m.SKIPPED},
}


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_producer_marks_read_as_documented(name):
    (path,) = PRODUCERS.rglob(name)
    parsed = parse_file(path, name, "env")
    assert parsed.warnings == []
    assert {c.name: c.outcome for c in parsed.envs[0].cases} == DIALECTS[name]


def test_disabled_tests_say_which_marker_made_them_skipped():
    (env,) = parse_file(PRODUCERS / "googletest.xml", "g.xml", "g").envs
    disabled = next(c for c in env.cases if c.name.startswith("DISABLED_"))
    assert disabled.message == 'disabled (googletest status="notrun" result="suppressed")'
    assert (env.tests, env.failures, env.skipped) == (4, 1, 2)  # merged.xml writes the <skipped> it implies


def test_expected_failures_keep_the_failure_text_as_their_reason():
    cases = {c.name: c for c in parse_file(PRODUCERS / "catch2.xml", "c.xml", "c").envs[0].cases}
    assert cases["DualPipeV overlaps on gloo"].message == "TEST_CASE tagged with !mayfail (Catch2): overlap > 0.0"
    assert cases["ZeroBubble on gloo"].message == "gloo has no zero-bubble support"  # SKIP()'s reason, 2nd line
    cases = {c.name: c for c in parse_file(PRODUCERS / "boost-test.xml", "b.xml", "b").envs[0].cases}
    assert cases["dualpipev_overlaps_on_gloo"].message.startswith("expected failure (Boost.Test expected_failures)")


def test_reruns_inside_one_testcase_are_runs_of_the_cell():
    cases = {c.name: c for c in parse_file(PRODUCERS / "surefire-rerun" / "TEST-com.example.ppconf.RerunTest.xml",
                                           "r.xml", "r").envs[0].cases}
    assert cases["gpipeUnderLoad"].runs == (m.FAILED, m.PASSED)
    assert cases["gpipeUnderLoad"].message.startswith("flaky: failed then passed; expected: <0.5311>")
    assert cases["oneFOneBAlwaysBroken"].runs == (m.FAILED, m.FAILED)


def test_assertion_counters_are_not_testcase_totals_but_only_for_that_producer():
    catch2 = (PRODUCERS / "catch2.xml").read_bytes()
    assert parse_bytes(catch2, "c.xml", "c").warnings == []  # tests="14" counts assertions
    # The same file without Catch2's signature is checked like any other: 14 declared, 5 found.
    (w,) = parse_bytes(catch2.replace(b'hostname="tbd"', b'hostname="ci"'), "c.xml", "c").warnings
    assert "5 of 14 declared" in w.problem


def test_a_test_counted_once_but_listed_per_rerun_is_no_totals_problem():
    xml = (b'<testsuite name="s" tests="1" failures="1"><testcase classname="c" name="t"><failure message="x"/>'
           b'</testcase><testcase classname="c" name="t"/></testsuite>')
    assert parse_bytes(xml, "x.xml", "x").warnings == []


def test_control_characters_as_character_references_do_not_drop_the_rest():
    # jest-junit and others write ANSI colours as &#x1b;: forbidden in XML 1.0, so expat stops at the first one.
    xml = (b'<testsuite name="s" tests="3" failures="1"><testcase classname="c" name="a"><failure message="'
           b'&#x1b;[31mexpected 1&#x1b;[0m">x &#27;[2m y</failure></testcase>'
           b'<testcase classname="c" name="b"/><testcase classname="c" name="c"/></testsuite>')
    parsed = parse_bytes(xml, "x.xml", "x")
    (w,) = parsed.warnings
    assert (w.slug, w.problem) == (m.W_RECOVERED, "not well-formed XML, recovered: 3 character references to "
                                                  "control characters (&#27;, &#x1b;) shown as control pictures")
    assert [(c.name, c.outcome) for c in parsed.envs[0].cases] == [("a", m.FAILED), ("b", m.PASSED), ("c", m.PASSED)]
    assert parsed.envs[0].cases[0].message == "\u241b[31mexpected 1\u241b[0m"
    assert not parsed.envs[0].incomplete


def test_damage_inside_one_testcase_costs_that_testcase_only():
    xml = (b'<testsuite name="s" tests="5"><testcase classname="c" name="a"/>'
           b'<testcase classname="c" name="b"><failure>rank 0 < rank 1</failure></testcase>'
           b'<testcase classname="c" name="c"><system-out>bad & worse</system-out></testcase>'
           b'<testcase classname="c" name="d"><failure message="m">x</testcas></testcase>'
           b'<testcase classname="c" name="e"/></testsuite>')
    parsed = parse_bytes(xml, "x.xml", "x")
    (w,) = parsed.warnings
    assert w.slug == m.W_RECOVERED
    assert w.problem.startswith("not well-formed XML, recovered: 1 unescaped '&' read as text; 2 damaged testcases "
                                "read as errors (byte ")
    got = [(c.name, c.outcome) for c in parsed.envs[0].cases]
    # An unreadable testcase is an error, never a pass: its result is unknown.
    assert got == [("a", m.PASSED), ("b", m.ERROR), ("c", m.PASSED), ("d", m.ERROR), ("e", m.PASSED)]
    assert parsed.envs[0].cases[1].message.startswith("unreadable: not well-formed XML in this testcase at byte ")


def test_damage_outside_testcases_is_not_recovered():
    parsed = parse("bad/malformed.xml")
    assert [w.slug for w in parsed.warnings] == [m.W_MALFORMED]
    assert parsed.envs[0].incomplete
