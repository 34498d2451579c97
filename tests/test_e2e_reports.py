"""The reports of a real `tox -e cpu,report` run: XSD-valid, with build metadata, seed check passed on CPU.

Runs after the `cpu` and `report` envs (`tox -e cpu,report,tests`); CI sets CONFORMANCE_REQUIRE_E2E=1 so that
missing or stale reports fail instead of skipping.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[1] / "reports"
REQUIRED = os.environ.get("CONFORMANCE_REQUIRE_E2E", "") == "1"
PROPERTIES = ("env", "device", "device_count", "device_names", "torch_version", "torch_variant", "runtime",
              "runtime_version", "driver_version", "backend", "python_version", "hostname", "start_time",
              "conformance_version")


def _need(path: Path) -> Path:
    if not path.exists():
        msg = f"{path} not found: run `tox -e cpu,report,tests` to produce it first"
        if REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _props(suite: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in suite.iter("property")}


def test_cpu_junit_is_valid_recent_and_passed_the_seed(junit_schema):
    path = _need(REPORTS / "cpu.xml")
    junit_schema.validate(str(path))
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    props = _props(suite)
    missing = [k for k in PROPERTIES if k not in props]
    assert not missing, f"suite properties missing: {missing}"
    assert (props["device"], props["backend"]) == ("cpu", "gloo")
    assert props["torch_version"]
    if REQUIRED:
        started = datetime.fromisoformat(props["start_time"])
        assert datetime.now(timezone.utc) - started < timedelta(hours=3), f"stale report from {started}"
    seed = [c for c in suite.iter("testcase") if c.get("name") == "test_seed_split_begin_2stages"]
    assert len(seed) == 1, "the seed check must have run on CPU"
    assert len(list(seed[0])) == 0, "the seed check must have passed on CPU"
    assert int(suite.get("tests")) > 1


def test_merged_report_is_valid_and_has_the_cpu_column(junit_schema):
    merged = _need(REPORTS / "merged.xml")
    junit_schema.validate(str(merged))
    suites = {s.get("name"): s for s in ET.parse(merged).getroot().iter("testsuite")}
    assert "cpu" in suites
    cpu_cases = sum(1 for _ in ET.parse(REPORTS / "cpu.xml").getroot().iter("testcase"))
    assert sum(1 for _ in suites["cpu"].iter("testcase")) == cpu_cases
    for name in ("compatibility.md", "compatibility.html", "compatibility.json"):
        assert (REPORTS / name).stat().st_size > 0, name


def test_real_reports_read_the_same_in_junitparser(monkeypatch):
    """What the real run wrote, loaded as a dashboard would: same totals and per-case outcomes as our reader."""
    from test_report_consumers import assert_junitparser_agrees

    merged = _need(REPORTS / "merged.xml")
    inputs = sorted(p for p in REPORTS.glob("*.xml") if p.name != "merged.xml")
    assert inputs, "no env JUnit file beside merged.xml"
    monkeypatch.chdir(REPORTS.parent)
    assert_junitparser_agrees(inputs, merged)
