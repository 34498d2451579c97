"""Every `CONFORMANCE_*` setting, declared once with its default and help text (stdlib only, no torch).

Code reads a setting through its `Setting` object (`settings.CHECK_TIMEOUT.get()`), never by a literal name; the
README's settings table is checked against `ALL` by a test. Command-line flags, where a setting has one, win over
the variable (see `conformance.suite.plugin`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

TRUE = frozenset({"1", "true", "yes", "on"})  # what a flag setting accepts as "on"


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text, "" = unset) and what it does."""

    name: str
    default: str
    help: str
    internal: bool = False  # set by our own processes for each other; documented, but not for users to set

    def raw(self, environ: Mapping[str, str] | None = None) -> str:
        """The value as set (stripped), else the default."""
        environ = os.environ if environ is None else environ
        return environ.get(self.name, "").strip() or self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        environ = os.environ if environ is None else environ
        return bool(environ.get(self.name, "").strip())

    def flag(self, environ: Mapping[str, str] | None = None) -> bool:
        return self.raw(environ).lower() in TRUE

    def number(self, environ: Mapping[str, str] | None = None) -> float:
        """The value as a float; a non-number is a usage error naming the variable."""
        from conformance.errors import UsageError

        raw = self.raw(environ)
        try:
            return float(raw)
        except ValueError:
            raise UsageError(f"{self.name}={raw!r} is not a number") from None

    def items(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """A comma-separated list."""
        return [part.strip() for part in self.raw(environ).split(",") if part.strip()]


def _s(name: str, default: str, help: str, internal: bool = False) -> Setting:
    setting = Setting(f"CONFORMANCE_{name}", default, help, internal)
    ALL.append(setting)
    return setting


ALL: list[Setting] = []

# --- which device and env --------------------------------------------------------------------------------------
DEVICE = _s("DEVICE", "", "device under test (set by each tox env; `--device` wins)")
ENV = _s("ENV", "", "column name in the report (default: TOX_ENV_NAME, else the device; `--env-name` wins)")
STRICT = _s("STRICT", "", "`1`: an absent device fails every check instead of reporting it unavailable")

# --- torch builds (conformance.torchenv.builds) -----------------------------------------------------------------
TORCH_SERIES = _s("TORCH_SERIES", "", "set by the versioned tox envs (`cpu-torch2.14`): test that series' release")
CUDA_VARIANT = _s("CUDA_VARIANT", "", "CUDA build of the `cuda` env: cu126, cu128, cu130, ... (default cu130)")
ROCM_VARIANT = _s("ROCM_VARIANT", "", "ROCm build of the `rocm` env: rocm6.4, rocm7.0, rocm7.1, ... (default rocm7.1)")
INDEX_BASE = _s("INDEX_BASE", "", "a mirror of https://download.pytorch.org/whl; `<base>/<variant>` per device")
DEVICE_INDEX = _s("<DEVICE>_INDEX", "",
                  "full index URL (or file:// folder) for one device, e.g. CONFORMANCE_CUDA_INDEX")
HOST_TORCH = _s("HOST_TORCH", "", "`1`: host mode, test the torch of the interpreter running tox; install nothing")
HOST_PYTHON = _s("HOST_PYTHON", "",
                 "the interpreter whose torch host mode uses (default: first python3 outside the env)")
INSTALL_ABSENT = _s("INSTALL_ABSENT", "", "`1`: install the env's torch build even where the host lacks its device "
                                          "(default: install nothing, every check `unavailable` with the reason)")

# --- the run ----------------------------------------------------------------------------------------------------
TIME_LIMIT = _s("TIME_LIMIT", "", "global time limit of one env's run in seconds (`--time-limit` wins; default none)")
CHECK_TIMEOUT = _s("CHECK_TIMEOUT", "120", "seconds one multi-rank check may take (`--check-timeout` wins)")
POOL_MODES = ("persistent", "isolate")  # persistent: ranks started once per world size; isolate: fresh per check
POOL = _s("POOL", POOL_MODES[0], "`isolate`: fresh rank processes for every multi-rank check (`--pool` wins)")
POOL_START = _s("POOL_START", "", "how ranks start: `forkserver` (default where available) or `spawn`")
FAIL_GRACE = _s("FAIL_GRACE", "3", "seconds the healthy ranks get to report after one rank failed or died")
LAUNCHER = _s("LAUNCHER", "",
              "`torchrun`: multi-node mode, ranks are the launcher's (set by conformance.pool.launcher)")
RANK_PLUGINS = _s("RANK_PLUGINS", "", "comma-separated modules every rank imports at start (instrumentation, "
                                      "out-of-tree device registration)")
JOURNAL = _s("JOURNAL", "", "the results journal the suite process appends to", internal=True)

# --- the report -------------------------------------------------------------------------------------------------
REPORT_SERIAL = _s("REPORT_SERIAL", "", "`1`: render the report's outputs one after another instead of in parallel")

# CONFORMANCE_REQUIRE_E2E is read by the project's own tests only (tests/), not by the package.


def by_name() -> dict[str, Setting]:
    return {s.name: s for s in ALL}


def named(suffix: str) -> Setting:
    """The setting `CONFORMANCE_<suffix>`: the declared one, else (an out-of-tree profile's own variant setting) an
    undeclared one with no default."""
    name = f"CONFORMANCE_{suffix}"
    return by_name().get(name) or Setting(name, "", f"set by a device profile ({suffix})")


def device_index(device: str) -> Setting:
    """`CONFORMANCE_<DEVICE>_INDEX` of one device (declared once as DEVICE_INDEX)."""
    return Setting(DEVICE_INDEX.name.replace("<DEVICE>", device.upper()), DEVICE_INDEX.default, DEVICE_INDEX.help)
