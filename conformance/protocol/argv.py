"""The suite process's command line: the flags `conformance run` (runner/supervisor.py) gives pytest and the suite's
options (suite/options.py) declare. Both sides take the names from here."""

from __future__ import annotations

DEVICE = "--device"  # the device under test (a profile name)
ENV_NAME = "--env-name"  # the report column
STRICT_DEVICE = "--strict-device"  # an absent device fails every check
CHECK_TIMEOUT = "--check-timeout"  # seconds one multi-rank check may take
POOL = "--pool"  # rank pool mode (settings.POOL_MODES)


def suite_args(device: str, env: str, strict: bool = False) -> list[str]:
    """The suite options the supervisor passes for one env's run."""
    return [DEVICE, device, ENV_NAME, env, *([STRICT_DEVICE] if strict else [])]
