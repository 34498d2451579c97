"""Tests of compatibility.json: format version, sparse rows, messages, warning slugs, finite numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.report import jsonfmt
from conformance.report import model as m
from conformance.report.inputs import read_inputs
from conformance.report.matrix import build_matrix

ROOT = Path(__file__).resolve().parents[1]
MATRIX = sorted((ROOT / "tests" / "data" / "junit" / "matrix").glob("*.xml"))


@pytest.fixture
def data(monkeypatch):
    monkeypatch.chdir(ROOT)
    envs, warnings = read_inputs(MATRIX)
    matrix = build_matrix(envs, warnings, ["cpu", "cuda"], generated_at="T", generator="G")
    return json.loads(jsonfmt.render_json(matrix))


def test_format_and_header(data):
    assert data["format"] == jsonfmt.FORMAT == 3
    assert data["outcomes"] == list(m.OUTCOMES)
    assert (data["generator"], data["generated_at"]) == ("G", "T")
    assert [e["name"] for e in data["envs"]] == ["cpu", "cuda", "hpu", "xpu"]  # --expect order first
    assert data["checks"] == 18 and data["divergent"] == 9


def test_envs_carry_properties_counts_and_file(data):
    cuda = data["envs"][1]
    assert cuda["file"] == "tests/data/junit/matrix/cuda.xml"
    assert cuda["properties"]["torch_variant"] == "cu130"
    assert cuda["counts"]["failed"] == 1 and cuda["total"] == 18
    assert len(cuda["sha256"]) == 64
    assert data["totals"]["unavailable"] == 15
    assert sum(data["totals"].values()) == 4 * 18


def test_rows_hold_only_the_cells_that_exist(data):
    rows = {r["id"]: r for r in data["rows"]}
    row = rows["test_backward::test_loss_kwargs"]
    assert sorted(row["cells"]) == ["cpu", "cuda", "xpu"]  # absent on hpu: no entry, not a "missing" filler
    assert row["cells"]["cpu"] == {"outcome": "not_applicable", "time": row["cells"]["cpu"]["time"],
                                   "message": "not applicable: loss_kwargs needs torch>=2.13"}
    assert row["cells"]["cuda"]["outcome"] == "passed" and "message" not in row["cells"]["cuda"]
    assert isinstance(row["cells"]["cuda"]["time"], float)
    assert row["area"] == "backward" and row["divergent"] is True
    assert data["rows"][0]["divergent"] and not data["rows"][-1]["divergent"]
    assert data["baseline"] is None and data["warnings"] == []
