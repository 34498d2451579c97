"""Tests of outcome classification: every outcome kind and the skip-reason clean-up."""

from __future__ import annotations

import pytest

from conformance.report import model as m
from conformance.report.classify import classify, clean_reason


@pytest.mark.parametrize(
    ("children", "outcome", "message"),
    [
        ([], m.PASSED, ""),
        ([("failure", None, "AssertionError: boom", "tb")], m.FAILED, "AssertionError: boom"),
        ([("failure", None, "[XPASS(strict)] known bug", "")], m.XPASS, "[XPASS(strict)] known bug"),
        ([("error", None, 'failed on setup with "E"', "tb")], m.ERROR, 'failed on setup with "E"'),
        ([("error", "crashed", "rank 1 SIGABRT", "")], m.CRASHED, "rank 1 SIGABRT"),
        ([("error", None, "crashed: rank 1 SIGSEGV", "")], m.CRASHED, "crashed: rank 1 SIGSEGV"),
        ([("skipped", "pytest.xfail", "known #1", "")], m.XFAIL, "known #1"),
        ([("skipped", "pytest.skip", "unavailable: no GPU visible", "")], m.UNAVAILABLE,
         "unavailable: no GPU visible"),
        ([("skipped", "pytest.skip", "not applicable: needs 2.9", "")], m.NOT_APPLICABLE, "not applicable: needs 2.9"),
        ([("skipped", "notrun", "pool died", "")], m.NOT_RUN, "pool died"),
        ([("skipped", "pytest.skip", "not run: pool died", "")], m.NOT_RUN, "not run: pool died"),
        ([("skipped", "pytest.skip", "flaky on this host", "")], m.SKIPPED, "flaky on this host"),
        # reason only in the text, with pytest's file:line prefix
        ([("skipped", "pytest.skip", None, "/ci/t.py:7: unavailable: no GPU")], m.UNAVAILABLE, "unavailable: no GPU"),
        # a failed call plus a teardown error: the failure is what the check said
        ([("failure", None, "assert 1", ""), ("error", None, "teardown", "")], m.FAILED, "assert 1"),
        ([("error", None, "teardown", ""), ("error", "crashed", "abort", "")], m.CRASHED, "abort"),
    ],
)
def test_classify(children, outcome, message):
    got, msg, _detail = classify(children)
    assert (got, msg) == (outcome, message)


def test_failure_without_message_uses_first_text_line():
    assert classify([("failure", None, None, "\nE   boom\nmore")])[:2] == (m.FAILED, "E   boom")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/ci/x/test_split.py:7: unavailable: no GPU", "unavailable: no GPU"),
        ("('/ci/test_stage.py', 5, 'Skipped: unavailable: cuda none')", "unavailable: cuda none"),
        ("Skipped: not applicable: x", "not applicable: x"),
        ("plain reason: with colon", "plain reason: with colon"),
    ],
)
def test_clean_reason(raw, clean):
    assert clean_reason(raw) == clean
