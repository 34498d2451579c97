"""The torch build pins: one version for the whole matrix, the build variant and wheel index of each device.

Stdlib only, so it can plan and install torch into a tox env before torch exists there.

Overrides (environment variables, all optional):
  TORCH_VERSION                 the version for every device env of this run (default DEFAULT_TORCH_VERSION)
  CONFORMANCE_TORCH_SERIES      set by the versioned tox envs (cpu-torch2.14): the release from RELEASES
  CONFORMANCE_CUDA_VARIANT      CUDA build of the cuda env, e.g. cu126, cu128, cu130 (default: the cuda profile's)
  CONFORMANCE_ROCM_VARIANT      ROCm build of the rocm env, e.g. rocm6.4, rocm7.1 (default: the rocm profile's)
  CONFORMANCE_INDEX_BASE        mirror of https://download.pytorch.org/whl; <base>/<variant> is each device's index
  CONFORMANCE_<DEVICE>_INDEX    full index URL for one device (CONFORMANCE_CPU_INDEX, ..._CUDA_INDEX, ..._ROCM_INDEX)
  CONFORMANCE_HOST_TORCH=1      host mode: test the torch of the interpreter that runs tox, install nothing; an env
                                installed in host mode remembers it (HOST_MARKER in the env), `=0` forgets it
  CONFORMANCE_HOST_PYTHON       that interpreter, when `python3` on PATH is not it
  CONFORMANCE_INSTALL_ABSENT=1  install the build even on a host without the env's device (default: an env whose
                                device this host lacks installs no torch, its checks read unavailable; ABSENT_MARKER)
  PIP_FIND_LINKS, PIP_NO_INDEX  air-gapped wheelhouses: pip reads them, tox passes PIP_* through
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from conformance.errors import UsageError
from conformance.protocol import settings
from conformance.torchenv import profiles

# The torch release the whole matrix tests unless TORCH_VERSION says otherwise for one run. It is also the torch of
# the project's own `tests` and `type` envs; README "Devices, builds and backends" says why it is not the newest.
DEFAULT_TORCH_VERSION = "2.13.0"
# The version axis: envs named `<device>-torch<series>` (cpu-torch2.14) always test that series' release, so their
# column names never lie; TORCH_VERSION does not move them. tox.ini has one env factor per series (a test keeps them
# in step) and its `newest` label names the last one, which CI runs beside the pin.
RELEASES = {"2.12": "2.12.1", "2.13": "2.13.0", "2.14": "2.14.1", "2.15": "2.15.0"}
NEWEST_SERIES = max(RELEASES, key=lambda series: tuple(int(part) for part in series.split(".")))
# PyPI's default Linux wheel is a CUDA build: cu130 for 2.11-2.14, cu132 from 2.15 on (2.15.0+cu132 measured here);
# a cuda env of that variant installs from plain PyPI too.
DEFAULT_CUDA_VARIANT = profiles.CUDA.variant
PYPI_DEFAULT_VARIANT = "cu130"
PYPI_DEFAULT_VARIANTS = {"2.15": "cu132"}
DEFAULT_INDEX_BASE = "https://download.pytorch.org/whl"
# Written into an env by `install-torch` in host mode: the env's own `conformance` then keeps testing the host's
# torch without CONFORMANCE_HOST_TORCH set again (the .pth link alone would meet a pinned-version identity check).
HOST_MARKER = "conformance-host-torch"
# Written into an env by `install-torch` when this host lacks the env's device and it installed no torch: the run
# then reports every check `unavailable` with the reason in this file, instead of "no torch, broken env".
ABSENT_MARKER = "conformance-device-absent"

# Derived from the device profiles (built-in and installed out-of-tree ones); see conformance.torchenv.profiles.
DEVICES = profiles.names()
BACKENDS = {name: p.backend or "" for name, p in profiles.all_profiles().items()}
# Not pip-installable (Gaudi torch ships inside Intel Gaudi images): always tests the host's torch.
HOST_ONLY_DEVICES = frozenset(name for name, p in profiles.all_profiles().items() if p.host_only)

class PinError(UsageError, ValueError):
    """A device or pin setting that names nothing we know; the message says what is valid."""


def pypi_default_variant(version: str) -> str:
    """The variant of the default index's plain Linux wheel of this torch release (a CUDA build)."""
    series = ".".join(version.split(".")[:2])
    return PYPI_DEFAULT_VARIANTS.get(series, PYPI_DEFAULT_VARIANT)


@dataclass(frozen=True)
class TorchPlan:
    """What a device env should test: which torch, which build variant, from where."""

    device: str
    version: str
    variant: str
    source: str  # "pinned" (the env installs it) or "host" (the interpreter's own torch)
    index_url: str | None  # None: the default index's plain wheel (mps) or host mode
    host_because: str = ""  # why host mode: the variable, the env's marker file, or a host-only device
    absent: str = ""  # why install-torch installed nothing: the device is absent here (ABSENT_MARKER)

    @property
    def requirement(self) -> str:
        return f"torch=={self.version}"

    @property
    def exact_requirement(self) -> str:
        # Wheels on the default index carry no local tag (macOS builds are the MPS builds).
        return f"torch=={self.version}+{self.variant}" if self.index_url else self.requirement

    def describe(self) -> str:
        if self.source == "host":
            return f"{self.device}: the host interpreter's own torch (host mode: {self.host_because})"
        wheel = self.exact_requirement.partition("==")[2]
        return f"{self.device}: torch {wheel} from {self.index_url or 'the default index'}"


def host_marker(prefix: str | None = None) -> str:
    """Where an env installed in host mode remembers it: a file in the env itself (sys.prefix)."""
    return os.path.join(sys.prefix if prefix is None else prefix, HOST_MARKER)


def absent_marker(prefix: str | None = None) -> str:
    """Where an env records that install-torch left torch out because the host lacks the device."""
    return os.path.join(sys.prefix if prefix is None else prefix, ABSENT_MARKER)


def _recorded_absence(prefix: str | None) -> str:
    try:
        with open(absent_marker(prefix), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


# How a host without torch shows that it lacks a device, per profile `driver` (stdlib only: install-torch decides
# before any torch exists): paths of which any one proves the driver, tools on PATH that do too, the reason if none.
_DRIVER_SIGNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "nvidia": (("/proc/driver/nvidia/version", "/dev/nvidiactl"), ("nvidia-smi",),
               "no NVIDIA driver on this host (/proc/driver/nvidia, /dev/nvidiactl and nvidia-smi missing)"),
    "amdgpu": (("/dev/kfd", "/sys/module/amdgpu"), ("rocm-smi", "amd-smi"),
               "no AMD GPU driver on this host (/dev/kfd, /sys/module/amdgpu and rocm-smi missing)"),
}
_INTEL_VENDOR = "0x8086"
_GAUDI_PATHS = ("/sys/module/habanalabs", "/dev/accel", "/dev/hl0")
_DRM = "/sys/class/drm"


def _intel_gpu() -> bool:
    """Whether an Intel GPU render node exists (what torch's XPU runtime drives through Level Zero)."""
    drm = _DRM
    try:
        nodes = [n for n in os.listdir(drm) if n.startswith("renderD")]
    except OSError:
        return False
    for node in nodes:
        try:
            with open(os.path.join(drm, node, "device", "vendor"), encoding="utf-8") as fh:
                if fh.read().strip().lower() == _INTEL_VENDOR:
                    return True
        except OSError:
            continue
    return False


def host_lacks(profile: profiles.Profile, system: str | None = None) -> str:
    """Why this host cannot have `profile`'s device, judged without torch; "" when it may have it.

    Only certain absence counts (another OS, no driver at all, no Intel render node): a device this cannot rule
    out gets its build, and the suite's own probe decides. Out-of-tree profiles are never ruled out here.
    """
    system = sys.platform if system is None else system
    if profile.platforms and not system.startswith(profile.platforms):
        return f"{profile.label} exists only on {', '.join(profile.platforms)}; this host is {system}"
    if profile.driver_required and profile.driver in _DRIVER_SIGNS:
        paths, tools, reason = _DRIVER_SIGNS[profile.driver]
        if not any(os.path.exists(p) for p in paths) and not any(shutil.which(t) for t in tools):
            return reason
    if profile is profiles.XPU and system.startswith("linux") and not _intel_gpu():
        return "no Intel GPU on this host (no Intel render node under /sys/class/drm)"
    if profile is profiles.HPU and system.startswith("linux") and not (
            any(os.path.exists(p) for p in _GAUDI_PATHS) or shutil.which("hl-smi")):
        return "no Intel Gaudi driver on this host (habanalabs module, /dev/accel and hl-smi missing)"
    return ""


def _host_because(profile: profiles.Profile, environ: Mapping[str, str], prefix: str | None) -> str:
    if profile.host_only:
        return f"{profile.label} torch is not pip-installable"
    raw = settings.HOST_TORCH.raw(environ).lower()
    if raw in settings.TRUE:
        return f"{settings.HOST_TORCH.name}=1"
    if raw:  # an explicit 0/false re-pins an env that was installed in host mode
        return ""
    marker = host_marker(prefix)
    return f"remembered by {marker}" if os.path.exists(marker) else ""


def plan(device: str, environ: Mapping[str, str] | None = None, prefix: str | None = None) -> TorchPlan:
    """What `device`'s env tests; `prefix` is the env whose host-mode marker counts (default: this interpreter's)."""
    environ = os.environ if environ is None else environ
    profile = profiles.find(device)
    if profile is None:
        raise PinError(f"unknown device {device!r}: choose one of {', '.join(profiles.names())}")
    series = settings.TORCH_SERIES.raw(environ)
    if series and series not in RELEASES:
        raise PinError(f"unknown torch series {series!r}: known {', '.join(sorted(RELEASES))} "
                       "(conformance/torchenv/builds.py)")
    version = RELEASES[series] if series else environ.get("TORCH_VERSION", "").strip() or DEFAULT_TORCH_VERSION
    chosen = settings.named(profile.variant_setting).raw(environ) if profile.variant_setting else ""
    variant = chosen or expected_variant(profile)
    because = _host_because(profile, environ, prefix)
    if because:
        return TorchPlan(device, version, variant, "host", None, because, absent=_recorded_absence(prefix))
    base = settings.INDEX_BASE.raw(environ).rstrip("/") or DEFAULT_INDEX_BASE
    index = settings.device_index(device).raw(environ)
    if not index and profile.variant:
        index = f"{base}/{variant}"
    return TorchPlan(device, version, variant, "pinned", index or None, absent=_recorded_absence(prefix))


def expected_variant(profile: profiles.Profile) -> str:
    """The variant a build of this device reports: its wheel tag, else its name (mps: the plain macOS wheel)."""
    return profile.variant or profile.name


def variant_of(torch_version: str, markers: Mapping[str, str]) -> str:
    """The build variant of an installed torch, in the wheel index's own words (cpu, cu130, rocm6.4, xpu, gaudi).

    `markers`: device name -> what the device's build probe found (device.detect_build). Bridges that are imported
    into torch (Gaudi, out-of-tree devices) name the build before the CUDA/ROCm/XPU attributes of torch itself.
    """
    found = [p for p in profiles.all_profiles().values() if p.name in markers]
    found.sort(key=lambda p: not p.import_first)
    for p in found:
        marker = markers[p.name]
        if p.variant_from == "cuda":
            return "cu" + "".join(marker.split(".")[:2])
        if p.variant_from == "hip":
            return "rocm" + ".".join(marker.split(".")[:2])
        if p.variant_from == "fixed":
            return expected_variant(p)
        return torch_version.partition("+")[2] or expected_variant(p)
    local = torch_version.partition("+")[2]
    return local or "cpu"


def index_reachable(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """One quick TCP connect instead of pip's five retries per requirement against a dead index."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https") and any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    ):
        return True, "behind a proxy: not probed, pip decides"  # a direct connect says nothing there
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
        return (os.path.isdir(path), "" if os.path.isdir(path) else f"{path} is not a folder")
    host = parsed.hostname
    if not host:
        return False, f"{url!r} is not a URL"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"{host}:{port} unreachable ({exc.strerror or exc})"
