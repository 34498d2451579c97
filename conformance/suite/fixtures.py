"""The suite's fixtures: the decided device and build, the torch device, and the rank pool for multi-rank checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance.pool import pools
from conformance.pool.local import PoolError
from conformance.protocol import outcomes, settings
from conformance.suite import ranks
from conformance.suite.outcome import settle
from conformance.suite.state import State, state_key
from conformance.torchenv import profiles


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> State:
    """The run's decided device, build and pins."""
    return request.config.stash[state_key]


@pytest.fixture(scope="session")
def torch_device(conformance: State) -> Any:
    """The torch.device every check runs on."""
    import torch

    return torch.device(conformance.dev.device_string)


@pytest.fixture(scope="session")
def rank_pool(conformance: State) -> Iterator[pools.Pools]:
    """The session's rank pools: one per world size, started on first use, closed at the end of the run."""
    dev, opts = conformance.dev, conformance.options
    profile = profiles.get(dev.name)
    launcher = None
    if settings.LAUNCHER.is_set():
        from conformance.pool import launcher as launcher_mod

        launcher = launcher_mod.from_env(profile, dev.backend, timeout_s=opts.check_timeout)
    p = pools.Pools(profile, dev.backend, dev.count, mode=opts.pool, timeout_s=opts.check_timeout, launcher=launcher,
                    scenario_modules=ranks.MODULES)
    yield p
    p.close()


@pytest.fixture
def on_ranks(rank_pool: pools.Pools, request: pytest.FixtureRequest) -> Callable[..., list[dict]]:
    """`on_ranks(world, scenario, **params)` runs a registered scenario on `world` ranks and returns every rank's
    data; a failing rank fails the check with its traceback, a host without enough devices skips it as
    unavailable, a pool that cannot start fails it."""

    def run(world: int, scenario: str, **params: Any) -> list[dict]:
        __tracebackhide__ = True
        try:
            report = rank_pool.run(world, request.node.nodeid, scenario, params)
        except pools.Unavailable as exc:
            pytest.skip(outcomes.unavailable(str(exc)))
        except PoolError as exc:
            pytest.fail(f"rank pool broken: {exc}", pytrace=False)
        return settle(report)

    return run
