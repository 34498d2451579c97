"""Every option of the conformance suite: a command-line flag, an environment variable and an ini twin each.

Precedence is fixed: command line > environment variable (declared in `conformance.protocol.settings`) > ini > default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from conformance.protocol import argv, settings
from conformance.torchenv import builds


@dataclass(frozen=True)
class Options:
    device: str
    env: str
    strict: bool
    check_timeout: float
    pool: str


def add(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "pipeline-parallel device conformance")
    group.addoption(argv.DEVICE, dest="conformance_device", default=None,
                    help=f"device under test: {', '.join(builds.DEVICES)} "
                         f"(env {settings.DEVICE.name}, ini conformance_device)")
    parser.addini("conformance_device", "device under test", default="")
    group.addoption(argv.ENV_NAME, dest="conformance_env", default=None,
                    help=f"column name in the report (env {settings.ENV.name}, else TOX_ENV_NAME, else the device)")
    parser.addini("conformance_env", "column name in the report", default="")
    group.addoption(argv.STRICT_DEVICE, dest="conformance_strict", action="store_true", default=None,
                    help=f"an absent device fails every check instead of reporting it unavailable "
                         f"(env {settings.STRICT.name}=1, ini conformance_strict)")
    parser.addini("conformance_strict", "absent device is a failure", type="bool", default=False)
    group.addoption(argv.CHECK_TIMEOUT, dest="conformance_check_timeout", default=None, type=float,
                    help=f"seconds one multi-rank check may take before its ranks' stacks are dumped and the "
                         f"ranks restarted (env {settings.CHECK_TIMEOUT.name}, ini conformance_check_timeout; "
                         f"default {settings.CHECK_TIMEOUT.default})")
    parser.addini("conformance_check_timeout", "multi-rank check timeout in seconds", default="")
    group.addoption(argv.POOL, dest="conformance_pool", default=None, choices=settings.POOL_MODES,
                    help=f"persistent: start ranks once per world size (default); isolate: fresh ranks for "
                         f"every check (env {settings.POOL.name}, ini conformance_pool)")
    parser.addini("conformance_pool", "rank pool mode", default="")


def _value(config: pytest.Config, option: str, setting: settings.Setting, ini: str) -> str:
    value = config.getoption(option)
    if value not in (None, ""):
        return str(value)
    if setting.is_set():
        return setting.raw()
    value = config.getini(ini)
    return str(value) if value not in (None, "", []) else setting.default


def resolve(config: pytest.Config) -> Options:
    """The run's options, validated; a bad value is a usage error naming the flag and the variable."""
    device = _value(config, "conformance_device", settings.DEVICE, "conformance_device")
    if not device:
        raise pytest.UsageError(f"no device chosen: pass --device {{{','.join(builds.DEVICES)}}} "
                                f"or set {settings.DEVICE.name}")
    if device not in builds.DEVICES:
        raise pytest.UsageError(f"unknown device {device!r}: choose one of {', '.join(builds.DEVICES)}")
    env = (_value(config, "conformance_env", settings.ENV, "conformance_env")
           or os.environ.get("TOX_ENV_NAME") or device)
    strict = (bool(config.getoption("conformance_strict")) or settings.STRICT.flag()
              or bool(config.getini("conformance_strict")))
    return Options(device, env, strict, _check_timeout(config), _pool(config))


def _check_timeout(config: pytest.Config) -> float:
    raw = _value(config, "conformance_check_timeout", settings.CHECK_TIMEOUT, "conformance_check_timeout")
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{settings.CHECK_TIMEOUT.name}/--check-timeout must be a number of seconds, "
                                f"got {raw!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"{settings.CHECK_TIMEOUT.name}/--check-timeout must be positive, got {raw!r}")
    return value


def _pool(config: pytest.Config) -> str:
    mode = _value(config, "conformance_pool", settings.POOL, "conformance_pool")
    if mode not in settings.POOL_MODES:
        raise pytest.UsageError(f"{settings.POOL.name}/--pool must be one of {', '.join(settings.POOL_MODES)}, "
                                f"got {mode!r}")
    return mode
