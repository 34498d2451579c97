"""The run's decided state, kept in the pytest config stash: options, device, build, pins and JUnit metadata."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance.suite.options import Options
from conformance.torchenv import builds, device


@dataclass
class State:
    options: Options
    dev: device.Device
    build: device.Build
    plan: builds.TorchPlan
    ident: device.Identity
    meta: dict[str, str]

    @property
    def env(self) -> str:
        return self.options.env

    @property
    def strict(self) -> bool:
        return self.options.strict


state_key = pytest.StashKey[State]()
