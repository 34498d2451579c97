"""The registry of rank-side scenarios: functions every rank runs for one check, looked up by name.

A scenario is `fn(ctx: RankContext, params: dict) -> dict | None`; it raises (AssertionError or anything) to
fail, raises `Skip` (or pytest's skip) to skip, and returns a dict of facts for the pytest side to check.
Modules holding scenarios are imported lazily, on the first task that names them, so ranks pay for torch only when
a scenario needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.protocol import settings
from conformance.torchenv.profiles import Profile

Scenario = Callable[["RankContext", dict], "dict | None"]

_REGISTRY: dict[str, Scenario] = {}
# The pool's own scenarios, always imported; then a task's modules (the suite's table travels in each Task) and the
# modules named by CONFORMANCE_RANK_PLUGINS (instrumentation, an out-of-tree device's registration, the project's
# own test faults): the package itself ships no fault code.
BUILTIN = ("conformance.pool.builtin",)
_loaded: set[str] = set()


class Skip(Exception):
    """Raised by a scenario to skip the check; the message is the reason (made by `conformance.protocol.outcomes`:
    `not_applicable(why)`, ...)."""


@dataclass
class RankContext:
    """Where a scenario runs: this rank's number, the world, its device and backend.

    One vocabulary for the device: `profile` is the device's profile (`profile.name`: `rocm`), `device_type` the
    torch device type (`cuda`), `device_string` this rank's torch device string (`cuda:1`) and `torch_device` the
    `torch.device` made of it.
    """

    rank: int
    world_size: int
    profile: Profile
    device_string: str
    backend: str
    in_process: bool = False  # world 1 run inside the pytest process

    @property
    def device_type(self) -> str:
        return self.profile.torch_type

    @property
    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device_string)


def register(name: str) -> Callable[[Scenario], Scenario]:
    def deco(fn: Scenario) -> Scenario:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"scenario {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def load(modules: tuple[str, ...] | list[str] = ()) -> None:
    """Import the pool's scenarios, `modules` and the rank plugins, each once."""
    for mod in (*BUILTIN, *modules, *settings.RANK_PLUGINS.items()):
        if mod not in _loaded:
            importlib.import_module(mod)
            _loaded.add(mod)


def get(name: str, modules: tuple[str, ...] | list[str] = ()) -> Scenario:
    load(modules)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def names(modules: tuple[str, ...] | list[str] = ()) -> list[str]:
    load(modules)
    return sorted(_REGISTRY)


def run(ctx: RankContext, name: str, params: dict[str, Any], modules: tuple[str, ...] | list[str] = ()) -> dict:
    return get(name, modules)(ctx, params) or {}
