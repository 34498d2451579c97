"""The registry of rank-side scenarios: functions every rank runs for one check, looked up by name.

A scenario is `fn(ctx: RankContext, params: dict) -> dict | None`; it raises (AssertionError or anything) to
fail, raises `Skip` (or pytest's skip) to skip, and returns a dict of facts for the pytest side to check.
Modules holding scenarios are imported lazily so ranks pay for torch only when a scenario needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.protocol import settings

Scenario = Callable[["RankContext", dict], "dict | None"]

_REGISTRY: dict[str, Scenario] = {}
# Imported on the first lookup, then the modules named by CONFORMANCE_RANK_PLUGINS (instrumentation, an
# out-of-tree device's registration, the project's own test faults): the package itself ships no fault code.
MODULES = ["conformance.pool.builtin", "conformance.suite.ranks.schedules", "conformance.suite.ranks.behaviour",
           "conformance.suite.ranks.composition", "conformance.suite.ranks.numerics", "conformance.suite.ranks.tier",
           "conformance.suite.ranks.graphs"]
_loaded = False


class Skip(Exception):
    """Raised by a scenario to skip the check; the message is the reason (start it with `not applicable: `...)."""


@dataclass
class RankContext:
    """Where a scenario runs: this rank's number, the world, its device and backend."""

    rank: int
    world_size: int
    device: str  # torch device string of this rank, e.g. "cpu", "cuda:1"
    device_type: str
    backend: str
    in_process: bool = False  # world 1 run inside the pytest process

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)


def register(name: str) -> Callable[[Scenario], Scenario]:
    def deco(fn: Scenario) -> Scenario:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"scenario {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in MODULES + settings.RANK_PLUGINS.items():
        importlib.import_module(mod)
    _loaded = True


def get(name: str) -> Scenario:
    load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def names() -> list[str]:
    load()
    return sorted(_REGISTRY)


def run(ctx: RankContext, name: str, params: dict[str, Any]) -> dict:
    return get(name)(ctx, params) or {}
