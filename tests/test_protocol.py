"""The protocol layer: each writer's output read back by its reader, and the formats pinned byte for byte."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from conformance.protocol import journal, outcomes, properties, stepcost

ROOT = Path(__file__).resolve().parents[1]

META = {"env": "cpu", "device": "cpu", "device_available": "true", "device_reason": "", "device_count": "1",
        "device_names": "x86_64", "torch_version": "2.13.0+cpu", "torch_variant": "cpu", "torch_source": "pinned",
        "torch_pinned": "2.13.0", "runtime": "none", "runtime_version": "", "driver_version": "", "backend": "gloo",
        "device_simulated": "false", "python_version": "3.11.7", "hostname": "h", "start_time": "2026-01-01T00:00:00",
        "conformance_version": "0.1.0", "platform": "linux-x86_64", "tf32": "off",
        "float32_matmul_precision": "highest"}


def test_build_record_round_trips_in_the_suites_order():
    record = properties.BuildRecord.from_properties(META)
    assert record.device_available is True and record.device_count == 1 and record.device_simulated is False
    assert list(record.to_properties().items()) == list(META.items())
    assert properties.BuildRecord.from_properties({**META, "run_status": "killed"}).run_status == "killed"


def test_build_record_keys_are_the_module_constants():
    constants = {v for k, v in vars(properties).items() if k.isupper() and isinstance(v, str) and k == v.upper()}
    assert {f.name for f in fields(properties.BuildRecord)} - {"extra"} == constants == set(properties.KEYS)


def test_build_record_reads_partial_and_foreign_properties():
    record = properties.BuildRecord.from_properties({"device_available": "False", "device_count": "many",
                                                     "custom": "x", "stepcost:t": "{}", "trace:t": "{}"})
    assert record.device_available is False and record.device_count == 0
    assert record.extra == {"custom": "x"}, "step costs and traces are not plain metadata"
    assert properties.BuildRecord.from_properties({}).device_available, "only an explicit false marks absence"


def test_optional_properties_are_written_only_when_set():
    props = properties.BuildRecord(env="cpu").to_properties()
    assert "tf32" not in props and "run_status" not in props and props["device_available"] == "true"


COST = {"schedule": "ScheduleGPipe", "world": 2, "n_mb": 8, "steps": 5, "step_ms": 1.234, "ideal_ms": 1.0,
        "bubble": 0.1896, "bubble_theory": 0.1111, "bubble_theory_source": "GPipe paper",
        "peak_bytes": {"0": 10, "1": 12}, "base_bytes": {"0": 1, "1": 2}, "device": "NVIDIA H100"}


def test_step_cost_json_is_byte_identical_to_the_documented_format():
    value = json.dumps(COST, separators=(",", ":"))
    cost = stepcost.StepCost.from_json(value)
    assert cost is not None and cost.to_json() == value
    key, written = cost.property("test_step_cost[ScheduleGPipe-world2]")
    assert key == "stepcost:test_step_cost[ScheduleGPipe-world2]" and written == value
    assert stepcost.read_costs({key: value, "trace:x": "{}", "env": "cpu"}) == [
        ("test_step_cost[ScheduleGPipe-world2]", cost)]


def test_step_cost_later_fields_are_written_only_when_set_and_round_trip():
    old = stepcost.StepCost.from_dict(COST)
    assert old.traced_step is None and "traced_step" not in old.to_json()
    new = stepcost.StepCost.from_dict({**COST, "traced_step": 2, "traced_step_ms": 1.3, "model": "4096 bf16"})
    assert new.to_json() == json.dumps({**COST, "traced_step": 2, "traced_step_ms": 1.3, "model": "4096 bf16"},
                                       separators=(",", ":"))
    assert stepcost.StepCost.from_json(new.to_json()) == new
    assert stepcost.StepCost.from_dict({**COST, "traced_step": "2"}).traced_step is None, "only an int is an index"


def test_trace_json_round_trips_and_bad_payloads_read_as_nothing():
    value = '{"schedule":"Schedule1F1B","world":2,"unit":"us","ranks":{"0":[[0,"F",0,0,5]],"1":[[1,"B",0,6,9]]}}'
    trace = stepcost.Trace.from_json(value)
    assert trace is not None and trace.to_json() == value and trace.ranks["1"] == [[1, "B", 0, 6, 9]]
    assert stepcost.read_traces({"trace:a": "not json", "trace:b": "[]", "trace:c": '{"ranks": 1}'}) == []
    assert stepcost.StepCost.from_json("[1]") is None


@pytest.mark.parametrize(("reason", "type_", "kind"), [
    ("unavailable: no GPU", None, "unavailable"), ("Unavailable: x", None, "unavailable"),
    ("not applicable: needs 2.9", None, "not_applicable"), ("not run: stopped", None, "not_run"),
    ("anything", outcomes.NOT_RUN, "not_run"), ("flaky", None, "skipped")])
def test_skip_kind_reads_what_the_writers_write(reason, type_, kind):
    assert outcomes.skip_kind(reason, type_) == kind


def test_writers_and_reader_agree_on_the_prefixes():
    assert outcomes.skip_kind(outcomes.not_applicable("x")) == "not_applicable"
    assert outcomes.skip_kind(outcomes.unavailable("x")) == "unavailable"
    assert outcomes.skip_kind(outcomes.not_run("x")) == "not_run"
    assert outcomes.is_crash(outcomes.crashed("SIGSEGV")) and outcomes.is_crash("", outcomes.CRASHED)


def test_journal_records_fold_into_one_result_per_check(tmp_path):
    path = str(tmp_path / "j")
    w = journal.Writer(path)
    w.meta(1, {"env": "cpu"})
    w.collected([("t.py::a", "t", "a"), ("t.py::b", "t", "b"), ("t.py::c", "t", "c")])
    w.start("t.py::a")
    for when, outcome in (("setup", "passed"), ("call", "failed"), ("teardown", "failed")):
        w.report("t.py::a", when, outcome, 0.5, "E assert 1 == 2" if outcome == "failed" else "")
    w.finish("t.py::a")
    w.start("t.py::b")
    w.report("t.py::b", "setup", "skipped", 0.0, "", wasxfail="known")
    w.finish("t.py::b")
    w.start("t.py::c")
    w.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"type": "rep')  # a torn last line from a killed process
    data = journal.read(path)
    a, b, c = data.collected
    assert data.properties == {"env": "cpu"} and not data.ended and data.running == "t.py::c"
    assert (a.outcome, a.message, a.duration, a.finished) == ("failed", "E assert 1 == 2", 1.5, True)
    assert (b.outcome, b.message) == ("xfail", "known") and c.started and not c.outcome


def test_suite_args_are_the_flags_the_suite_declares():
    from conformance.protocol import argv

    assert argv.suite_args("rocm", "rocm-7", strict=True) == ["--device", "rocm", "--env-name", "rocm-7",
                                                               "--strict-device"]
    assert argv.STRICT_DEVICE not in argv.suite_args("cpu", "cpu")
    options = (ROOT / "conformance" / "suite" / "options.py").read_text(encoding="utf-8")
    for flag in ("DEVICE", "ENV_NAME", "STRICT_DEVICE", "CHECK_TIMEOUT", "POOL"):
        assert f"group.addoption(argv.{flag}," in options, f"suite/options.py must declare argv.{flag}"
