"""Fault injection for the single-process checks: break pipelining on purpose, run checks, collect outcomes.

Used two ways: as a pytest plugin inside a conformance-suite subprocess (`-p checkfaults`, which applies the
fault named for each check only while that check runs, so one process carries many faults), and from the
project's tests through `run_checks()`, which starts that subprocess and returns {check id: Outcome}.
One subprocess per batch keeps the cost of `import torch` (3-5 s) to once per batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "conformance" / "suite" / "checks"
MAP_ENV = "CONFORMANCE_FAULT_MAP"
OUT_ENV = "CONFORMANCE_FAULT_OUT"


# --- the faults: each patches torch's pipelining for the duration of one check --------------------------------

def _shift_split_boundary(mp):
    """Every `layers.k` in a split spec lands one layer later (an off-by-one in split placement)."""
    from torch.distributed.pipelining import _IR

    orig = _IR.annotate_split_points

    def shifted(mod, spec):
        out = {}
        for name, point in spec.items():
            head, _, idx = name.rpartition(".")
            out[f"{head}.{int(idx) + 1}" if idx.isdigit() and int(idx) < 7 else name] = point
        return orig(mod, out)

    mp.setattr(_IR, "annotate_split_points", shifted)


def _ignore_split_end(mp):
    """SplitPoint.END entries are dropped: only BEGINNING splits."""
    from torch.distributed.pipelining import _IR

    orig = _IR.annotate_split_points
    mp.setattr(_IR, "annotate_split_points",
               lambda mod, spec: orig(mod, {k: v for k, v in spec.items() if v != _IR.SplitPoint.END}))


def _drop_pipe_split(mp):
    """`pipe_split()` markers in forward do nothing."""
    import torch.distributed.pipelining as pp

    mp.setattr(pp, "pipe_split", lambda: None)


def _upcast_bf16_outputs(mp):
    """The pipe returns bf16 outputs as fp32."""
    import torch
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.forward

    def forward(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        return type(out)(o.float() if isinstance(o, torch.Tensor) and o.dtype == torch.bfloat16 else o for o in out)

    mp.setattr(_IR.Pipe, "forward", forward)


def _perturb_outputs(mp):
    """The pipe's fp32 outputs are off by one part in 10^4 (a numerics bug tolerances must not hide)."""
    import torch
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.forward

    def forward(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        return type(out)(o * 1.0001 if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in out)

    mp.setattr(_IR.Pipe, "forward", forward)


def _lose_last_parameter(mp):
    """The last stage forgets one parameter (lost in the split)."""
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.__init__

    def init(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        last = self.get_stage_module(self.num_stages - 1)
        name, _ = list(last.named_parameters())[-1]
        owner, _, leaf = name.rpartition(".")
        delattr(last.get_submodule(owner) if owner else last, leaf)

    mp.setattr(_IR.Pipe, "__init__", init)


def _buffers_stay_behind(mp):
    """Buffers are not carried into the last stage (its layers' causal masks go missing)."""
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.__init__

    def init(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        last = self.get_stage_module(self.num_stages - 1)
        for name, _ in list(last.named_buffers()):
            owner, _, leaf = name.rpartition(".")
            delattr(last.get_submodule(owner) if owner else last, leaf)

    mp.setattr(_IR.Pipe, "__init__", init)


def _forget_replicated(mp):
    """Pipe does not record parameters shared across stages."""
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.__init__

    def init(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        self.replicated_params = []

    mp.setattr(_IR.Pipe, "__init__", init)


def _accept_spec_and_policy(mp):
    """`pipeline()` silently ignores split_policy when split_spec is also given."""
    import torch.distributed.pipelining as pp

    orig = pp.pipeline

    def pipeline(module, mb_args, mb_kwargs=None, split_spec=None, split_policy=None):
        return orig(module, mb_args, mb_kwargs, split_spec=split_spec)

    mp.setattr(pp, "pipeline", pipeline)


def _scale_output_grads(mp):
    """`stage_backward` of every non-last stage sees output gradients 1% too large (corrupted grads)."""
    from torch.distributed.pipelining import _backward

    orig = _backward.stage_backward

    def stage_backward(stage_output, output_grads, input_values, *a, **kw):
        if output_grads is not None:
            output_grads = [g * 1.01 if g is not None else g for g in output_grads]
        return orig(stage_output, output_grads, input_values, *a, **kw)

    mp.setattr(_backward, "stage_backward", stage_backward)


def _drop_input_grads(mp):
    """`stage_backward_input` returns no input gradients (the previous stage gets nothing)."""
    from torch.distributed.pipelining import _backward

    orig = _backward.stage_backward_input

    def stage_backward_input(*a, **kw):
        dinputs, groups = orig(*a, **kw)
        return tuple(None for _ in dinputs), groups

    mp.setattr(_backward, "stage_backward_input", stage_backward_input)


def _skip_weight_grads(mp):
    """`stage_backward_weight` computes nothing: deferred weight gradients never arrive."""
    from torch.distributed.pipelining import _backward

    mp.setattr(_backward, "stage_backward_weight", lambda weights, param_groups, retain_graph=False: ())


def _kwargs_not_chunked(mp):
    """`split_args_kwargs_into_chunks` hands every microbatch the full kwargs."""
    from torch.distributed.pipelining import microbatch

    orig = microbatch.split_args_kwargs_into_chunks

    def split(args, kwargs, chunks, args_chunk_spec=None, kwargs_chunk_spec=None):
        a, _ = orig(args, None, chunks, args_chunk_spec, None)
        return a, [dict(kwargs or {}) for _ in a]

    mp.setattr(microbatch, "split_args_kwargs_into_chunks", split)


def _chunk_dim_ignored(mp):
    """`TensorChunkSpec.split_dim` is ignored: everything splits along dim 0."""
    from torch.distributed.pipelining import microbatch

    orig = microbatch._split_tensor
    mp.setattr(microbatch, "_split_tensor", lambda t, spec, n: orig(t, microbatch.TensorChunkSpec(0), n))


def _chunk_not_tensor_split(mp):
    """Uneven rows split like `torch.chunk` (3,3,3,1) instead of `torch.tensor_split` (3,3,2,2)."""
    import torch
    from torch.distributed.pipelining import microbatch

    mp.setattr(microbatch, "_split_tensor", lambda t, spec, n: torch.chunk(t, n, spec.split_dim))


def _merge_reversed(mp):
    """`merge_chunks` concatenates the chunks in reverse order."""
    from torch.distributed.pipelining import microbatch

    orig = microbatch.merge_chunks
    mp.setattr(microbatch, "merge_chunks", lambda chunks, spec: orig(list(reversed(chunks)), spec))


def _old_torch(mp):
    """The installed torch reports itself as 2.4.0 (the first pipelining release)."""
    from conformance.torchenv import api

    mp.setattr(api, "torch_version", lambda: "2.4.0")


def _tf32_left_on(mp):
    """`Pipe.forward` turns TF32 on (legacy flags and matmul precision) and leaves it on."""
    import torch
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.forward

    def forward(self, *args, **kwargs):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        return orig(self, *args, **kwargs)

    mp.setattr(_IR.Pipe, "forward", forward)


def _tf32_inside_forward(mp):
    """`Pipe.forward` runs the stages with TF32 on (the newer fp32_precision API) and restores it afterwards."""
    import torch
    from torch.distributed.pipelining import _IR

    orig = _IR.Pipe.forward

    def forward(self, *args, **kwargs):
        matmul = torch.backends.cuda.matmul
        old = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            return orig(self, *args, **kwargs)
        finally:
            matmul.fp32_precision = old

    mp.setattr(_IR.Pipe, "forward", forward)


def _default_dtype_left(mp):
    """`pipeline()` switches the default dtype to float64 while tracing and never switches it back."""
    import torch
    import torch.distributed.pipelining as pp

    orig = pp.pipeline

    def pipeline(*args, **kwargs):
        pipe = orig(*args, **kwargs)
        torch.set_default_dtype(torch.float64)
        return pipe

    mp.setattr(pp, "pipeline", pipeline)


def _grad_mode_left_off(mp):
    """`stage_backward` switches grad mode off and leaves it off."""
    import torch
    from torch.distributed.pipelining import _backward

    orig = _backward.stage_backward

    def stage_backward(*a, **kw):
        out = orig(*a, **kw)
        torch.set_grad_enabled(False)
        return out

    mp.setattr(_backward, "stage_backward", stage_backward)


def _deterministic_left_on(mp):
    """`stage_backward_weight` turns deterministic-only algorithms and cuDNN benchmark on and leaves them."""
    import torch
    from torch.distributed.pipelining import _backward

    orig = _backward.stage_backward_weight

    def stage_backward_weight(*a, **kw):
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = True
        return orig(*a, **kw)

    mp.setattr(_backward, "stage_backward_weight", stage_backward_weight)


def _autocast_left_on(mp):
    """`split_args_kwargs_into_chunks` enables autocast on the tensors' device type and leaves it enabled."""
    import torch
    from torch.distributed.pipelining import microbatch

    orig = microbatch.split_args_kwargs_into_chunks

    def split(args, kwargs, chunks, *a, **kw):
        device_type = next((t.device.type for t in args if isinstance(t, torch.Tensor)), "cpu")
        torch.set_autocast_enabled(device_type, True)
        return orig(args, kwargs, chunks, *a, **kw)

    mp.setattr(microbatch, "split_args_kwargs_into_chunks", split)


# Faults that change torch's global state: undone after their check, so the next check starts clean.
NUMERICS_FAULTS = ("tf32_left_on", "tf32_inside_forward", "default_dtype_left", "grad_mode_left_off",
                   "deterministic_left_on", "autocast_left_on")


FAULTS = {f.__name__.lstrip("_"): f for f in (
    _shift_split_boundary, _ignore_split_end, _drop_pipe_split, _upcast_bf16_outputs, _perturb_outputs,
    _lose_last_parameter, _buffers_stay_behind, _forget_replicated, _accept_spec_and_policy, _scale_output_grads,
    _drop_input_grads,
    _skip_weight_grads, _kwargs_not_chunked, _chunk_dim_ignored, _chunk_not_tensor_split, _merge_reversed,
    _old_torch, _tf32_left_on, _tf32_inside_forward, _default_dtype_left, _grad_mode_left_off, _deterministic_left_on,
    _autocast_left_on,
)}


# --- the plugin side (inside the conformance-suite subprocess) -------------------------------------------------

_results: dict[str, dict] = {}
EXPECTATIONS_ENV = "CONFORMANCE_TEST_EXPECTATIONS_DIR"


def pytest_configure(config: pytest.Config) -> None:
    # lets a test point the suite at its own expectation files instead of the shipped ones
    folder = os.environ.get(EXPECTATIONS_ENV)
    if folder:
        from conformance.suite import expectations

        expectations.DIR = folder


def _fault_for(item: pytest.Item) -> str | None:
    mapping = json.loads(os.environ.get(MAP_ENV, "{}"))
    return mapping.get(_short(item.nodeid))


def _short(nodeid: str) -> str:
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    name = _fault_for(item)
    if name is None:
        return (yield)
    with pytest.MonkeyPatch.context() as mp:
        FAULTS[name](mp)
        try:
            return (yield)
        finally:
            if name in NUMERICS_FAULTS:
                from conformance.suite import numerics_state

                numerics_state.restore_defaults()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    # the version fault must be active when a check calls api.require(), which may be in a fixture
    name = _fault_for(item)
    if name != "old_torch":
        return (yield)
    with pytest.MonkeyPatch.context() as mp:
        FAULTS[name](mp)
        return (yield)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    key = _short(report.nodeid)
    entry = _results.setdefault(key, {"outcome": "passed", "message": ""})
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry.update(outcome="xpassed" if report.passed else "xfailed", message=str(report.wasxfail))
    elif report.skipped and hasattr(report, "wasxfail"):
        entry.update(outcome="xfailed", message=str(report.wasxfail))
    elif report.failed:
        entry.update(outcome="failed", message=report.longreprtext)
    elif report.skipped:
        entry.update(outcome="skipped", message=report.longrepr[2] if isinstance(report.longrepr, tuple) else "")


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get(OUT_ENV)
    if out:
        Path(out).write_text(json.dumps(_results))


# --- the runner side (in the project's tests) ------------------------------------------------------------------

@dataclass
class Outcome:
    outcome: str
    message: str


def run_checks(ids: list[str], tmp_path: Path, faults: dict[str, str] | None = None, env: dict | None = None,
               args: tuple[str, ...] = ()) -> tuple[dict[str, Outcome], str]:
    """Run the named checks (`test_split.py::test_x[id]`) in one suite subprocess on CPU, each with its fault.

    Returns ({check id: Outcome}, combined output). A check missing from the result was not run.
    """
    out = tmp_path / f"outcomes-{len(list(tmp_path.glob('outcomes-*')))}.json"
    environ = dict(os.environ, **(env or {}))
    environ[MAP_ENV] = json.dumps(faults or {})
    environ[OUT_ENV] = str(out)
    environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-p", "conformance.suite.plugin", "-p", "checkfaults",
           "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS), "--device", "cpu", "-q",
           *args, *[str(CHECKS / i) for i in ids]]
    proc = subprocess.run(cmd, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    if not out.exists():
        raise AssertionError(f"the suite subprocess wrote no outcomes (exit {proc.returncode}):\n{output[-4000:]}")
    data = json.loads(out.read_text())
    return {k: Outcome(**v) for k, v in data.items()}, output


# --- the fault catalogue: which check must catch which fault, and what its message must say ---------------------

@dataclass(frozen=True)
class Case:
    area: str  # split, backward, microbatch, api
    check: str  # check id under conformance/suite/checks
    fault: str  # key of FAULTS
    expect: str  # outcome under the fault
    says: tuple[str, ...]  # fragments the failure message / skip reason must contain


CASES: tuple[Case, ...] = (
    Case("split", "test_split.py::test_split_points[BEGINNING-4]", "shift_split_boundary", "failed",
         ("pipeline:", "state_dict keys of stage 0", "layers.1.net1.bias")),
    Case("split", "test_split.py::test_seed_split_begin_2stages", "shift_split_boundary", "failed", ("pipeline:",)),
    Case("split", "test_split.py::test_split_points[END-2]", "ignore_split_end", "failed",
         ("pipeline:", "num_stages", "on cpu: expected 2, got 1")),
    Case("split", "test_split.py::test_split_begin_matches_end[layers.4]", "ignore_split_end", "failed",
         ("SplitPoint.END:", "num_stages")),
    Case("split", "test_split.py::test_pipe_split_markers[4]", "drop_pipe_split", "failed",
         ("pipe_split:", "num_stages", "on cpu: expected 4, got 1")),
    Case("split", "test_split.py::test_pipe_numerics[TransformerBlock-bf16]", "upcast_bf16_outputs", "failed",
         ("Pipe.forward:", "dtype on cpu", "expected torch.bfloat16, got torch.float32")),
    Case("split", "test_split.py::test_pipe_numerics[MultiIO-fp32]", "perturb_outputs", "failed",
         ("Pipe.forward:", "differs from the unsplit model on cpu (float32")),
    Case("split", "test_split.py::test_split_state_dict[TransformerBlock]", "lose_last_parameter", "failed",
         ("pipeline:", "in no stage", "layers.3.mlp.2.bias")),
    Case("split", "test_split.py::test_split_buffers_follow_stage", "buffers_stay_behind", "failed",
         ("pipeline:", "buffers of stage 1", "layers.2.causal_mask")),
    Case("split", "test_split.py::test_split_tied_parameters", "forget_replicated", "failed",
         ("Pipe.replicated_params:", "shared parameter records")),
    Case("split", "test_split.py::test_split_invalid[spec_and_policy]", "accept_spec_and_policy", "failed",
         ("pipeline:", "split_spec and split_policy together", "got no exception")),
    Case("backward", "test_backward.py::test_stage_backward[TransformerLike-fp32]", "scale_output_grads", "failed",
         ("stage_backward:", "parameter gradient of 'layers.0.net1", "cpu (fp32)")),
    Case("backward", "test_backward.py::test_stage_backward[EmbeddingLM-bf16]", "scale_output_grads", "failed",
         ("stage_backward:", "cpu (bf16)", "bfloat16")),
    Case("backward", "test_backward.py::test_stage_backward_microbatches[MultiIO-2]", "scale_output_grads", "failed",
         ("stage_backward:", "over 2 microbatches")),
    Case("backward", "test_backward.py::test_stage_backward_input_weight[TransformerBlock-fp32]", "drop_input_grads",
         "failed", ("stage_backward",)),
    Case("backward", "test_backward.py::test_stage_backward_input_weight[KwargsModel-bf16]", "skip_weight_grads",
         "failed", ("stage_backward_weight:", "expected a gradient, got None")),
    Case("microbatch", "test_microbatch.py::test_kwargs_chunked", "kwargs_not_chunked", "failed",
         ("split_args_kwargs_into_chunks:", "kwarg 'mask' chunk 0 shape on cpu: expected (2, 4), got (8, 4)")),
    Case("microbatch", "test_microbatch.py::test_split_merge_roundtrip[2-fp32]", "kwargs_not_chunked", "failed",
         ("split_args_kwargs_into_chunks:", "kwarg chunk 0 shape")),
    Case("microbatch", "test_microbatch.py::test_chunk_spec_dim[1]", "chunk_dim_ignored", "failed",
         ("TensorChunkSpec:", "chunk 0 along dim 1 shape")),
    Case("microbatch", "test_microbatch.py::test_chunk_spec_from_dict", "chunk_dim_ignored", "failed",
         ("TensorChunkSpec.from_dict:", "'mask' chunk 0 (dim 1)")),
    Case("microbatch", "test_microbatch.py::test_uneven_split[10-4]", "chunk_not_tensor_split", "failed",
         ("split_args_kwargs_into_chunks:", "chunk shapes for 10 rows into 4 chunks")),
    Case("microbatch", "test_microbatch.py::test_split_merge_roundtrip[4-int64]", "merge_reversed", "failed",
         ("merge_chunks:", "merged args (int64)")),
    Case("split", "test_split.py::test_numerics_state_unchanged", "tf32_left_on", "failed",
         ("Pipe.forward: changed torch's global numerics state", "torch.backends.cuda.matmul.allow_tf32: False -> True",
          "torch.get_float32_matmul_precision(): highest -> high")),
    Case("backward", "test_backward.py::test_numerics_state_unchanged", "grad_mode_left_off", "failed",
         ("stage_backward: changed torch's global numerics state", "torch.is_grad_enabled(): True -> False")),
    Case("microbatch", "test_microbatch.py::test_numerics_state_unchanged", "autocast_left_on", "failed",
         ("split_args_kwargs_into_chunks: changed torch's global numerics state",
          "torch.is_autocast_enabled('cpu'): False -> True")),
    Case("api", "test_backward.py::test_stage_backward_input_weight[TransformerLike-fp32]", "old_torch", "skipped",
         ("not applicable: stage_backward_input needs torch >= 2.5 (this build 2.4.0)",)),
    Case("api", "test_split.py::test_pipe_split_markers[2]", "old_torch", "passed", ()),
)

_batches: dict[bool, tuple[dict[str, Outcome], str]] = {}


def batch(tmp_path_factory: pytest.TempPathFactory, faulted: bool) -> tuple[dict[str, Outcome], str]:
    """Every case's check in one suite subprocess, with its fault (faulted) or without; run once per session."""
    if faulted not in _batches:
        ids = list(dict.fromkeys(c.check for c in CASES))
        faults = {c.check: c.fault for c in CASES} if faulted else {}
        _batches[faulted] = run_checks(ids, tmp_path_factory.mktemp("faulted" if faulted else "clean"), faults)
    return _batches[faulted]


def cases(area: str) -> list:
    return [pytest.param(c, id=f"{c.fault}-{c.check.split('::')[1]}") for c in CASES if c.area == area]


def assert_caught(case: Case, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Under its fault, the case's check ends as the case expects and says what it should."""
    __tracebackhide__ = True
    outcomes, output = batch(tmp_path_factory, faulted=True)
    got = outcomes.get(case.check)
    assert got is not None, f"{case.check} did not run:\n{output[-3000:]}"
    assert got.outcome == case.expect, f"{case.check} under fault {case.fault}: {got.outcome}\n{got.message[-2000:]}"
    for fragment in case.says:
        assert fragment in got.message, f"{case.check} message lacks {fragment!r}:\n{got.message[-2000:]}"


def assert_clean(case: Case, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without any fault the same check passes, so the failure above came from the fault."""
    __tracebackhide__ = True
    outcomes, output = batch(tmp_path_factory, faulted=False)
    got = outcomes.get(case.check)
    assert got is not None, f"{case.check} did not run:\n{output[-3000:]}"
    assert got.outcome == "passed", f"{case.check} without a fault: {got.outcome}\n{got.message[-2000:]}"
