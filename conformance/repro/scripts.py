"""Script builders: a check's scenario written out as one standalone Python file (plain torch and the stdlib).

Each script holds its model, starts its own ranks (world 1 in its own process, like the suite; more ranks through
torch.multiprocessing's spawn with a TCP store on a free port), runs the check's scenario with the check's
parameters and asserts what the check asserts. Exit 1 and expected vs actual when the problem reproduces, 0 when
it does not, 2 when it cannot run here. Only the code a scenario needs is written, so each stays short enough to
paste into an upstream issue. Built as text here; nothing in this module imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from conformance.repro import templates as t
from conformance.repro.checkids import Scenario
from conformance.suite import bounds, tolerances
from conformance.suite.ranks import composition as composition_rank
from conformance.suite.ranks import graphs as graphs_rank
from conformance.suite.ranks import training as training_rank
from conformance.suite.ranks.schedules import SINGLE, default_microbatches, num_stages, stage_ids

DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Target:
    """Where the script runs: the device as the suite names it, its torch device type and backend."""

    name: str  # cpu, cuda, xpu, hpu, ...
    torch_type: str
    backend: str | None
    import_first: tuple[str, ...] = ()
    rank_env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Script:
    text: str
    title: str
    expected: str


def fill(template: str, **values: object) -> str:
    """Replace every `@NAME@` with `values[name]` (repr for non-str values); a missing name is a bug here."""

    def one(m: re.Match) -> str:
        v = values[m.group(1).lower()]
        return v if isinstance(v, str) else repr(v)

    return re.sub(r"@([A-Z_]+)@", one, template)


_TAG = re.compile(r"  # \[([a-z,]+)\]$")


def select(template: str, features: set[str]) -> str:
    """The template without the lines tagged for features the scenario lacks (`  # [a,b]`: kept with a or b)."""
    out = []
    for line in template.split("\n"):
        m = _TAG.search(line)
        if m is None:
            out.append(line)
        elif features & set(m.group(1).split(",")):
            out.append(line[: m.start()])
    return "\n".join(out)


SCHEDULE_TESTS = {  # check function -> (what runs, what the check expects)
    "test_schedule": ("one training step",
                      "every microbatch loss, the merged outputs and every gradient equal the unsplit model's"),
    "test_schedule_summed_grads": ("one training step with scale_grads=False",
                                   ("every loss, the outputs and every gradient (summed, not averaged) equal the "
                                    "unsplit model's")),
    "test_schedule_iterations": ("three training steps with SGD updates between them",
                                 "every loss, the outputs and every gradient of each step equal the unsplit model's"),
    "test_schedule_eval": ("eval()",
                           "eval() returns the unsplit model's losses and merged outputs and writes no gradient"),
    "test_schedule_tracer": ("one training step with stages built by pipeline() + build_stage",
                             "every loss, the outputs and every gradient equal the unsplit model's"),
    "test_schedule_kwargs": ("one training step with a per-sample keyword argument",
                             "every loss, the outputs and every gradient equal the unsplit model's"),
}
BEHAVIOUR_RULES = {
    "dependencies": "a microbatch's F on stage s runs after its F on s-1, B/I after F and after B/I on s+1, W after "
                    "I, each (stage, microbatch) exactly once per kind",
    "activation_bound": "microbatches in flight per stage and per rank stay within the schedule's documented bound",
    "declared_plan": "each rank executes exactly the compute actions its schedule declares (pipeline_order), in order",
    "zero_bubble_split": "an I step leaves every weight gradient untouched and its W step writes all of them",
    "no_growth": "the live tensors after every step from the 2nd on equal those after step 2",
}
COMPOSITION_KINDS = {
    "fsdp": "FSDP2 (fully_shard per block and at the stage root)",
    "ddp": "DistributedDataParallel stage modules",
    "tp": "tensor parallel (ColwiseParallel w_in, RowwiseParallel w_out)",
    "checkpoint": "activation checkpointing with dropout inside FSDP2 stages",
    "compile": "torch.compile'd blocks inside FSDP2 stages",
}


def _stages(schedule: str, world: int) -> dict[int, list[int]]:
    return {r: stage_ids(schedule, r, world) for r in range(world)}


def _constants(**values: object) -> str:
    """The scenario's constants, several `A, B = 1, 2` to a line up to 110 characters (torch dtypes by name)."""
    lines: list[tuple[list[str], list[str]]] = []
    for name, value in values.items():
        text = f"torch.{value}" if name == "DTYPE" and isinstance(value, str) else repr(value)
        names, texts = lines[-1] if lines else ([], [])
        if lines and name not in ("TITLE", "EXPECTED") and len(", ".join([*names, name, *texts, text])) < 105:
            names.append(name)
            texts.append(text)
        else:
            lines.append(([name], [text]))
    return "\n".join(f"{', '.join(n)} = {', '.join(v)}" for n, v in lines) + "\n"


def _tol(target: Target, dtype: str) -> tuple[float, float]:
    t = tolerances.tol(target.name, dtype)
    return t.rtol, t.atol


def _schedule(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    name, world = p["schedule"], sc.world
    dtype = DTYPE_NAMES[p.get("dtype", "fp32")]
    rtol, atol = _tol(target, dtype)
    n_st = num_stages(name, world)
    if p.get("constructor_error"):
        case = p["case"]
        if case == "too_few_microbatches":
            stages, n_st, n_mb = _stages(name, world), num_stages(name, world), 1
        elif case == "one_local_stage":
            stages, n_st, n_mb = {r: [r] for r in range(world)}, world, 2 * world
        else:
            stages = {r: [r, 2 * world - 1 - r, 2 * world + r] for r in range(world)}
            n_st, n_mb = 3 * world, 6 * world
        title = f"{name} accepts an invalid configuration ({case}, world {world})"
        expected = f"{name}'s constructor refuses {case.replace('_', ' ')} ({n_mb} microbatches, {n_st} stages)"
        consts = _constants(SCHEDULE=name, CASE=case, N_STAGES=n_st, N_MB=n_mb, STAGES=stages, RTOL=rtol,
                            ATOL=atol, TITLE=title, EXPECTED=expected)
        return consts + t.CONSTRUCTOR_ERROR, title, expected
    if p.get("option"):
        return _receive_order(sc, target)
    if sc.test in PLAN_CASES:
        return _plan(sc, target)
    if "placement" in p:
        return _compiled(sc, target)
    what, expected = SCHEDULE_TESTS[sc.test]
    layout = {"single": "one stage per rank", "looped": "two looped stages per rank",
              "v": "two stages per rank in a V"}[p["layout"]]
    title = f"{name}: {what} fails ({layout}, world {world}, {dtype}, {target.name}/{target.backend})"
    expected = f"{expected} (rtol={rtol}, atol={atol})"
    kwargs = bool(p.get("kwargs"))
    consts = _constants(SCHEDULE=name, N_STAGES=n_st, N_MB=default_microbatches(name, world),
                        STAGES=_stages(name, world), DTYPE=dtype, RTOL=rtol, ATOL=atol, D_HID=16, MB_SIZE=2,
                        N_LAYERS=8, SEED=0, LR=0.1, TRAIN=p.get("mode", "train") == "train", KWARGS=kwargs,
                        SCALE_GRADS=p.get("scale_grads", True), ITERATIONS=p.get("iterations", 1), TITLE=title,
                        EXPECTED=expected)
    features = {p.get("builder", "manual"), "names"}
    return consts + t.TRANSFORMER_LIKE + select(t.STAGES, features) + t.SCHEDULE_RUN, title, expected


def _receive_order(sc: Scenario, target: Target) -> tuple[str, str, str]:
    name, world, option = sc.params["schedule"], sc.world, sc.params["option"]
    config = graphs_rank.RECV_OPTIONS[option]  # (torch.distributed.config flag, stage attribute), or a kwarg
    how = f"torch.distributed.config.{config[0]}=True" if config else f"{name}({option}=True)"
    title = (f"{how} computes other numbers than the default receive order ({name}, world {world}, "
             f"{target.name}/{target.backend})")
    expected = (f"{how} changes {'which communicators carry' if config else 'when receives are posted for'} the "
                "stages' messages, not what the step computes: the same losses, merged outputs and gradients as the "
                "default, bit for bit")
    flag = {"FLAG": config[0], "ATTR": config[1], "UNBOUND": graphs_rank.UNBOUND_GROUP} if config else {}
    consts = _constants(SCHEDULE=name, N_STAGES=num_stages(name, world), N_MB=default_microbatches(name, world),
                        STAGES=_stages(name, world), DTYPE="float32", RTOL=0.0, ATOL=0.0, D_HID=16, MB_SIZE=2,
                        N_LAYERS=8, SEED=0, SCALE_GRADS=True, OPTIONS={} if config else {option: True}, **flag,
                        TITLE=title, EXPECTED=expected)
    features = {"config" if config else "kwarg"}
    body = (t.TRANSFORMER_LIKE + select(t.STAGES, {"manual", "options"}) + (t.CONFIG_FLAG if config else "")
            + select(t.RECEIVE_ORDER, features))
    return consts + body, title, expected


PLAN_CASES = {  # the plans-as-data checks: (title, expected)
    "test_plan_csv_round_trip": ("{name}'s plan through _dump_csv/_load_csv runs other actions or numbers", (
        "the plan dumped with _dump_csv and loaded with _load_csv into a bare _PipelineScheduleRuntime over fresh "
        "stages executes the same compute actions in the same order as the schedule (and as its pipeline_order "
        "declares) and computes the same losses, merged outputs and gradients, bit for bit")),
    "test_custom_action_handlers": ("{name}: custom action handlers fire wrongly or change the numbers", (
        f"handlers registered with register_custom_function for {', '.join(graphs_rank.CUSTOM_TYPES)} that do the "
        "built-in's work fire exactly once per such action of the lowered plan (pipeline_order_with_comms), in order, "
        "and the step computes the same losses, merged outputs and gradients as without them, bit for bit")),
}


def _plan(sc: Scenario, target: Target) -> tuple[str, str, str]:
    name, world = sc.params["schedule"], sc.world
    title, expected = PLAN_CASES[sc.test]
    title = f"{title.format(name=name)} (world {world}, {target.name}/{target.backend})"
    custom = sc.test == "test_custom_action_handlers"
    consts = _constants(SCHEDULE=name, N_STAGES=num_stages(name, world), N_MB=default_microbatches(name, world),
                        STAGES=_stages(name, world), DTYPE="float32", RTOL=0.0, ATOL=0.0, D_HID=16, MB_SIZE=2,
                        N_LAYERS=8, SEED=0, SCALE_GRADS=True, **({"CUSTOM_TYPES": graphs_rank.CUSTOM_TYPES}
                                                                 if custom else {}), TITLE=title, EXPECTED=expected)
    body = (t.TRANSFORMER_LIKE + select(t.STAGES, {"manual"}) + ("" if custom else t.PLAN_FN)
            + select(t.PLAN_RUN, {"custom" if custom else "csv"}))
    return consts + body, title, expected


def _compiled(sc: Scenario, target: Target) -> tuple[str, str, str]:
    name, world, placement = sc.params["schedule"], sc.world, sc.params["placement"]
    where = "the stage module" if placement == "top" else "a block nested in the stage module"
    title = f"{name} accepts stages holding a torch.compile'd module ({where}, {target.name}/{target.backend})"
    expected = (f"{name}'s constructor refuses stages whose module holds a torch.compile'd module ({where}) with the "
                f"documented RuntimeError ('...{graphs_rank.COMPILE_REFUSAL}...', pytorch#161904); nothing is compiled")
    n_st = num_stages(name, world)
    consts = _constants(SCHEDULE=name, PLACEMENT=placement, N_STAGES=n_st, N_MB=max(2, n_st),
                        STAGES=_stages(name, world), D=graphs_rank.D, REFUSAL=graphs_rank.COMPILE_REFUSAL,
                        TITLE=title, EXPECTED=expected)
    return consts + t.COMPILED_RUN, title, expected


def _dtensor(sc: Scenario, target: Target) -> tuple[str, str, str]:
    c, world, metadata = composition_rank, sc.world, sc.params["metadata"]
    rtol, atol = _tol(target, "float32")
    title = (f"PipelineStage with DTensor activations ({metadata} metadata) fails under Schedule1F1B (mesh pp={c.PP} x "
             f"tp={world // c.PP}, {target.name}/{target.backend})")
    how = "input_args/output_args given" if metadata == "static" else "inferred"
    expected = (f"with TP + sequence parallelism in each stage and DTensor activations sharded on the sequence "
                f"dimension crossing the boundary ({how}), every microbatch loss, full gradient and parameter over "
                f"{c.STEPS} SGD steps equal the unsplit model's (rtol={rtol}, atol={atol})")
    consts = _constants(METADATA=metadata, PP=c.PP, N_STAGES=c.PP, N_MB=graphs_rank.N_MB, RTOL=rtol, ATOL=atol,
                        D_MODEL=c.D_MODEL, SEQ=graphs_rank.SEQ, MB_SIZE=graphs_rank.MB, N_LAYERS=c.N_LAYERS,
                        STEPS=c.STEPS, LR=c.LR, SEED=c.SEED, TITLE=title, EXPECTED=expected)
    body = select(t.COMPOSITION_MODEL, {"nocheckpoint", "nomixed"}) + select(t.DTENSOR_RUN, {metadata})
    return consts + body, title, expected


def _relayout(sc: Scenario, target: Target) -> tuple[str, str, str]:
    c, case = composition_rank, sc.params["case"]
    rtol, atol = _tol(target, "float32")
    specs = [{"schedule": name, "pp": pp, "reshard": reshard, **({"stages": _stages(name, pp)} if pp > 1 else {})}
             for name, pp, reshard in graphs_rank.RELAYOUTS[case]]
    names = [f"{s['schedule']} pp={s['pp']}{', reshard_after_forward' if s['reshard'] else ''}" for s in specs]
    title = (f"torch.distributed.checkpoint from {names[0]} (FSDP2) into {names[1]}: parameters or optimizer state "
             f"differ (world {sc.world}, {target.name}/{target.backend})")
    expected = (f"model and Adam state saved from {names[0]} after one step and loaded into {names[1]} are bit-equal, "
                f"and after one more step on both too (within rtol={rtol}, atol={atol} where the data-parallel degree "
                "differs: another summation order)")
    consts = _constants(CASE=case, SRC=specs[0], DST=specs[1], N_MB=graphs_rank.RELAYOUT_MICROBATCHES, RTOL=rtol,
                        ATOL=atol, D_MODEL=c.D_MODEL, MB_SIZE=c.MB_SIZE, N_LAYERS=c.N_LAYERS, SEED=c.SEED,
                        ADAM_LR=graphs_rank.ADAM_LR, TITLE=title, EXPECTED=expected)
    body = t.RELAYOUT_RUN
    return consts + body, title, expected


def _behaviour(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    name, world, rule, mode = p["schedule"], sc.world, p["rule"], p["mode"]
    n_st = num_stages(name, world)
    n_mb = default_microbatches(name, world) if name in SINGLE else n_st
    rule_text = BEHAVIOUR_RULES[rule] + (f" ({mode})" if rule == "no_growth" else "")
    title = f"{name} breaks its documented behaviour: {rule.replace('_', ' ')} (world {world}, {target.name})"
    extra: dict[str, object] = {}
    if rule == "activation_bound":
        b = bounds.bound(name)
        extra = {"STAGE_LIMIT": {s: b.per_stage(n_mb, n_st, world, s) for s in range(n_st)},
                 "RANK_LIMIT": {r: b.per_rank(n_mb, n_st, world, r) for r in range(world)},
                 "STAGE_TEXT": b.stage_text, "RANK_TEXT": b.rank_text, "SOURCE": b.source}
    expected = rule_text + (f" (m={n_mb}, S={n_st}, p={world})" if rule == "activation_bound" else "")
    consts = _constants(SCHEDULE=name, N_STAGES=n_st, N_MB=n_mb, STAGES=_stages(name, world), DTYPE="float32",
                        RTOL=0.0, ATOL=0.0, D_HID=16, MB_SIZE=2, N_LAYERS=8, SEED=0, SCALE_GRADS=True, MODE=mode,
                        **extra, TITLE=title, EXPECTED=expected)
    features = {"manual", "split" if rule == "zero_bubble_split" else "nosplit"}
    features |= {"growth"} if rule == "no_growth" else {"plan"} if rule == "declared_plan" else set()
    body = (t.TRANSFORMER_LIKE + select(t.STAGES, features) + select(t.BEHAVIOUR_RUN, features)
            + (t.PLAN_FN if rule == "declared_plan" else "") + t.RULES[rule])
    return consts + body, title, expected


def _composition(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    if p["kind"] in ("dtensor", "relayout"):
        return (_dtensor if p["kind"] == "dtensor" else _relayout)(sc, target)
    name, world, kind = p["schedule"], sc.world, p["kind"]
    c = composition_rank
    pp, local = c.PP, p.get("local_stages")
    n_st = pp * local if local else pp if name in SINGLE else 2 * pp
    stages = {r: [r + k * pp for k in range(local)] for r in range(pp)} if local else _stages(name, pp)
    other = "tp" if kind == "tp" else "dp"
    dtype = "bfloat16" if p.get("mixed_precision") else "float32"
    rtol, atol = _tol(target, dtype)
    how = COMPOSITION_KINDS[kind] + (", reshard_after_forward=True" if kind == "fsdp" and p.get("reshard") else
                                     ", reshard_after_forward=False" if kind == "fsdp" else "")
    if p.get("mixed_precision"):
        how += ", MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)"
    title = (f"{name} with {how}{f', {local} stages per rank' if local else ''} fails (mesh pp={pp} x {other}="
             f"{world // pp}, {target.name}/{target.backend})")
    expected = (f"every microbatch loss, every full gradient and every parameter after each of {c.STEPS} SGD steps "
                f"equal the unsplit model's on the same global batch (rtol={rtol}, atol={atol})")
    consts = _constants(SCHEDULE=name, PP=pp, OTHER=other, N_STAGES=n_st, N_MB=4, STAGES=stages,
                        RTOL=rtol, ATOL=atol, D_MODEL=c.D_MODEL, MB_SIZE=c.MB_SIZE, N_LAYERS=c.N_LAYERS,
                        STEPS=c.STEPS, LR=c.LR, SEED=c.SEED, DROPOUT=c.DROPOUT if kind == "checkpoint" else 0.0,
                        RESHARD=bool(p.get("reshard")), MIXED=bool(p.get("mixed_precision")), TITLE=title,
                        EXPECTED=expected)
    features = {kind, "nocheckpoint" if kind != "checkpoint" else "checkpoint"}
    features |= {"fsdp"} if kind in ("checkpoint", "compile") else set()
    features |= {"mixed"} if p.get("mixed_precision") else {"nomixed"}
    body = select(t.COMPOSITION_MODEL, features) + select(t.WRAP, features) + select(t.COMPOSITION_RUN, features)
    return consts + body, title, expected


def _split(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    n = 8
    if p["case"] == "edges":
        specs, layers, check_output = [{p["layer"]: p["point"]}], [(0, n)], True
        title = (f"pipeline(): a split point {p['point']} {p['layer']} breaks the single stage "
                 f"({'empty first stage' if p['point'] == 'BEGINNING' else 'empty last stage'})")
        expected = (f"split_spec {{{p['layer']!r}: SplitPoint.{p['point']}}} cuts off nothing: one stage, "
                    "get_stage_module(0) holds the whole model and computes its output")
    elif p["case"] == "twice":
        specs, layers, check_output = [{"layers.4": "BEGINNING"}, {"layers.2": "BEGINNING"}], [(0, 2), (2, n)], False
        title = "pipeline() called twice on one module keeps the first call's split points"
        expected = ("a second pipeline() of the same module with {'layers.2': BEGINNING} (after {'layers.4': "
                    "BEGINNING}) gives 2 stages: layers 0-1 and 2-7")
    else:
        k, step = p["point"], n // p["n_stages"]
        cut = {f"layers.{j}": "BEGINNING" for j in range(step, n, step)} if k == "BEGINNING" else \
            {f"layers.{j - 1}": "END" for j in range(step, n, step)}
        specs, layers, check_output = [cut], [(s * step, (s + 1) * step) for s in range(p["n_stages"])], True
        title = f"pipeline(): split_spec with SplitPoint.{k} does not cut {p['n_stages']} equal stages"
        expected = f"split_spec {cut} gives {p['n_stages']} stages holding exactly their layers, same output"
    rtol, atol = _tol(target, "float32")
    consts = _constants(SPECS=specs, STAGE_LAYERS=layers, CHECK_OUTPUT=check_output, RTOL=rtol, ATOL=atol,
                        D_HID=16, N_LAYERS=n, SEED=0, TITLE=title, EXPECTED=expected)
    return consts + t.TRANSFORMER_LIKE + t.SPLIT_RUN, title, expected


TRAINING_CASES = {  # property -> (what runs, what the check expects, features of the template, API: first torch)
    "accumulation-scaled": ("two step() calls without zero_grad (scale_grads=True)",
                            "the gradients equal the unsplit model's over both steps, each step's mean, summed",
                            {"stepone", "accumulation"}, {}),
    "accumulation-summed": ("two step() calls without zero_grad (scale_grads=False)",
                            "the gradients equal the unsplit model's summed over both steps' microbatches",
                            {"stepone", "accumulation", "summed"}, {}),
    "eval-first": ("eval() as the first call", "the unsplit model's losses and outputs, no gradient written",
                   {"evalfirst"}, {"eval": "2.9"}),
    "eval-between": ("step, step, eval(), step",
                     ("eval() leaves the gradients the steps left (and gives the unsplit model's losses and outputs); "
                     "the next step is exact"), {"stepone", "between", "evalbetween"}, {"eval": "2.9"}),
    "eval-return_outputs_false": ("eval(return_outputs=False)", "the unsplit model's losses, no gradient written",
                                  {"stepone", "returnoutputs"}, {"eval": "2.9", "return_outputs": "2.10"}),
    "eval-loss_kwargs": ("eval(loss_kwargs=...)", ("the unsplit model's losses with the loss keyword, no gradient "
                         "written"), {"stepone", "losskwargs"}, {"eval": "2.9", "loss_kwargs": "2.13"}),
    "losses_released-step": ("the losses a step() fills", "the losses hold no autograd graph with saved tensors",
                             {"stepone", "losses"}, {}),
    "losses_released-eval": ("the losses an eval() fills", "the losses hold no autograd graph with saved tensors",
                             {"stepone", "between", "losses"}, {"eval": "2.9"}),
    "presplit-step": ("step(arg_mbs=, target_mbs=)", ("pre-split microbatches give the numbers of the schedule's own "
                      "split"), {"stepone", "presplit"}, {"arg_mbs": "2.14"}),
    "presplit-eval": ("eval(arg_mbs=, target_mbs=)", ("pre-split microbatches give the numbers of the schedule's own "
                      "split, no gradient written"), {"stepone", "presplit"}, {"eval": "2.9", "arg_mbs": "2.14"}),
    "presplit-mismatch": ("refusing pre-split containers of the wrong length or type", (
        "on every rank, before any communication, kwarg_mbs of one entry fewer or more than n_microbatches raise "
        "ValueError, kwarg_mbs as a tuple (not a list) and arg_mbs of tensors (not tuples) TypeError"),
        {"stepone", "mismatch"}, {"arg_mbs": "2.14", "kwarg_mbs": "2.14"}),
    "metadata-static": ("stages given static input_args/output_args", (
        "stages given input_args/output_args give the numbers of runtime inference: every microbatch loss, the merged "
        "outputs and every gradient equal the unsplit model's"), {"static"}, {}),
    "metadata-buffers": ("runtime shape inference", ("after the first step every buffer (BatchNorm running stats, a "
                         "forward counter) equals the unsplit model's after the same microbatches"),
                         {"stepone", "buffers"}, {}),
    "metadata-rng": ("runtime shape inference", ("after the first step the random generator is where the step's own "
                     "forwards leave it"), {"stepone", "rng"}, {}),
    "seq_len": (f"the sequence length changing between steps ({training_rank.SEQ}, {training_rank.LONGER_SEQ})", (
        "each step gives the unsplit model's losses, outputs and gradients at its length, or the longer one is "
        "refused with a shape error (PipeliningShapeError or a message naming the shape), never wrong numbers"),
        {"seqlen"}, {}),
    "unused_input-some": ("a stage input without gradient on some microbatches", ("the unsplit model's gradients, "
                          "and none where it has none (None, not zeros)"), {"stepone", "unused"}, {}),
    "unused_input-never": ("a stage input without gradient on every microbatch", ("the unsplit model's gradients, "
                           "and none where it has none (None, not zeros)"), {"stepone", "unused"}, {}),
}


def _training(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    name, world, case = p["schedule"], sc.world, p["case"]
    what, expected, features, needs = TRAINING_CASES[case]
    rtol, atol = _tol(target, "float32")
    n_st = num_stages(name, world)
    title = f"{name}: {what} fails (world {world}, {target.name}/{target.backend})"
    expected = f"{expected} (rtol={rtol}, atol={atol})"
    consts = _constants(SCHEDULE=name, CASE=case, N_STAGES=n_st, N_MB=training_rank.microbatches(name, world),
                        STAGES=_stages(name, world), RTOL=rtol, ATOL=atol, D=training_rank.D,
                        D_AUX=training_rank.D_AUX, SEQ=training_rank.SEQ, MB_SIZE=training_rank.MB_SIZE,
                        N_LAYERS=training_rank.N_LAYERS, SEED=training_rank.SEED,
                        LOSS_SCALE=training_rank.LOSS_SCALE, PRESPLIT_TRAIN=case == "presplit-step",
                        FLAGS={"unused_input-some": "some", "unused_input-never": "no"}.get(case, "on"),
                        NEEDS=needs, **({"LONGER_SEQ": training_rank.LONGER_SEQ} if case == "seq_len" else {}),
                        TITLE=title, EXPECTED=expected)
    if not case.startswith("losses_released") and case != "presplit-mismatch":  # they judge the losses / errors only
        features = features | {"compare"} | ({"traincheck"} if case != "eval-first" else set())
        features |= {"evalcheck"} if case.startswith("eval") or case == "presplit-eval" else set()
    features |= set() if "evalcheck" in features else {"notevalcheck"}
    features |= set() if "static" in features else {"runtime"}
    body = select(t.TRAINING_MODEL, features) + select(t.TRAINING_RUN, features)
    return consts + body, title, expected


def _graph_split(sc: Scenario, target: Target) -> tuple[str, str, str]:
    p = sc.params
    kind, dtype = p["model"], DTYPE_NAMES[p["dtype"]]
    rtol, atol = _tol(target, dtype)
    helpers = "schedule" not in p
    label = {"shared": "a weight used at several sites", "multi_output": "a custom autograd Function with two "
             "outputs", "lstm": "an nn.LSTM (output and final hidden state)"}[kind]
    if helpers:
        title = f"stage_backward_input/_weight: wrong gradients with {label} ({dtype}, {target.name})"
        expected = ("stage_backward_input then stage_backward_weight on a two-block stage give the input gradient and "
                    f"every weight gradient of one plain autograd backward (rtol={rtol}, atol={atol})")
        consts = _constants(N_BLOCKS=2, N_MB=1, STAGES={0: [0, 1]}, DTYPE=dtype, RTOL=rtol, ATOL=atol, D=graphs_rank.D,
                            SEQ=graphs_rank.SEQ, MB=graphs_rank.MB, TITLE=title, EXPECTED=expected)
    else:
        name, world = p["schedule"], sc.world
        title = (f"{name}: the split backward fails with {label} (world {world}, {dtype}, "
                 f"{target.name}/{target.backend})")
        expected = (f"every microbatch loss and every parameter gradient equal the unsplit model's (rtol={rtol}, "
                    f"atol={atol}, low precision: atol scaled by the largest entry)")
        consts = _constants(SCHEDULE=name, N_BLOCKS=num_stages(name, world), N_MB=graphs_rank.N_MB,
                            STAGES=_stages(name, world), DTYPE=dtype, RTOL=rtol, ATOL=atol, D=graphs_rank.D,
                            SEQ=graphs_rank.SEQ, MB=graphs_rank.MB, TITLE=title, EXPECTED=expected)
    features = {kind.replace("_", ""), "helpers" if helpers else "schedule"}
    return consts + select(t.SPLIT_BACKWARD, features), title, expected


BUILDERS = {"schedules": _schedule, "behaviour": _behaviour, "composition": _composition, "split": _split,
            "training": _training, "graphs": _graph_split}


def build(sc: Scenario, target: Target, filename: str) -> Script:
    """The whole script for one scenario on one target."""
    if target.backend is None and sc.area not in ("split",):
        raise ValueError(f"{target.name} has no collective backend")
    body, title, expected = BUILDERS[sc.area](sc, target)
    head = fill(t.HEADER, title=title, check_id=sc.check_id, check_id_r=repr(sc.check_id), filename=filename,
                expected=expected, torch_type=repr(target.torch_type), backend=repr(target.backend), world=sc.world,
                import_first=tuple(target.import_first), rank_env=dict(target.rank_env or {}),
                process_group=sc.area != "split" and not (sc.area == "graphs" and sc.world == 1))
    # the suite's ranks bind their group to the device; only the P2P options' split_group needs it (documented)
    bind = sc.test == "test_receive_order" and graphs_rank.RECV_OPTIONS[sc.params["option"]] is not None
    launcher = select(t.LAUNCHER, {"bind" if bind else "nobind"})
    text = head + body + select(t.COMMON, set() if sc.area == "behaviour" else {"close"}) + launcher
    # one blank line between definitions: the script is read in an issue, where length counts more than PEP 8
    return Script(re.sub(r"\n\n\n+", "\n\n", text), title, expected)
