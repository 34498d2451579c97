"""Multi-rank checks: the rank pool as a session fixture, its options, and the test-only fault checks' switch."""

from __future__ import annotations

import os

import pytest

from conformance.plugin import _setting, state_key
from conformance.pool import pools
from conformance.pool.scenarios import faults_enabled

TIMEOUT_ENV = "CONFORMANCE_CHECK_TIMEOUT"
POOL_ENV = "CONFORMANCE_POOL"
LAUNCHER_ENV = "CONFORMANCE_LAUNCHER"

# The checks that exercise the pool's own failure handling exist only for the project's tests.
collect_ignore = [] if faults_enabled() else ["test_pool_faults.py"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--check-timeout", dest="conformance_check_timeout", default=None, type=float,
                    help=f"seconds one multi-rank check may take before its ranks' stacks are dumped and the "
                         f"ranks restarted (env {TIMEOUT_ENV}, ini conformance_check_timeout; default "
                         f"{pools.DEFAULT_TIMEOUT_S:.0f})")
    parser.addini("conformance_check_timeout", "multi-rank check timeout in seconds", default="")
    group.addoption("--pool", dest="conformance_pool", default=None, choices=pools.MODES,
                    help=f"persistent: start ranks once per world size (default); isolate: fresh ranks for "
                         f"every check (env {POOL_ENV}, ini conformance_pool)")
    parser.addini("conformance_pool", "rank pool mode", default="")


def _timeout(config: pytest.Config) -> float:
    raw = _setting(config, "conformance_check_timeout", TIMEOUT_ENV, "conformance_check_timeout", pools.DEFAULT_TIMEOUT_S)
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{TIMEOUT_ENV}/--check-timeout must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"{TIMEOUT_ENV}/--check-timeout must be positive, got {raw!r}")
    return value


def _mode(config: pytest.Config) -> str:
    mode = str(_setting(config, "conformance_pool", POOL_ENV, "conformance_pool", "persistent"))
    if mode not in pools.MODES:
        raise pytest.UsageError(f"{POOL_ENV}/--pool must be one of {', '.join(pools.MODES)}, got {mode!r}")
    return mode


def pytest_configure(config: pytest.Config) -> None:
    _timeout(config)
    _mode(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    launcher = os.environ.get(LAUNCHER_ENV, "").strip()
    return [f"conformance: rank pool {_mode(config)}, check timeout {_timeout(config):.0f} s"
            + (f", launcher {launcher}" if launcher else "")]


@pytest.fixture(scope="session")
def rank_pool(request: pytest.FixtureRequest):
    """The session's rank pools: one per world size, started on first use, closed at the end of the run."""
    st = request.config.stash[state_key]
    launcher = None
    if os.environ.get(LAUNCHER_ENV, "").strip():
        from conformance.pool import launcher as launcher_mod

        launcher = launcher_mod.from_env(st.dev.name, st.dev.backend, timeout_s=_timeout(request.config))
    p = pools.Pools(st.dev.name, st.dev.backend, st.dev.count, st.dev.torch_device,
                    mode=_mode(request.config), timeout_s=_timeout(request.config), launcher=launcher)
    yield p
    p.close()


@pytest.fixture
def on_ranks(rank_pool, request: pytest.FixtureRequest):
    """`on_ranks(world, scenario, **params)` runs a registered scenario on `world` ranks and returns every rank's
    data; a failing rank fails the check with its traceback, a host without enough devices skips it as
    unavailable, a pool that cannot start fails it."""
    from conformance.plugin import UNAVAILABLE
    from conformance.pool.local import PoolError
    from conformance.pool.outcome import settle

    def run(world: int, scenario: str, **params) -> list[dict]:
        __tracebackhide__ = True
        try:
            report = rank_pool.run(world, request.node.nodeid, scenario, params)
        except pools.Unavailable as exc:
            pytest.skip(UNAVAILABLE + str(exc))
        except PoolError as exc:
            pytest.fail(f"rank pool broken: {exc}", pytrace=False)
        return settle(report)

    return run
