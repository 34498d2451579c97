"""The torch build pins: one version for the whole matrix, the build variant and wheel index of each device.

Stdlib only, so it can plan and install torch into a tox env before torch exists there.

Overrides (environment variables, all optional):
  TORCH_VERSION                 the version for every device env of this run (default DEFAULT_TORCH_VERSION)
  CONFORMANCE_TORCH_SERIES      set by the versioned tox envs (cpu-torch2.14): the release from RELEASES
  CONFORMANCE_CUDA_VARIANT      CUDA build of the cuda env, e.g. cu126, cu128, cu130 (default DEFAULT_CUDA_VARIANT)
  CONFORMANCE_INDEX_BASE        mirror of https://download.pytorch.org/whl; <base>/<variant> is each device's index
  CONFORMANCE_<DEVICE>_INDEX    full index URL for one device (CONFORMANCE_CPU_INDEX, ..._CUDA_INDEX, ..._XPU_INDEX)
  CONFORMANCE_HOST_TORCH=1      host mode: test the torch of the interpreter that runs tox, install nothing
  CONFORMANCE_HOST_PYTHON       that interpreter, when `python3` on PATH is not it
  PIP_FIND_LINKS, PIP_NO_INDEX  air-gapped wheelhouses: pip reads them, tox passes PIP_* through
"""

from __future__ import annotations

from conformance.errors import UsageError

import os
import socket
import urllib.parse
from dataclasses import dataclass

# The torch release the whole matrix tests unless TORCH_VERSION says otherwise for one run.
DEFAULT_TORCH_VERSION = "2.13.0"
# The version axis: envs named `<device>-torch<series>` (cpu-torch2.14) always test that series' release, so their
# column names never lie; TORCH_VERSION does not move them.
RELEASES = {"2.13": "2.13.0", "2.14": "2.14.1"}
# PyPI's default Linux wheel of 2.11-2.14 is a CUDA 13.0 build, so cu130 also installs from plain PyPI.
DEFAULT_CUDA_VARIANT = "cu130"
PYPI_DEFAULT_VARIANT = "cu130"
DEFAULT_INDEX_BASE = "https://download.pytorch.org/whl"

DEVICES = ("cpu", "cuda", "xpu", "hpu")
BACKENDS = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl", "hpu": "hccl"}
# Gaudi torch is not pip-installable: it ships inside Intel Gaudi images, so hpu always tests the host's torch.
HOST_ONLY_DEVICES = frozenset({"hpu"})

_TRUE = {"1", "true", "yes", "on"}


class PinError(UsageError, ValueError):
    """A device or pin setting that names nothing we know; the message says what is valid."""


def env_flag(environ: dict[str, str] | os._Environ, name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


@dataclass(frozen=True)
class TorchPlan:
    """What a device env should test: which torch, which build variant, from where."""

    device: str
    version: str
    variant: str
    source: str  # "pinned" (the env installs it) or "host" (the interpreter's own torch)
    index_url: str | None

    @property
    def requirement(self) -> str:
        return f"torch=={self.version}"

    @property
    def exact_requirement(self) -> str:
        return f"torch=={self.version}+{self.variant}"

    def describe(self) -> str:
        if self.source == "host":
            return f"{self.device}: the host interpreter's own torch (host mode)"
        return f"{self.device}: torch {self.version}+{self.variant} from {self.index_url}"


def plan(device: str, environ: dict[str, str] | os._Environ | None = None) -> TorchPlan:
    environ = os.environ if environ is None else environ
    if device not in DEVICES:
        raise PinError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    series = environ.get("CONFORMANCE_TORCH_SERIES", "").strip()
    if series and series not in RELEASES:
        raise PinError(f"unknown torch series {series!r}: known {', '.join(sorted(RELEASES))} (conformance/torchenv/builds.py)")
    version = RELEASES[series] if series else environ.get("TORCH_VERSION", "").strip() or DEFAULT_TORCH_VERSION
    variant = {
        "cpu": "cpu",
        "cuda": environ.get("CONFORMANCE_CUDA_VARIANT", "").strip() or DEFAULT_CUDA_VARIANT,
        "xpu": "xpu",
        "hpu": "gaudi",
    }[device]
    host = device in HOST_ONLY_DEVICES or env_flag(environ, "CONFORMANCE_HOST_TORCH")
    if host:
        return TorchPlan(device, version, variant, "host", None)
    base = environ.get("CONFORMANCE_INDEX_BASE", "").strip().rstrip("/") or DEFAULT_INDEX_BASE
    index = environ.get(f"CONFORMANCE_{device.upper()}_INDEX", "").strip() or f"{base}/{variant}"
    return TorchPlan(device, version, variant, "pinned", index)


def variant_of(torch_version: str, cuda: str | None, hip: str | None, xpu: str | None, gaudi: bool) -> str:
    """The build variant of an installed torch, in the wheel index's own words (cpu, cu130, rocm6.4, xpu)."""
    if gaudi:
        return "gaudi"
    if cuda:
        return "cu" + "".join(cuda.split(".")[:2])
    if hip:
        return "rocm" + ".".join(hip.split(".")[:2])
    if xpu:
        return "xpu"
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
