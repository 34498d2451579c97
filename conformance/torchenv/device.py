"""Decides the device once: what torch build is installed, whether the env's device is usable, and why not.

Everything else asks this module (through the pytest plugin's stash) and never probes hardware again.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from conformance import __version__, settings
from conformance.torchenv import builds


@dataclass
class Build:
    """The torch actually importable in this interpreter."""

    importable: bool
    version: str = ""
    variant: str = ""
    cuda: str | None = None
    hip: str | None = None
    xpu: str | None = None
    gaudi: str | None = None  # habana_frameworks version when the Gaudi bridge imports
    gaudi_error: str = ""
    error: str = ""
    location: str = ""


@dataclass
class Device:
    """The env's device as found on this host with this build."""

    name: str
    backend: str
    available: bool
    reason: str = ""  # why not available, in words a runner's owner can act on
    count: int = 0
    names: list[str] = field(default_factory=list)
    runtime: str = "none"
    runtime_version: str = ""
    driver_version: str = ""
    torch_device: str = "cpu"  # what checks pass to torch ("cpu", "cuda:0", "xpu:0", "hpu:0")


def detect_build() -> Build:
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:  # noqa: BLE001 - a broken install is a result, not a crash
        return Build(importable=False, error=f"{type(exc).__name__}: {exc}")
    b = Build(importable=True, version=str(torch.__version__), location=os.path.dirname(torch.__file__))
    b.cuda = getattr(torch.version, "cuda", None)
    b.hip = getattr(torch.version, "hip", None)
    b.xpu = getattr(torch.version, "xpu", None)
    try:
        hf = importlib.import_module("habana_frameworks.torch")
        b.gaudi = str(getattr(hf, "__version__", "") or _dist_version("habana-torch-plugin") or "unknown")
    except Exception as exc:  # noqa: BLE001
        b.gaudi_error = f"{type(exc).__name__}: {exc}"
    b.variant = builds.variant_of(b.version, b.cuda, b.hip, b.xpu, b.gaudi is not None)
    return b


def _dist_version(name: str) -> str | None:
    try:
        import importlib.metadata as md

        return md.version(name)
    except Exception:  # noqa: BLE001
        return None


def _nvidia_driver() -> str:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            for word in fh.readline().split():
                if word[:1].isdigit() and "." in word:
                    return word
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20,
            ).stdout.strip().splitlines()
            return out[0].strip() if out else ""
        except (OSError, subprocess.SubprocessError):
            return ""
    return ""


def probe(name: str, build: Build | None = None) -> Device:
    """Find out whether `name` can run here; never raises for an absent device."""
    if name not in builds.DEVICES:
        raise ValueError(f"unknown device {name!r}: choose one of {', '.join(builds.DEVICES)}")
    build = detect_build() if build is None else build
    dev = Device(name=name, backend=builds.BACKENDS[name], available=False)
    if not build.importable:
        dev.reason = f"torch is not importable in this environment ({build.error})"
        return dev
    import torch

    if name == "cpu":
        dev.available, dev.count, dev.torch_device = True, 1, "cpu"
        dev.names = [platform.processor() or platform.machine()]
        return dev
    if name == "cuda":
        dev.runtime, dev.runtime_version = "cuda", build.cuda or ""
        dev.driver_version = _nvidia_driver()
        if not build.cuda:
            dev.reason = f"build {build.version} has no CUDA" + (" (it is a ROCm build)" if build.hip else "")
            return dev
        if not dev.driver_version and not os.path.exists("/dev/nvidiactl"):
            dev.reason = "no NVIDIA driver on this host (/proc/driver/nvidia missing, no nvidia-smi)"
            return dev
        dev.count = torch.cuda.device_count()
        if dev.count == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            dev.reason = "no GPU visible" + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
            return dev
        dev.names = [torch.cuda.get_device_name(i) for i in range(dev.count)]
        dev.available, dev.torch_device = True, "cuda:0"
        return dev
    if name == "xpu":
        dev.runtime, dev.runtime_version = "xpu", build.xpu or ""
        xpu = getattr(torch, "xpu", None)
        if xpu is None or not (build.xpu or getattr(xpu, "_is_compiled", lambda: False)()):
            dev.reason = f"build {build.version} has no XPU support"
            return dev
        dev.count = xpu.device_count() if xpu.is_available() else 0
        if dev.count == 0:
            mask = os.environ.get("ZE_AFFINITY_MASK")
            dev.reason = "no Intel GPU visible (Level Zero driver missing or no device)" + (
                f" (ZE_AFFINITY_MASK={mask!r})" if mask is not None else "")
            return dev
        dev.names = [xpu.get_device_name(i) for i in range(dev.count)]
        dev.driver_version = str(getattr(xpu.get_device_properties(0), "driver_version", "") or "")
        dev.available, dev.torch_device = True, "xpu:0"
        return dev
    # hpu: torch.accelerator does not know HPU; the Gaudi bridge registers torch.hpu on import.
    dev.runtime, dev.runtime_version = "gaudi", build.gaudi or ""
    if build.gaudi is None:
        dev.reason = f"Intel Gaudi bridge (habana_frameworks.torch) not importable: {build.gaudi_error}"
        return dev
    hpu = getattr(torch, "hpu", None)
    dev.count = hpu.device_count() if hpu is not None and hpu.is_available() else 0
    if dev.count == 0:
        dev.reason = "no Gaudi device visible (HABANA_VISIBLE_MODULES / driver)"
        return dev
    dev.names = [str(hpu.get_device_name(i)) if hasattr(hpu, "get_device_name") else "Gaudi" for i in range(dev.count)]
    dev.driver_version = _dist_version("habana-torch-plugin") or ""
    dev.available, dev.torch_device = True, "hpu:0"
    return dev


def pin_numerics() -> dict[str, str]:
    """fp32 means fp32: TF32 matmuls/convolutions off in every process that computes a check.

    The checks compare a microbatched pipeline with the unsplit model; with TF32 on, GEMMs of different shapes
    round differently at 10 mantissa bits and fp32 comparisons would fail for reasons that are not pipelining's.
    Called by the plugin (single-process checks) and by every rank. Returns what was set, for the report.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return {"tf32": "off", "float32_matmul_precision": torch.get_float32_matmul_precision()}


@dataclass
class Identity:
    """Whether the build under test is the one the env claims to test."""

    outcome: str  # "pass", "fail" or "unavailable"
    message: str


def identity(dev: Device, build: Build, plan: builds.TorchPlan, env: str = "") -> Identity:
    found = f"torch {build.version or '(none)'} ({build.variant or 'no build'})"
    if not build.importable:
        # A device env without torch is a broken env, never an absent device: it tested nothing.
        return Identity("fail", no_torch_message(env or plan.device, build, plan))
    if plan.source == "pinned":
        base = build.version.partition("+")[0]
        if base != plan.version:
            return Identity("fail", f"{plan.device} env pins torch {plan.version} but found {found}")
        if plan.device != "cpu" and build.variant != plan.variant:
            return Identity(
                "fail",
                f"{plan.device} env expected the {plan.variant} build {plan.exact_requirement} "
                f"(index {plan.index_url}) but found {found}: refusing to label it {plan.device}",
            )
    if not dev.available:
        # The build may be right, but with no device nothing of this env ran: the column must not look green.
        return Identity("unavailable", f"{found}: {dev.name} {dev.reason}")
    return Identity("pass", f"{dev.name} env tests {found} ({plan.source})")


def no_torch_message(env: str, build: Build, plan: builds.TorchPlan) -> str:
    """What is wrong and how to fix it, for an env whose interpreter cannot import torch."""
    rebuild = f"`tox -r -e {env}`"
    if plan.source == "host":
        python = settings.HOST_PYTHON.raw() or "the first python3 on PATH outside the env"
        fix = (f"host mode links the torch of {python} into the env: point "
               f"CONFORMANCE_HOST_PYTHON at an interpreter that imports torch, then rebuild with {rebuild}")
    else:
        fix = (f"rebuild it with {rebuild} (or `conformance install-torch --device {plan.device}` in it), or in "
               f"host mode make sure CONFORMANCE_HOST_TORCH=1 points at an interpreter with torch "
               f"(CONFORMANCE_HOST_PYTHON)")
    return f"the {env} env has no importable torch ({build.error}): {fix}"


def metadata(env: str, dev: Device, build: Build, plan: builds.TorchPlan) -> dict[str, str]:
    """Suite-level JUnit properties: what was tested, where, with what."""
    return {
        "env": env,
        "device": dev.name,
        "device_available": "true" if dev.available else "false",
        "device_reason": dev.reason,
        "device_count": str(dev.count),
        "device_names": ", ".join(dev.names),
        "torch_version": build.version,
        "torch_variant": build.variant,
        "torch_source": plan.source,
        "torch_pinned": plan.version if plan.source == "pinned" else "",
        "runtime": dev.runtime,
        "runtime_version": dev.runtime_version,
        "driver_version": dev.driver_version,
        "backend": dev.backend,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "conformance_version": __version__,
        "platform": f"{sys.platform}-{platform.machine()}",
    }


def as_json(dev: Device, build: Build, plan: builds.TorchPlan) -> dict:
    return {"device": asdict(dev), "build": asdict(build), "plan": asdict(plan)}
