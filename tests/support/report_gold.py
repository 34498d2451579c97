"""The report renderers' shared test fixture: the test JUnit runs as one matrix, and their gold-file comparison."""

from __future__ import annotations

import os
from pathlib import Path

from conformance.report import model as m
from conformance.report.inputs import read_inputs
from conformance.report.matrix import build_matrix

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "tests" / "gold"
MATRIX = sorted((ROOT / "tests" / "data" / "junit" / "matrix").glob("*.xml"))


def fixture_matrix(monkeypatch) -> m.Matrix:
    """tests/data/junit/matrix with cpu, cuda, xpu, hpu and rocm expected, at a fixed time and generator."""
    monkeypatch.chdir(ROOT)  # input paths appear in the report relative to the working folder
    envs, warnings = read_inputs(MATRIX)
    return build_matrix(envs, warnings, ["cpu", "cuda", "xpu", "hpu", "rocm"],
                        generated_at="2026-01-05T12:00:00+00:00", generator="conformance 9.9.9")


def scrub(text: str, matrix: m.Matrix) -> str:
    return text.replace(matrix.generated_at, "<TIMESTAMP>").replace(matrix.generator, "conformance <VERSION>")


def check_gold(name: str, text: str) -> None:
    """Compare with tests/gold/<name>; UPDATE_GOLD=1 rewrites the gold file instead."""
    path = GOLD / name
    if os.environ.get("UPDATE_GOLD") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLD=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its gold file (UPDATE_GOLD=1 to accept)"
