"""The pytest plugin of the conformance suite: options, device decision, JUnit metadata, unavailable marking.

Loaded explicitly (`-p conformance.plugin`) by `conformance run`; the project's own tests never load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from conformance import builds, device, expectations

ENV_PREFIX = "CONFORMANCE_"
UNAVAILABLE = "unavailable: "


@dataclass
class State:
    env: str
    strict: bool
    dev: device.Device
    build: device.Build
    plan: builds.TorchPlan
    ident: device.Identity
    meta: dict[str, str]


state_key = pytest.StashKey[State]()


def _setting(config: pytest.Config, option: str, env: str, ini: str, default: Any = None) -> Any:
    """Fixed precedence: command line > environment variable > ini file > default."""
    value = config.getoption(option)
    if value not in (None, ""):
        return value
    value = os.environ.get(env, "").strip()
    if value:
        return value
    value = config.getini(ini)
    return value if value not in (None, "", []) else default


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "pipeline-parallel device conformance")
    group.addoption("--device", dest="conformance_device", default=None,
                    help=f"device under test: {', '.join(builds.DEVICES)} (env CONFORMANCE_DEVICE, ini conformance_device)")
    parser.addini("conformance_device", "device under test", default="")
    group.addoption("--env-name", dest="conformance_env", default=None,
                    help="column name in the report (env CONFORMANCE_ENV, else TOX_ENV_NAME, else the device)")
    parser.addini("conformance_env", "column name in the report", default="")
    group.addoption("--strict-device", dest="conformance_strict", action="store_true", default=None,
                    help="an absent device fails every check instead of reporting it unavailable "
                         "(env CONFORMANCE_STRICT=1, ini conformance_strict)")
    parser.addini("conformance_strict", "absent device is a failure", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "identity: the build identity check decides its own outcome")
    config.addinivalue_line("markers", "conformance_absent_strict(reason): device absent under --strict-device")
    name = str(_setting(config, "conformance_device", "CONFORMANCE_DEVICE", "conformance_device", "") or "")
    if not name:
        raise pytest.UsageError(f"no device chosen: pass --device {{{','.join(builds.DEVICES)}}} or set CONFORMANCE_DEVICE")
    if name not in builds.DEVICES:
        raise pytest.UsageError(f"unknown device {name!r}: choose one of {', '.join(builds.DEVICES)}")
    env = str(_setting(config, "conformance_env", "CONFORMANCE_ENV", "conformance_env", "")
              or os.environ.get("TOX_ENV_NAME") or name)
    strict_cli = config.getoption("conformance_strict")
    strict = bool(strict_cli) or builds.env_flag(os.environ, "CONFORMANCE_STRICT") or bool(config.getini("conformance_strict"))
    build = device.detect_build()
    dev = device.probe(name, build)
    try:
        plan = builds.plan(name)
    except builds.PinError as exc:
        raise pytest.UsageError(str(exc)) from None
    meta = device.metadata(env, dev, build, plan)
    if build.importable:
        meta.update(device.pin_numerics())
    st = State(env, strict, dev, build, plan, device.identity(dev, build, plan), meta)
    config.stash[state_key] = st


def pytest_sessionstart(session: pytest.Session) -> None:
    # Suite-level properties validate against the Jenkins schema; per-test properties do not. The junitxml
    # plugin creates its writer in its own pytest_configure, so this waits for session start.
    from _pytest.junitxml import xml_key

    config = session.config
    xml = config.stash.get(xml_key, None)
    if xml is None or hasattr(config, "workerinput"):
        return
    for key, value in config.stash[state_key].meta.items():
        xml.add_global_property(key, value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = config.stash.get(state_key, None)
    if st is None:
        return []
    d, b = st.dev, st.build
    lines = [
        f"conformance: env {st.env}, device {d.name} ({'available' if d.available else 'UNAVAILABLE: ' + d.reason}), "
        f"backend {d.backend}, {d.count} device(s) {', '.join(d.names)}",
        f"conformance: torch {b.version or '(not importable)'} variant {b.variant or '-'} ({st.plan.source}), "
        f"runtime {d.runtime} {d.runtime_version} driver {d.driver_version or '-'}, strict={st.strict}",
        f"conformance: identity {st.ident.outcome}: {st.ident.message}",
    ]
    extra = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(ENV_PREFIX))
    if extra:
        lines.append("conformance: " + " ".join(extra))
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    st = config.stash[state_key]
    if st.dev.available:
        expectations.apply(config, items)
        return
    # Without the device nothing runs, so known failures cannot apply: an xfail mark would even turn the strict
    # mode's "device required" failure into an xfail.
    reason = f"{st.dev.name} {st.dev.reason}"
    for item in items:
        if item.get_closest_marker("identity"):
            continue
        if st.strict:
            item.add_marker(pytest.mark.conformance_absent_strict(reason))
        else:
            item.add_marker(pytest.mark.skip(reason=UNAVAILABLE + reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("conformance_absent_strict")
    if mark is not None:
        pytest.fail(f"device required (strict mode): {mark.args[0]}", pytrace=False)


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> State:
    """The run's decided device, build and pins."""
    return request.config.stash[state_key]


@pytest.fixture(scope="session")
def torch_device(conformance: State):
    """The torch.device every check runs on."""
    import torch

    return torch.device(conformance.dev.torch_device)
