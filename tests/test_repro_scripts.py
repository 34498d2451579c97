"""The reproductions run: every expectation entry's script (the seven known upstream problems among them) on every
torch build at hand reproduces exactly where the entry applies (strict both ways, like the xfails), with a Python that
never imports this package; a passing check's script exits 0 and the same script fails under a fault injected into
pipelining.

One script per entry: an entry whose prefix covers several check ids runs the one `engine.entry_check_id` writes its
reproduction for (the fewest ranks, first in grammar order), so each known problem runs once per build, two scripts
at a time (CI has 2 cores). CI has the tox env's build only (`sys.executable`); the 2.12, 2.14 and 2.15 venvs of the
project's dev machine are used where they exist (the test names the missing one when they do not).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance.repro import engine
from conformance.suite import expectations
from graphs_faults import GRAPHS_FAULT_ENV
from training_faults import TRAINING_FAULT_ENV

pytest.importorskip("torch", reason="the reproduction scripts need torch")

SUPPORT = Path(__file__).parent / "support"
# The seven upstream problems this project found, each by the check id its expectation entry's reproduction uses.
SEVEN = {
    "eval() with adjacent local stages": "test_schedules.py::test_schedule_eval[ScheduleInterleaved1F1B-world1]",
    "empty first stage (split point before the first layer)":
        "test_split.py::test_split_points_at_edges[BEGINNING-layers.0]",
    "pipeline() twice on one module": "test_split.py::test_pipeline_twice_same_module",
    "tracer stages send to their own rank on gloo":
        "test_schedules.py::test_schedule_tracer[ScheduleInterleaved1F1B-world1]",
    "Schedule1F1B's declared plan off by one": "test_behaviour.py::test_behaviour_declared_plan[Schedule1F1B-world1]",
    "ZBV + FSDP2 reshard loses gradients":
        "test_composition.py::test_fully_shard[ScheduleZBVZeroBubble-reshard-world2]",
    "DDP with runtime inference asserts at step 2":
        "test_composition.py::test_distributed_data_parallel[ScheduleGPipe-world2]",
}
# Not 2.12: it is older than the pin and not encoded as expectations (README "Version axis"), and its multi-stage
# world-1 backward fails at random ("One of the differentiated Tensors appears to not have been used in the graph"
# hits a different check from run to run), so no script can be held to exit 0 or 1 there.
BUILDS = {"this env": sys.executable,
          "torch 2.14 venv": "/work/venv-t214/bin/python", "torch 2.15 venv": "/work/venv-t215/bin/python"}
# A script may find the API its check needs missing from the build (exit 2, saying so): the suite skips that check
# there as not applicable, so its entry, whatever its range, has nothing to reproduce on that build.
CANNOT_RUN = re.compile(r"^cannot run here: .*\b(has no|takes no)\b", re.MULTILINE)
PASSING = "test_schedules.py::test_schedule[ScheduleGPipe-world2-fp32]"
OWN_IMPORT = re.compile(r"^import time:.*\|\s+conformance(\.|$)", re.MULTILINE)


def plain_env(**extra: str) -> dict[str, str]:
    """The environment a maintainer runs the script in: no PYTHONPATH (the tests put tests/support on it)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def torch_version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-I", "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True, timeout=120, check=True, cwd="/").stdout
    major, minor = out.strip().split(".")[:2]
    return int(major), int(minor)


def run_script(python: str, script: Path, *flags: str, env: dict[str, str] | None = None):
    t0 = time.monotonic()
    proc = subprocess.run([python, *flags, script.name], cwd=script.parent, env=env or plain_env(),
                          capture_output=True, text=True, timeout=900, check=False)
    return proc, time.monotonic() - t0


def test_the_seven_are_expectation_entries():
    assert {engine.entry_check_id(e.prefix) for e in engine.all_entries()} >= set(SEVEN.values())


def entry_scripts() -> dict[str, list[str]]:
    """{check id its script is written for: the entries (file:line) it stands for}, every shipped entry of a device
    this host has (cpu, and all.txt run on cpu)."""
    out: dict[str, list[str]] = {}
    for e in engine.all_entries():
        if Path(e.file).stem in ("all", "cpu"):
            cid = engine.entry_check_id(e.prefix)
            assert cid is not None, f"{e.where}: no reproduction"  # test_repro.py names it too
            out.setdefault(cid, []).append(e.where)
    return out


def test_every_entry_has_its_script():
    """Coverage: every entry of every expectation file maps to a script (the issue's 'every entry points to its
    repro'); the ones of devices this host lacks are written (not run) in test_repro.py."""
    entries = engine.all_entries()
    assert all(engine.entry_check_id(e.prefix) for e in entries), [e.where for e in entries
                                                                   if not engine.entry_check_id(e.prefix)]
    assert sum(len(v) for v in entry_scripts().values()) == len(entries) >= 77


@pytest.mark.parametrize("build", list(BUILDS))
def test_every_entry_reproduces_exactly_where_it_applies(build, tmp_path):
    python = BUILDS[build]
    if not Path(python).exists():
        pytest.skip(f"{python} is absent: the {build} exists on the project's dev machine only")
    version = torch_version(python)
    entries = expectations.load("cpu", version)
    scripts = {cid: engine.write(cid, "cpu", tmp_path, python=python, run=False).script_path
               for cid in entry_scripts()}
    # -I: no PYTHONPATH, no user site, not the current folder; -X importtime lists every module every process
    # (the spawned ranks too) imports, so an import of this package, editable in the venv, would show.
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(scripts, pool.map(lambda p: run_script(python, p, "-I", "-X", "importtime"),
                                          scripts.values()), strict=False))
    wrong, table, codes = [], [], {0: 0, 1: 0, 2: 0}
    for cid, (proc, took) in runs.items():
        applies = [e.where for e in entries if cid.startswith(e.prefix)]
        lines = len(scripts[cid].read_text().splitlines())
        codes[proc.returncode] = codes.get(proc.returncode, 0) + 1
        table.append(f"{cid}: exit {proc.returncode} in {took:.1f} s, {lines} lines "
                     f"({'entry ' + ', '.join(applies) if applies else 'no entry applies'})")
        verdict = proc.stdout.strip().splitlines()[-1:] or [proc.stderr[-500:]]
        # A build without the API the check needs skips the check (not applicable), whatever the entry: exit 2.
        lacks_api = proc.returncode == 2 and CANNOT_RUN.search(proc.stdout) is not None
        ok = lacks_api or proc.returncode == (1 if applies else 0)
        if not ok:
            wrong.append(f"{cid}: exit {proc.returncode}, expected {1 if applies else 0}: {verdict[0][:600]}")
        if OWN_IMPORT.search(proc.stderr):
            wrong.append(f"{cid}: the script imported this package: {OWN_IMPORT.search(proc.stderr)[0]}")
        if lines >= 200:
            wrong.append(f"{cid}: {lines} lines, the limit is 199")
    print(f"\ntorch {version[0]}.{version[1]} ({python}): exit codes {codes}\n  " + "\n  ".join(table))
    assert not wrong, "\n".join(wrong)


def test_the_issue_body_records_what_happened_and_the_environment(tmp_path):
    cid = SEVEN["eval() with adjacent local stages"]
    written = engine.write(cid, "cpu", tmp_path, python=sys.executable, run=True)
    assert written.outcome is not None and written.outcome.code == 1, written.outcome
    body = written.issue_path.read_text()
    assert "exited 1: reproduced." in body and "can't steal_bwd_input" in body
    assert "PyTorch version:" in body and "- device names: " in body


def test_a_passing_check_exits_0_and_fails_under_a_fault_in_pipelining(tmp_path):
    """The faults the pool tests inject into the suite's ranks (tests/support/pool_faults.py), loaded here into the
    script's own processes through sitecustomize: a corrupted gradient and a dropped microbatch loss."""
    from pool_faults import SCHEDULE_FAULT_ENV  # here, as in test_pool_local: importing registers fault scenarios
    assert not [e for e in engine.all_entries() if PASSING.startswith(e.prefix)]
    script = engine.write(PASSING, "cpu", tmp_path, python=sys.executable, run=False).script_path
    proc, _ = run_script(sys.executable, script, "-I")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    faults = (("corrupt_grad", "differs from the unsplit model"), ("drop_microbatch", "3 microbatch losses"))
    for fault, shows in faults:
        env = plain_env(PYTHONPATH=str(SUPPORT / "repro_sitecustomize"), **{SCHEDULE_FAULT_ENV: fault})
        proc, _ = run_script(sys.executable, script, env=env)
        assert proc.returncode == 1 and shows in proc.stdout, (fault, proc.stdout[-2000:] + proc.stderr[-2000:])


# Training, split-backward and plan checks that pass on every build here, each with a fault of its area's fault module
# that must fail it (tests/support/training_faults.py, graphs_faults.py): the scripts assert what those checks assert.
# The pre-split and buffer-backup faults need torch >= 2.14 (arg_mbs, the backup), so this build's env cannot run them.
AREA_FAULTS = {
    "test_training.py::test_training_accumulation[summed-ScheduleGPipe-world1]":
        ("overwrite_grads", "differs from the unsplit model"),
    "test_training.py::test_training_unused_input[some-ScheduleGPipe-world2]":
        ("drop_partial_grads", "differs from the unsplit model"),
    "test_training.py::test_training_eval[loss_kwargs-ScheduleGPipe-world1]":
        ("eval_drops_loss_kwargs", "loss of microbatch 0"),
    "test_training.py::test_training_losses_released[step-ScheduleGPipe-world1]":
        ("losses_keep_graph", "hold autograd graphs"),
    "test_training.py::test_training_metadata[rng-ScheduleGPipe-world1]":
        ("inference_draws_rng", "shape inference drew random numbers"),
    "test_training.py::test_training_metadata[static-ScheduleInterleaved1F1B-world1]":
        ("static_meta_no_grad", "(step with static input_args/output_args) differs from the unsplit model"),
    "test_training.py::test_training_seq_len[ScheduleGPipe-world1]":
        ("stale_shapes", "(step at sequence length 5 after 3) differs from the unsplit model"),
    "test_graphs.py::test_split_backward_helpers[shared-fp32]": ("weight_double_count", "gradient of layers."),
    "test_graphs.py::test_split_backward_helpers[multi_output-fp32]":
        ("weight_first_output_only", "gradient of layers."),
    "test_graphs.py::test_plan_csv_round_trip[ScheduleInterleaved1F1B]":
        ("csv_rows_swapped", "REPRODUCED: ScheduleInterleaved1F1B's plan through _dump_csv/_load_csv"),
    "test_graphs.py::test_custom_action_handlers[ScheduleZBVZeroBubble]":
        ("custom_reduce_twice", "(twice: ['0REDUCE_GRAD', '3REDUCE_GRAD']"),
    "test_graphs.py::test_zero_bubble_refuses_compiled_stages[ScheduleZBVZeroBubble-nested]":
        ("compile_check_top_only", "accepted stages with a torch.compile'd module (nested)"),
    "test_graphs.py::test_dtensor_activations[runtime-world2]":
        ("dtensor_recv_scaled", "loss of microbatch 0 (step 0)"),
    "test_graphs.py::test_checkpoint_relayout[pp_to_unsplit]":
        ("optimizer_state_not_loaded", "pp_to_unsplit: after loading: layers.0.w_in.bias:exp_avg is not bit-equal"),
}
AREA_FAULT_ENV = {"test_training.py": TRAINING_FAULT_ENV, "test_graphs.py": GRAPHS_FAULT_ENV}  # each area's switch


def test_training_and_split_backward_scripts_fail_under_their_areas_faults(tmp_path):
    """Each script exits 0 on this build and 1 under its fault, saying what differs (two processes at a time)."""
    here = expectations.load("cpu", torch_version(sys.executable))  # the split backward's entries end before 2.13
    assert not [cid for cid in AREA_FAULTS for e in here if cid.startswith(e.prefix)]
    scripts = {cid: engine.write(cid, "cpu", tmp_path, python=sys.executable, run=False).script_path
               for cid in AREA_FAULTS}
    jobs = [(cid, {}) for cid in AREA_FAULTS] + [
        (cid, {"PYTHONPATH": str(SUPPORT / "repro_sitecustomize"), AREA_FAULT_ENV[cid.split("::")[0]]: fault})
        for cid, (fault, _) in AREA_FAULTS.items()]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda job: run_script(sys.executable, scripts[job[0]], env=plain_env(**job[1]))[0],
                             jobs))
    wrong = []
    for (cid, env), proc in zip(jobs, runs, strict=True):
        fault = next((v for k, v in env.items() if k != "PYTHONPATH"), None)
        shows = AREA_FAULTS[cid][1]
        if (proc.returncode, fault is None or shows in proc.stdout) != (0 if fault is None else 1, True):
            wrong.append(f"{cid} under {fault or 'no fault'}: exit {proc.returncode}: "
                         f"{(proc.stdout + proc.stderr)[-800:]}")
    assert not wrong, "\n".join(wrong)


# The faults that need torch >= 2.14 (pre-split inputs, the buffer backup around shape inference), on the venvs that
# have it: the scripts exit 0 there and 1 under the fault; with them the static-metadata and sequence-length scripts,
# which hold on those builds too.
FAULTS_214 = {
    "test_training.py::test_training_presplit[step-ScheduleGPipe-world1]": ("presplit_reversed", "loss of microbatch"),
    "test_training.py::test_training_presplit[mismatch-ScheduleGPipe-world1]":
        ("presplit_wrong_error", "raised RuntimeError"),
    "test_training.py::test_training_metadata[static-ScheduleInterleaved1F1B-world1]":
        AREA_FAULTS["test_training.py::test_training_metadata[static-ScheduleInterleaved1F1B-world1]"],
    "test_training.py::test_training_seq_len[ScheduleGPipe-world1]":
        AREA_FAULTS["test_training.py::test_training_seq_len[ScheduleGPipe-world1]"],
    "test_training.py::test_training_metadata[buffers-ScheduleGPipe-world1]":
        ("inference_keeps_buffers", "shape inference ran a forward"),
}


@pytest.mark.parametrize("build", ["torch 2.14 venv", "torch 2.15 venv"])
def test_pre_split_and_buffer_scripts_fail_under_their_faults(build, tmp_path):
    python = BUILDS[build]
    if not Path(python).exists():
        pytest.skip(f"{python} is absent: the {build} exists on the project's dev machine only")
    jobs = []
    for cid, (fault, shows) in FAULTS_214.items():
        script = engine.write(cid, "cpu", tmp_path, python=python, run=False).script_path
        jobs += [(script, {}, 0, ""), (script, {"PYTHONPATH": str(SUPPORT / "repro_sitecustomize"),
                                                TRAINING_FAULT_ENV: fault}, 1, shows)]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda job: run_script(python, job[0], env=plain_env(**job[1]))[0], jobs))
    wrong = [f"{script.name} {env}: exit {proc.returncode}, expected {want}: {(proc.stdout + proc.stderr)[-800:]}"
             for (script, env, want, shows), proc in zip(jobs, runs, strict=True)
             if proc.returncode != want or shows not in proc.stdout]
    assert not wrong, "\n".join(wrong)


# The receive-order options given through torch.distributed.config: per-direction communicators (2.14 only; on a CPU
# gloo group split_group needs a device-bound default group, so the check is not applicable there) and per-edge ones
# (2.15 on). On a build without the flag the script says so and exits 2, as the suite skips the check; on 2.15 the
# per-edge script exits 0 and 1 under a fault that corrupts what the stages' own communicators receive.
P2P_OPTION = "test_graphs.py::test_receive_order[{}-ScheduleInterleaved1F1B]"
P2P_CANNOT_RUN = {(2, 13): {"per_direction_p2p": "has no pipeline_per_direction_p2p",
                            "per_edge_p2p": "has no pipeline_per_edge_p2p"},
                  (2, 14): {"per_direction_p2p": "needs a device-bound default process group",
                            "per_edge_p2p": "has no pipeline_per_edge_p2p"},
                  (2, 15): {"per_direction_p2p": "has no pipeline_per_direction_p2p"}}


@pytest.mark.parametrize("build", list(BUILDS))
def test_receive_order_option_scripts(build, tmp_path):
    python = BUILDS[build]
    if not Path(python).exists():
        pytest.skip(f"{python} is absent: the {build} exists on the project's dev machine only")
    cannot = P2P_CANNOT_RUN[torch_version(python)]
    fault = {"PYTHONPATH": str(SUPPORT / "repro_sitecustomize"), GRAPHS_FAULT_ENV: "p2p_comms_recv_scaled"}
    jobs = [(option, {}, 2, why) for option, why in cannot.items()]
    if "per_edge_p2p" not in cannot:
        jobs += [("per_edge_p2p", {}, 0, "not reproduced"), ("per_edge_p2p", fault, 1, "differs from the default")]
    scripts = {o: engine.write(P2P_OPTION.format(o), "cpu", tmp_path, python=python, run=False).script_path
               for o, *_ in jobs}
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda job: run_script(python, scripts[job[0]], env=plain_env(**job[1]))[0], jobs))
    wrong = [f"{option} {env}: exit {proc.returncode}, expected {want} saying {shows!r}: {proc.stdout[-800:]}"
             f"{proc.stderr[-400:]}" for (option, env, want, shows), proc in zip(jobs, runs, strict=True)
             if proc.returncode != want or shows not in proc.stdout
             or (want == 2 and CANNOT_RUN.search(proc.stdout) is None)]
    assert not wrong, "\n".join(wrong)
