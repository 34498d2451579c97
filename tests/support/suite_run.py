"""Runs `conformance run --device cpu` on a selection, as a user would, and reads the outcomes back from its JUnit."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

Outcomes = dict[str, tuple[str, str, float]]


def run_suite(tmp_path: Path, select: str, *extra: str, check_timeout: float = 10, python: str = sys.executable,
              **env: str) -> Outcomes:
    """{check name: (outcome, message and text, seconds)} of the checks `-k select` picks (plus `extra` args), run
    by `python` (another torch build's interpreter with this package installed, or this one)."""
    xml = tmp_path / "out.xml"
    full_env = {**os.environ, "CONFORMANCE_CHECK_TIMEOUT": str(check_timeout), **env}
    proc = subprocess.run([python, "-m", "conformance", "run", "--device", "cpu", "--junitxml", str(xml),
                           "--", "-q", "-p", "no:randomly", "-k", select, *extra],
                          env=full_env, capture_output=True, text=True, timeout=600, check=False)
    assert xml.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {}
    for tc in ET.parse(xml).iter("testcase"):
        outcome, text = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                outcome, text = tag, (el.get("message") or "") + "\n" + (el.text or "")
        out[str(tc.get("name"))] = (outcome, text, float(tc.get("time") or 0))
    return out
