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
import types
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from conformance import __version__
from conformance.protocol import properties, settings
from conformance.torchenv import builds, profiles


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
    # device name -> what its profile's build probe found (a version, or "built"): which devices this build has
    markers: dict[str, str] = field(default_factory=dict)
    # device name -> why a module of its profile's `import_first` did not import
    import_errors: dict[str, str] = field(default_factory=dict)


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
    device_string: str = "cpu"  # the torch device string checks run on ("cpu", "cuda:0", "xpu:0", "hpu:0")
    simulated: bool = False  # a test stand-in (profile.simulated): never real hardware
    no_backend_reason: str = ""  # why multi-rank checks cannot run here although the device can


def resolve(path: str) -> Any:
    """A profile's dotted probe: attributes from the top module down, importing a submodule only where the attribute
    is missing (so `torch.version` is the imported torch's own), then a call on a trailing `()`."""
    call = path.endswith("()")
    parts = (path[:-2] if call else path).split(".")
    value: Any = importlib.import_module(parts[0])
    for i, attr in enumerate(parts[1:], start=2):
        try:
            value = getattr(value, attr)
        except AttributeError:
            value = importlib.import_module(".".join(parts[:i]))
    return value() if call else value


def _import_first(profile: profiles.Profile) -> str:
    """Import the modules that register the device with torch; the reason when one fails, else ""."""
    for module in profile.import_first:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a missing bridge is a result (device unavailable), not a crash
            error = f"{type(exc).__name__}: {exc}"
            return (profile.import_failure or "{module} not importable: {error}").format(module=module, error=error)
    return ""


def _marker(profile: profiles.Profile) -> str:
    """What the profile's build probes find: the first truthy value as text ("built" for True), else ""."""
    for probe in profile.build_probes:
        try:
            value = resolve(probe)
        except Exception:  # an attribute a build lacks (torch.version.xpu before 2.6) is a no
            continue
        if value:
            return "built" if value is True or isinstance(value, types.ModuleType) else str(value)
    return ""


def detect_build() -> Build:
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:  # a broken install is a result, not a crash
        return Build(importable=False, error=f"{type(exc).__name__}: {exc}")
    b = Build(importable=True, version=str(torch.__version__), location=os.path.dirname(torch.__file__ or ""))
    b.cuda = getattr(torch.version, "cuda", None)
    b.hip = getattr(torch.version, "hip", None)
    b.xpu = getattr(torch.version, "xpu", None)
    for profile in profiles.all_profiles().values():
        error = _import_first(profile)
        if error:
            b.import_errors[profile.name] = error
        elif profile.build_probes:
            marker = _marker(profile)
            if marker:
                b.markers[profile.name] = marker
    if "hpu" in b.markers:
        b.gaudi = b.markers["hpu"] if b.markers["hpu"] != "built" else _dist_version("habana-torch-plugin") or "unknown"
    b.gaudi_error = b.import_errors.get("hpu", "")
    b.variant = builds.variant_of(b.version, b.markers)
    return b


def _dist_version(name: str) -> str | None:
    try:
        import importlib.metadata as md

        return md.version(name)
    except Exception:
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
                capture_output=True, text=True, timeout=20, check=False,
            ).stdout.strip().splitlines()
            return out[0].strip() if out else ""
        except (OSError, subprocess.SubprocessError):
            return ""
    return ""


def _amdgpu_driver() -> str:
    try:
        with open("/sys/module/amdgpu/version", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


# driver probe name -> (version function's name in this module, device node whose presence also proves a driver,
# reason when neither); looked up by name at call time so tests can stand in for the host's driver.
_DRIVERS: dict[str, tuple[str, str, str]] = {
    "nvidia": ("_nvidia_driver", "/dev/nvidiactl",
               "no NVIDIA driver on this host (/proc/driver/nvidia missing, no nvidia-smi)"),
    "amdgpu": ("_amdgpu_driver", "/dev/kfd", "no AMD GPU driver on this host (/dev/kfd missing)"),
}


def _visibility(profile: profiles.Profile) -> str:
    shown = [f"{var}={os.environ[var]!r}" for var in profile.visibility_vars if var in os.environ]
    return f" ({', '.join(shown)})" if shown else ""


def _no_build_reason(profile: profiles.Profile, build: Build) -> str:
    reason = f"build {build.version} has no {profile.kind} support"
    other = next((p for p in profiles.others_of_type(profile) if p.name in build.markers), None)
    return reason + (f" (it is a {other.kind} build)" if other else "")


def probe(name: str, build: Build | None = None) -> Device:
    """Find out whether `name` can run here, as its profile says; never raises for an absent device."""
    profile = profiles.get(name)
    build = detect_build() if build is None else build
    dev = Device(name=name, backend=profile.backend or "", available=False, simulated=profile.simulated,
                 no_backend_reason="" if profile.backend else profile.no_backend_reason)
    if profile.build_probes:
        dev.runtime = profile.kind.lower()
    if not build.importable:
        dev.reason = f"torch is not importable in this environment ({build.error})"
        return dev
    dev.runtime_version = build.markers.get(name, "").replace("built", "")
    if profile.platforms and not sys.platform.startswith(profile.platforms):
        dev.reason = f"{profile.label} exists only on {', '.join(profile.platforms)}; this host is {sys.platform}"
        return dev
    if name in build.import_errors:
        dev.reason = build.import_errors[name]
        return dev
    if profile.build_probes and name not in build.markers:
        dev.reason = _no_build_reason(profile, build)
        return dev
    if profile.driver in _DRIVERS:
        version_of, node, missing = _DRIVERS[profile.driver]
        dev.driver_version = globals()[version_of]()
        if profile.driver_required and not dev.driver_version and not os.path.exists(node):
            dev.reason = missing
            return dev
    if not profile.device_module:  # the host itself (cpu)
        dev.available, dev.count, dev.device_string = True, 1, profile.device_string(0)
        dev.names = [platform.processor() or platform.machine()]
        return dev
    module = resolve(profile.device_module)
    is_available = getattr(module, "is_available", None)
    dev.count = 0 if is_available is not None and not is_available() else int(module.device_count())
    if dev.count == 0:
        dev.reason = profile.absent_reason + _visibility(profile)
        return dev
    get_name = getattr(module, "get_device_name", None)
    dev.names = [str(get_name(i)) if get_name else profile.label for i in range(dev.count)]
    if profile.driver == "properties":
        dev.driver_version = str(getattr(module.get_device_properties(0), "driver_version", "") or "")
    elif profile.driver.startswith("dist:"):
        dev.driver_version = _dist_version(profile.driver[5:]) or ""
    dev.available, dev.device_string = True, profile.device_string(0)
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
    return {properties.TF32: "off", properties.FLOAT32_MATMUL_PRECISION: torch.get_float32_matmul_precision()}


@dataclass
class Identity:
    """Whether the build under test is the one the env claims to test."""

    outcome: str  # "pass", "fail" or "unavailable"
    message: str


def identity(dev: Device, build: Build, plan: builds.TorchPlan, env: str = "") -> Identity:
    found = f"torch {build.version or '(none)'} ({build.variant or 'no build'})"
    if not build.importable:
        if plan.absent:  # install-torch left torch out on purpose: this host lacks the device (builds.ABSENT_MARKER)
            return Identity("unavailable", f"{plan.device} {plan.absent}")
        # A device env without torch is a broken env, never an absent device: it tested nothing.
        return Identity("fail", no_torch_message(env or plan.device, build, plan))
    profile = profiles.get(plan.device)
    if plan.source == "pinned":
        base = build.version.partition("+")[0]
        if base != plan.version:
            return Identity("fail", f"{plan.device} env pins torch {plan.version} but found {found}")
        if profile.checks_variant and build.variant != plan.variant:
            return Identity(
                "fail",
                f"{plan.device} env expected the {plan.variant} build {plan.exact_requirement} "
                f"(index {plan.index_url or 'the default index'}) but found {found}: "
                f"refusing to label it {plan.device}",
            )
    if profile.build_probes and plan.device not in build.markers:
        # cuda and rocm share torch's CUDA API: a build of the one finds the other's GPUs, so it is a mislabel in
        # host mode too, not merely an absent device.
        other = next((p for p in profiles.others_of_type(profile) if p.name in build.markers), None)
        if other is not None:
            return Identity("fail", f"{plan.device} env found a {other.kind} build, {found}: "
                                    f"refusing to label it {plan.device}")
        if plan.source == "pinned":  # the right wheel tag, but without the device (a bridge that did not import)
            return Identity("fail", f"{plan.device} env found {found} without {profile.kind} support "
                                    f"({dev.reason or 'no build probe matched: ' + ', '.join(profile.build_probes)}): "
                                    f"refusing to label it {plan.device}")
    if not dev.available:
        # The build may be right, but with no device nothing of this env ran: the column must not look green.
        return Identity("unavailable", f"{found}: {dev.name} {dev.reason}")
    simulated = " on a SIMULATED device (not real hardware)" if dev.simulated else ""
    return Identity("pass", f"{dev.name} env tests {found}{simulated} ({plan.source})")


def no_torch_message(env: str, build: Build, plan: builds.TorchPlan) -> str:
    """What is wrong and how to fix it, for an env whose interpreter cannot import torch."""
    rebuild = f"`tox -r -e {env}`"
    if plan.source == "host":
        python = settings.HOST_PYTHON.raw() or "the first python3 on PATH outside the env"
        fix = (f"host mode links the torch of {python} into the env: point "
               f"{settings.HOST_PYTHON.name} at an interpreter that imports torch, then rebuild with {rebuild}")
    else:
        fix = (f"rebuild it with {rebuild} (or `conformance install-torch --device {plan.device}` in it), or in "
               f"host mode make sure {settings.HOST_TORCH.name}=1 points at an interpreter with torch "
               f"({settings.HOST_PYTHON.name})")
    return f"the {env} env has no importable torch ({build.error}): {fix}"


def metadata(env: str, dev: Device, build: Build, plan: builds.TorchPlan) -> properties.BuildRecord:
    """The suite-level JUnit properties' record: what was tested, where, with what."""
    return properties.BuildRecord(
        env=env,
        device=dev.name,
        device_available=dev.available,
        device_reason=dev.reason,
        device_count=dev.count,
        device_names=", ".join(dev.names),
        torch_version=build.version,
        torch_variant=build.variant,
        torch_source=plan.source,
        torch_pinned=plan.version if plan.source == "pinned" else "",
        runtime=dev.runtime,
        runtime_version=dev.runtime_version,
        driver_version=dev.driver_version,
        backend=dev.backend,
        device_simulated=dev.simulated,
        python_version=platform.python_version(),
        hostname=socket.gethostname(),
        start_time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        conformance_version=__version__,
        platform=f"{sys.platform}-{platform.machine()}",
    )


def as_json(dev: Device, build: Build, plan: builds.TorchPlan) -> dict:
    return {"device": asdict(dev), "build": asdict(build), "plan": asdict(plan)}
