"""The pytest plugin of the conformance suite: device decision, JUnit metadata, unavailable marking, fixtures.

Loaded explicitly (`-p conformance.suite.plugin`) by `conformance run`; the project's own tests never load it.
"""

from __future__ import annotations

import pytest

from conformance import pytest_private
from conformance.protocol import outcomes, settings
from conformance.suite import expectations, options
from conformance.suite.fixtures import conformance, on_ranks, rank_pool, torch_device  # noqa: F401 - registered
from conformance.suite.state import State, state_key
from conformance.torchenv import api, builds, device


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "identity: the build identity check decides its own outcome")
    config.addinivalue_line("markers", "conformance_absent_strict(reason): device absent under --strict-device")
    opts = options.resolve(config)
    build = device.detect_build()
    dev = device.probe(opts.device, build)
    try:
        plan = builds.plan(opts.device)
    except builds.PinError as exc:
        raise pytest.UsageError(str(exc)) from None
    if plan.absent and not build.importable:
        dev.reason = plan.absent  # install-torch found the device absent and installed nothing (builds.ABSENT_MARKER)
    record = device.metadata(opts.env, dev, build, plan)
    if build.importable:
        record = record.updated(device.pin_numerics())
    meta = record.to_properties()
    config.stash[state_key] = State(opts, dev, build, plan, device.identity(dev, build, plan, opts.env), meta)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Suite-level properties validate against the Jenkins schema; per-test properties do not. The junitxml
    # plugin creates its writer in its own pytest_configure, so this waits for session start.
    config = session.config
    if hasattr(config, "workerinput"):
        return
    for key, value in config.stash[state_key].meta.items():
        pytest_private.add_suite_property(config, key, value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = config.stash.get(state_key, None)
    if st is None:
        return []
    d, b, o = st.dev, st.build, st.options
    lines = [
        (f"conformance: env {st.env}, device {d.name} ({'available' if d.available else 'UNAVAILABLE: ' + d.reason}), "
         f"backend {d.backend}, {d.count} device(s) {', '.join(d.names)}"),
        (f"conformance: torch {b.version or '(not importable)'} variant {b.variant or '-'} ({st.plan.source}), "
         f"runtime {d.runtime} {d.runtime_version} driver {d.driver_version or '-'}, strict={st.strict}"),
        f"conformance: identity {st.ident.outcome}: {st.ident.message}",
        f"conformance: rank pool {o.pool}, check timeout {o.check_timeout:g} s"
        + (f", launcher {settings.LAUNCHER.raw()}" if settings.LAUNCHER.is_set() else ""),
    ]
    known = settings.by_name()
    extra = sorted(f"{s.name}={s.raw()}" for s in known.values() if s.is_set())
    if extra:
        lines.append("conformance: " + " ".join(extra))
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    st = config.stash[state_key]
    if not st.build.importable and not st.plan.absent:
        _mark_not_run(st, items)
        return
    if st.dev.available:
        expectations.apply(config, items, st.dev.name, _version(st))
        return
    _mark_absent(st, items)


def _version(st: State) -> tuple[int, int] | None:
    return api.parse_version(st.build.version) if st.build.importable else None


def _mark_not_run(st: State, items: list[pytest.Item]) -> None:
    # No torch is a broken env, not an absent device: the identity check fails and says how to fix it; the other
    # checks did not run, which the report shows as "not run" (never as the unavailable device of a green column).
    reason = outcomes.not_run(f"the {st.env} env has no importable torch (see test_build_identity)")
    for item in items:
        if not item.get_closest_marker("identity"):
            item.add_marker(pytest.mark.skip(reason=reason))


def _mark_absent(st: State, items: list[pytest.Item]) -> None:
    # Without the device nothing runs, so known failures cannot apply: an xfail mark would even turn the strict
    # mode's "device required" failure into an xfail.
    reason = f"{st.dev.name} {st.dev.reason}"
    for item in items:
        if item.get_closest_marker("identity"):
            continue
        if st.strict:
            item.add_marker(pytest.mark.conformance_absent_strict(reason))
        else:
            item.add_marker(pytest.mark.skip(reason=outcomes.unavailable(reason)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("conformance_absent_strict")
    if mark is not None:
        pytest.fail(f"device required (strict mode): {mark.args[0]}", pytrace=False)
