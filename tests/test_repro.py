"""`conformance repro`: the check-id grammar against the suite, the expectation entries' reproductions, the command's
messages and files, and that the generator never imports torch. The scripts themselves run in test_repro_scripts.py."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import cli
from conformance.repro import checkids, commandline, engine, issue

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def collected_ids(tmp_path: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml",
                           str(tmp_path / "ids.xml"), "--", "--collect-only", "-q"],
                          capture_output=True, text=True, timeout=300, check=False)
    return {line.strip().rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if "::" in line}


def test_grammar_is_the_suites_parametrization(tmp_path):
    """Every id repro covers is a collected check, and every collected check of a covered function is covered."""
    pytest.importorskip("torch", reason="collecting the multi-rank checks needs torch")
    ids = collected_ids(tmp_path)
    assert len(ids) > 400, "collection failed"
    covered = set(checkids.covered_ids())
    assert not covered - ids, f"repro ids the suite does not have: {sorted(covered - ids)[:5]}"
    functions = {f"{f.module}::{f.test}" for f in checkids.FAMILIES}
    partial = [i for i in ids if i.partition("[")[0] in checkids.PARTIAL and i not in covered]
    assert all("repro covers" in checkids.why_not(i) for i in partial)
    missing = sorted(i for i in ids if i.partition("[")[0] in functions and i not in covered and i not in partial)
    assert not missing, f"checks of covered functions repro cannot parse: {missing[:5]}"


def test_the_reports_command_list_is_the_grammar():
    assert commandline.COVERED_FUNCTIONS == {f"{f.module}::{f.test}" for f in checkids.FAMILIES}


def test_every_expectation_entry_maps_to_a_reproduction():
    """A known upstream problem always has its script: the entry's prefix names the check id repro writes it for."""
    entries = engine.all_entries()
    assert len(entries) >= 20
    for e in entries:
        cid = engine.entry_check_id(e.prefix)
        if cid is None and e.prefix.partition("::")[0] in checkids.UNCOVERED_AREAS:  # an area added after repro
            assert "repro does not cover" in checkids.why_not(e.prefix.partition("[")[0]), e.where
            continue
        assert cid is not None and cid.startswith(e.prefix), f"{e.where}: no reproduction for {e.prefix!r}"
        device = Path(e.file).stem if Path(e.file).stem != "all" else "cpu"
        sc, script = engine.generate(cid, device)
        compile(script.text, cid, "exec")
        assert engine.known_entries(cid), cid
        assert commandline.repro_command(cid, device) == f"conformance repro {shlex.quote(cid)} --device {device}"


def test_every_covered_id_writes_a_script_of_plain_torch():
    """Each script compiles and imports nothing but the standard library and torch."""
    longest = 0
    for cid in checkids.covered_ids():
        _, script = engine.generate(cid, "cpu")
        tree = ast.parse(script.text)
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                assert top == "torch" or top in STDLIB, f"{cid}: imports {name}"
        longest = max(longest, len(script.text.splitlines()))
    assert longest < 215, longest  # the seven known problems' scripts stay under 200 (test_repro_scripts.py)


def test_the_generator_never_imports_torch(tmp_path):
    code = ("import sys\nfrom pathlib import Path\nfrom conformance.repro import checkids, engine\n"
            "for cid in checkids.covered_ids():\n    engine.generate(cid, 'cpu')\n"
            f"engine.write(checkids.covered_ids()[0], 'cuda', Path({str(tmp_path)!r}), python=sys.executable, "
            "run=False)\nassert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("check_id,expect", [
    ("test_schedules.py::test_schedule[ScheduleGPipee-world2-fp32]",
     "closest: test_schedules.py::test_schedule[ScheduleGPipe-world2-fp32]"),
    ("no_such_check", "no check 'no_such_check'"),
    ("test_backward.py::test_stage_backward[MultiIO-bf16]",
     "repro does not cover test_backward.py::test_stage_backward (it covers"),
    ("test_step_tier.py::test_step_tier[ScheduleGPipe-world2]", "the step tier area has no script builder yet"),
    ("test_training.py::test_training_seq_len[ScheduleGPipe-world2]",
     "closest: test_training.py::test_training_seq_len[ScheduleGPipe-world1]"),
    ("test_behaviour.py::test_step_cost[ScheduleGPipe-world1]", "step cost is a measurement"),
])
def test_a_check_it_cannot_write_is_one_line_and_exit_2(capsys, tmp_path, check_id, expect):
    assert cli.main(["repro", check_id, "--out", str(tmp_path), "--no-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err, err
    assert not list(tmp_path.iterdir())


# The training cases with a builder of their own (besides the shared trainer sequence): id -> what the script holds.
TRAINING_OWN = {
    "test_training.py::test_training_seq_len[ScheduleInterleaved1F1B-world1]":
        ("seq=LONGER_SEQ", "not a shape error", "sequence length {LONGER_SEQ} after {SEQ}"),
    "test_training.py::test_training_presplit[mismatch-ScheduleGPipe-world2]":
        ('"kwarg_mbs": [{}] * (N_MB - 1)', "documented: {want}", "'arg_mbs': '2.14', 'kwarg_mbs': '2.14'"),
    "test_training.py::test_training_metadata[static-ScheduleZBVZeroBubble-world2]":
        ("**static_args(s, batch(100, device), device)", '"input_args": tuple(', "static input_args/output_args"),
}


def written_script(capsys, tmp_path, check_id: str) -> tuple[checkids.Scenario, str, Path]:
    """A newly covered id: it parses, is covered (its function named neither uncovered nor partly covered), and
    `repro --no-run` writes a script that compiles and names the check; returns the scenario, script and its path."""
    sc = checkids.parse(check_id)
    assert sc is not None and check_id in checkids.covered_ids()
    assert "does not cover" not in checkids.why_not(check_id) and "repro covers" not in checkids.why_not(check_id)
    assert commandline.repro_command(check_id, "cpu") is not None
    assert cli.main(["repro", check_id, "--out", str(tmp_path), "--no-run"]) == 0
    py = next(tmp_path.glob("*.py"))
    assert capsys.readouterr().out.split("\n")[:2] == [f"wrote {py}", f"wrote {py.with_suffix('.md')}"]
    text = py.read_text()
    compile(text, check_id, "exec")
    assert f"CHECK, DEVICE_TYPE, BACKEND, WORLD = {check_id!r}, 'cpu', 'gloo', {sc.world}\n" in text
    return sc, text, py


@pytest.mark.parametrize("check_id", list(TRAINING_OWN))
def test_the_training_cases_without_a_shared_step(capsys, tmp_path, check_id):
    """Sequence-length change, refused pre-split containers, static metadata: each id parses to its case, is
    covered (its function no longer named as uncovered), and writes a script holding that case's code only."""
    sc, text, py = written_script(capsys, tmp_path, check_id)
    assert sc.area == "training"
    assert sc.params["case"] == {"seq_len": "seq_len", "presplit": "presplit-mismatch",
                                 "metadata": "metadata-static"}[sc.test.removeprefix("test_training_")]
    for piece in TRAINING_OWN[check_id]:
        assert piece in text, piece
    others = {"seqlen": "LONGER_SEQ", "mismatch": "kwarg_mbs", "static": "static_args"}
    present = {k for k, v in others.items() if v in text}
    assert len(present) == 1, present  # only its own case's lines
    assert len(text.splitlines()) <= 200
    assert check_id in py.with_suffix(".md").read_text()


# The graphs checks with a builder of their own: id -> what its script holds.
GRAPHS_OWN = {
    "test_graphs.py::test_receive_order[per_direction_p2p-ScheduleZBVZeroBubble]":
        ("FLAG, ATTR = True, {}, 'pipeline_per_direction_p2p', 'p2p_per_direction'", "build_flagged",
         '"device_id": torch.device(DEVICE_TYPE, rank)'),
    "test_graphs.py::test_receive_order[per_edge_p2p-ScheduleInterleaved1F1B]":
        ("'pipeline_per_edge_p2p', 'p2p_per_edge'", "has no device", "do not use their own communicators"),
    "test_graphs.py::test_plan_csv_round_trip[ScheduleZBVZeroBubble]":
        ("loaded._load_csv(path, format=\"compute_only\")", "def PLAN(sched, rank)", "first difference at #"),
    "test_graphs.py::test_custom_action_handlers[ScheduleInterleaved1F1B]":
        ("sched.register_custom_function(t, handler)", "'BACKWARD_WEIGHT', 'UNSHARD', 'RESHARD', 'REDUCE_GRAD'",
         "pipeline_order_with_comms[rank]"),
    "test_graphs.py::test_zero_bubble_refuses_compiled_stages[ScheduleDualPipeV-nested]":
        ("SCHEDULE, PLACEMENT, N_STAGES, N_MB, STAGES, D = 'ScheduleDualPipeV', 'nested', 2, 2, {0: [0, 1]}, 8",
         "mod.layers[k] = torch.compile(mod.layers[k])",
         "REFUSAL = 'not supported with stage modules that have used torch.compile'"),
    "test_graphs.py::test_dtensor_activations[static-world4]":
        ('"input_grads": shard(False)', "ColwiseParallel(input_layouts=Shard(1))", "DTensor[Shard(dim=1)]"),
    "test_graphs.py::test_dtensor_activations[runtime-world2]":
        ('kw = {"get_mesh": lambda names, layout:', "full(p.grad)", "METADATA, PP, N_STAGES"),
    "test_graphs.py::test_checkpoint_relayout[pp2_to_pp4]":
        ("'schedule': 'ScheduleGPipe', 'pp': 4, 'reshard': True", "dcp.load(flat(sds := dst.state_dicts())",
         "exact=src.dp == dst.dp"),
}


@pytest.mark.parametrize("check_id", list(GRAPHS_OWN))
def test_the_graphs_cases(capsys, tmp_path, check_id):
    """Each id parses, is covered (not named as uncovered or partly covered), and writes a script with its case's
    code, short enough for an issue."""
    _, text, py = written_script(capsys, tmp_path, check_id)
    for piece in GRAPHS_OWN[check_id]:
        assert piece in text, piece
    others = {"csv": "_load_csv", "custom": "register_custom_function", "options": "build_flagged",
              "compiled": "torch.compile(", "dtensor": "SeqParallelStage", "relayout": "dcp.save("}
    assert len({k for k, v in others.items() if v in text}) == 1  # only its own case's code
    assert len(text.splitlines()) < 200
    body = py.with_suffix(".md").read_text()
    assert check_id in body and "scenario `conformance/suite/ranks/graphs.py`" in body


def test_only_the_p2p_options_bind_the_group_to_the_device():
    """The suite binds every accelerator rank's group; the scripts do where the check needs it (split_group)."""
    bind = '"device_id": torch.device'
    bound = {cid for cid in checkids.covered_ids() if bind in engine.generate(cid, "cuda")[1].text}
    assert bound == {cid for cid in checkids.covered_ids() if "_p2p-" in cid}, sorted(bound)[:4]


def test_unknown_device_is_a_usage_error(capsys, tmp_path):
    assert cli.main(["repro", checkids.covered_ids()[0], "--device", "tpu", "--out", str(tmp_path)]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_ids_as_the_report_shows_them():
    """Node ids with folders and JUnit classnames both name the same check."""
    sc = checkids.parse("conformance/suite/checks/test_schedules.py::test_schedule_eval[ScheduleDualPipeV-world2]")
    assert sc is not None and sc.params == {"schedule": "ScheduleDualPipeV", "world": 2, "mode": "eval", "layout": "v"}
    assert checkids.parse("conformance.suite.checks.test_schedules::test_schedule_eval[ScheduleDualPipeV-world2]") == sc
    assert commandline.repro_command("test_backward.py::test_stage_backward[MultiIO-bf16]", "cpu") is None
    assert commandline.repro_command("test_split.py::test_pipeline_twice_same_module", "cuda") == (
        "conformance repro test_split.py::test_pipeline_twice_same_module --device cuda")


def test_the_written_files(capsys, tmp_path):
    """Without running: the script and an issue body with every section, the known problem and the code path."""
    cid = "test_composition.py::test_distributed_data_parallel[ScheduleGPipe-world2]"
    assert cli.main(["repro", cid, "--out", str(tmp_path), "--no-run"]) == 0
    py = tmp_path / "repro_test_composition__test_distributed_data_parallel_ScheduleGPipe_world2.py"
    md = py.with_suffix(".md")
    assert capsys.readouterr().out.split("\n")[:2] == [f"wrote {py}", f"wrote {md}"]
    body = md.read_text()
    for section in ("# ScheduleGPipe with DistributedDataParallel", "## Expected", "## What happened",
                    "## Reproduction", "## Environment", "## Where this comes from",
                    "conformance/suite/expectations/all.txt:", "stage.py (_forward_metadata_inference)",
                    "conformance/suite/checks/test_composition.py::test_distributed_data_parallel",
                    "conformance/suite/ranks/composition.py", "torch>=2.12"):
        assert section in body, section
    assert py.read_text() in body
    assert "WORLD = " in py.read_text() and "'gloo', 2" in py.read_text()


def test_issue_body_with_a_run_and_an_environment():
    text = issue.body(title="T", check_id="c", expected="E", script="print(1)\n```", script_name="r.py", device="cuda",
                      backend="nccl", world=2, check_path="p", known=[], outcome=issue.Outcome("out ``` x", 1),
                      env=issue.Environment("PyTorch version: 2.15.0", "NVIDIA H100"), suite_command="s")
    assert "`python r.py` exited 1: reproduced." in text
    assert "````\nout ``` x\n````" in text and "````python\nprint(1)\n```\n````" in text
    assert "- device names: NVIDIA H100" in text and "PyTorch version: 2.15.0" in text


def test_the_html_report_shows_the_command_in_failing_and_xfail_cells(tmp_path):
    """A failed or xfail cell of a covered check ends with its `conformance repro` line; a passing one has none."""
    xml = tmp_path / "cpu.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="cpu" tests="3" failures="1" skipped="1">'
        '<properties><property name="env" value="cpu"/><property name="device" value="cpu"/></properties>'
        '<testcase classname="test_schedules" name="test_schedule_eval[ScheduleInterleaved1F1B-world1]">'
        '<skipped type="pytest.xfail" message="all.txt:18: eval() asserts"/></testcase>'
        '<testcase classname="test_composition" name="test_distributed_data_parallel[ScheduleGPipe-world2]">'
        '<failure message="RuntimeError: rebuilt parameter indices">tb</failure></testcase>'
        '<testcase classname="test_schedules" name="test_schedule[ScheduleGPipe-world2-fp32]"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    cli.main(["report", str(xml), "--output-dir", str(tmp_path / "out"), "--format", "html"])
    page = (tmp_path / "out" / "compatibility.html").read_text(encoding="utf-8")
    for cid in ("test_schedules.py::test_schedule_eval[ScheduleInterleaved1F1B-world1]",
                "test_composition.py::test_distributed_data_parallel[ScheduleGPipe-world2]"):
        assert f"standalone reproduction: conformance repro {shlex.quote(cid)} --device cpu" in page, cid
    assert "conformance repro 'test_schedules.py::test_schedule[ScheduleGPipe-world2-fp32]'" not in page


def test_the_command_line_starts_without_pytest_or_torch():
    """`conformance` registers the repro command at start: the suite's pytest must not come with it."""
    code = "import sys\nimport conformance.cli\nassert not {'pytest', 'torch'} & set(sys.modules), 'imported'\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
