"""Which torch release first has each pipelining API, and why a check is not applicable to a build that lacks one.

A check that needs an API this torch build lacks is *not applicable*: skipped (by `conformance.suite.applicable`'s
`require()`) with the reason `missing_reason()` gives, which names the version it needs, never a failure. The table
is the single source for these versions (from DESIGN.md, "API by version"); checks name the API, not the version.
No pytest here (torchenv runs in every process); no torch at import time: check modules import it at module level.
"""

from __future__ import annotations

import re

from conformance.protocol.outcomes import not_applicable

# API name -> first torch release (major, minor) that has it.
SINCE: dict[str, tuple[int, int]] = {
    # 2.4: first release of torch.distributed.pipelining
    "pipeline": (2, 4),
    "Pipe": (2, 4),
    "SplitPoint": (2, 4),
    "pipe_split": (2, 4),
    "PipelineStage": (2, 4),
    "build_stage": (2, 4),
    "ScheduleGPipe": (2, 4),
    "Schedule1F1B": (2, 4),
    "ScheduleInterleaved1F1B": (2, 4),
    "ScheduleLoopedBFS": (2, 4),
    "TensorChunkSpec": (2, 4),
    "TensorChunkSpec.from_tuple": (2, 4),
    "TensorChunkSpec.from_dict": (2, 4),
    "split_args_kwargs_into_chunks": (2, 4),
    "merge_chunks": (2, 4),
    "stage_backward": (2, 4),
    # 2.5: zero-bubble (backward split into input and weight parts)
    "ScheduleInterleavedZeroBubble": (2, 5),
    "get_schedule_class": (2, 5),
    "dw_builder": (2, 5),
    "stage_backward_input": (2, 5),
    "stage_backward_weight": (2, 5),
    "_load_csv": (2, 5),  # _PipelineScheduleRuntime with its CSV plan import/export (pytorch PR 130488)
    "_dump_csv": (2, 5),
    # 2.6
    "ScheduleZBVZeroBubble": (2, 6),
    # 2.7: gradients divided by n_microbatches by default (before: summed)
    "scale_grads": (2, 7),
    # 2.8: gloo multi-rank hang fixed (pytorch#132644)
    "gloo_hang_fix": (2, 8),
    # 2.9
    "ScheduleDualPipeV": (2, 9),
    "eval": (2, 9),
    # 2.10
    "return_outputs": (2, 10),
    "register_custom_function": (2, 10),  # _PipelineScheduleRuntime custom action handlers (pytorch PR 162016)
    # 2.12: DTensor-aware stages (DTensor activations between stages, static or runtime-inferred metadata)
    "dtensor_stages": (2, 12),
    # 2.13
    "loss_kwargs": (2, 13),
    "defer_pp_recv": (2, 13),
    # 2.14
    "arg_mbs": (2, 14),
    "kwarg_mbs": (2, 14),
    "target_mbs": (2, 14),
    "per_direction_p2p": (2, 14),  # torch.distributed.config.pipeline_per_direction_p2p
    # 2.15
    "per_edge_p2p": (2, 15),  # torch.distributed.config.pipeline_per_edge_p2p (replaces per-direction P2P)
}


def parse_version(version: str) -> tuple[int, int] | None:
    """(major, minor) of a torch version string; pre-releases count as their release ("2.9.0a0+git" -> 2.9)."""
    m = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def torch_version() -> str:
    """The version of the torch importable in this interpreter (imports torch)."""
    import torch

    return str(torch.__version__)


def since(api: str) -> tuple[int, int]:
    try:
        return SINCE[api]
    except KeyError:
        raise KeyError(f"conformance.torchenv.api: no first version recorded for {api!r}; add it to SINCE") from None


def missing_reason(api: str, version: str | None = None) -> str | None:
    """The not-applicable reason when `api` is newer than the build (`version`, default: installed torch)."""
    need = since(api)
    version = torch_version() if version is None else version
    have = parse_version(version)
    if have is not None and have >= need:
        return None
    return not_applicable(f"{api} needs torch >= {need[0]}.{need[1]} (this build {version})")


def available(api: str, version: str | None = None) -> bool:
    return missing_reason(api, version) is None

