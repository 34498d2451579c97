"""The device profiles: everything this project knows about a device, as data, in one registry (stdlib only).

A profile says how to detect the device, which collective backend and torch build it uses, how the build's identity
is checked, which environment variables tox passes through and every rank gets, and its tolerance overrides.
`device.py` (probe, identity, metadata), `builds.py` (pins, indexes), `install-torch`, `info`, the rank pool and the
report read profiles; nothing else names a device. Out-of-tree devices add profiles through the `conformance.devices`
entry-point group (README "Add your accelerator"): the entry point's object is a `Profile`, or a callable that
returns one.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ENTRY_POINT_GROUP = "conformance.devices"

# Keeps NVLink multicast off on shared multi-GPU hosts (NVLS buffers of one job exhaust another's); RCCL reads the
# same NCCL_* names, so ROCm ranks get them too.
NVLS_OFF: Mapping[str, str] = MappingProxyType(
    {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"})

# Microbatched and full-batch GEMMs may pick different kernels and accumulation orders on accelerators, so
# low-precision outputs differ by one or two ulps (see conformance.suite.tolerances).
_ACCEL_LOW_PRECISION = {"bfloat16": (3.2e-2, 1e-2), "float16": (4e-3, 1e-3)}


@dataclass(frozen=True)
class Profile:
    """One device, declaratively. Dotted `probes` are resolved against importable modules: the longest importable
    module prefix, then attributes; a trailing `()` calls the result (`torch.backends.mps.is_built()`)."""

    name: str  # env name, `--device` value and report column
    label: str  # how people call it ("NVIDIA GPU", "AMD GPU (ROCm)")
    torch_type: str  # torch device type the checks use: "cuda" for ROCm, "npu" for Ascend
    backend: str | None  # collective backend name for init_process_group; None: no multi-rank checks
    no_backend_reason: str = ""  # why multi-rank checks are unavailable when `backend` is None
    # --- detection ---------------------------------------------------------------------------------------------
    build_probes: tuple[str, ...] = ()  # any truthy one marks a build for this device; () = every build (cpu)
    build_kind: str = ""  # what the build is called in reasons ("CUDA", "ROCm")
    import_first: tuple[str, ...] = ()  # modules that register the device with torch (habana_frameworks.torch)
    import_failure: str = ""  # reason when `import_first` fails: {module} {error}
    device_module: str = ""  # dotted path of the module with device_count()/is_available()/get_device_name()
    visibility_vars: tuple[str, ...] = ()  # named in the reason when no device is visible
    absent_reason: str = "no device visible"
    driver: str = ""  # driver version probe: "nvidia", "amdgpu", "properties" (device props), "dist:<name>"
    driver_required: bool = False  # no driver on the host = unavailable with that reason
    platforms: tuple[str, ...] = ()  # sys.platform prefixes the device exists on; () = any
    # --- builds ------------------------------------------------------------------------------------------------
    variant: str = ""  # wheel variant = local version tag = index folder ("cpu", "xpu"); "" = the plain PyPI wheel
    variant_setting: str = ""  # CONFORMANCE_* variable that chooses the variant (CUDA_VARIANT)
    variant_from: str = ""  # how an installed build names its variant: "cuda", "hip", "fixed"; "" = local tag
    host_only: bool = False  # not pip-installable: always tests the host's torch
    checks_variant: bool = True  # identity: a pinned env must hold exactly its variant (cpu: any build runs on CPU)
    # --- environment -------------------------------------------------------------------------------------------
    pass_env: tuple[str, ...] = ()  # variables (globs) tox passes through for this device
    rank_env: Mapping[str, str] = field(default_factory=dict)  # set (if unset) in every rank
    tolerances: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # dtype -> (rtol, atol)
    # --- provenance --------------------------------------------------------------------------------------------
    simulated: bool = False  # a stand-in for tests: never real hardware, labelled so wherever it appears
    source: str = "builtin"  # "builtin" or the distribution that registered it

    def device_string(self, index: int = 0) -> str:
        """The torch device string of device `index` ("cpu", "cuda:1"): what `torch.device()` takes."""
        return "cpu" if self.torch_type == "cpu" else f"{self.torch_type}:{index}"

    @property
    def kind(self) -> str:
        return self.build_kind or self.label


CPU = Profile(
    name="cpu", label="CPU", torch_type="cpu", backend="gloo", variant="cpu", checks_variant=False,
    pass_env=("GLOO_*", "OMP_NUM_THREADS"),
)
CUDA = Profile(
    name="cuda", label="NVIDIA GPU", torch_type="cuda", backend="nccl",
    build_probes=("torch.version.cuda",), build_kind="CUDA", device_module="torch.cuda",
    visibility_vars=("CUDA_VISIBLE_DEVICES",), absent_reason="no GPU visible",
    driver="nvidia", driver_required=True,
    variant="cu130", variant_setting="CUDA_VARIANT", variant_from="cuda",
    pass_env=("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_*", "NCCL_*", "NVSHMEM_*"),
    rank_env=NVLS_OFF, tolerances={"float32": (1e-5, 1e-5), **_ACCEL_LOW_PRECISION},
)
ROCM = Profile(
    name="rocm", label="AMD GPU (ROCm)", torch_type="cuda", backend="nccl",  # nccl is RCCL in ROCm builds
    build_probes=("torch.version.hip",), build_kind="ROCm", device_module="torch.cuda",
    visibility_vars=("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"),
    absent_reason="no AMD GPU visible", driver="amdgpu", driver_required=True,
    variant="rocm7.1", variant_setting="ROCM_VARIANT", variant_from="hip",
    pass_env=("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
              "HSA_*", "ROCM_*", "MIOPEN_*", "NCCL_*", "RCCL_*"),
    rank_env=NVLS_OFF, tolerances={"float32": (1e-5, 1e-5), **_ACCEL_LOW_PRECISION},
)
XPU = Profile(
    name="xpu", label="Intel GPU", torch_type="xpu", backend="xccl",
    build_probes=("torch.version.xpu", "torch.xpu._is_compiled()"), build_kind="XPU", device_module="torch.xpu",
    visibility_vars=("ZE_AFFINITY_MASK",),
    absent_reason="no Intel GPU visible (Level Zero driver missing or no device)",
    driver="properties", variant="xpu", variant_from="fixed",
    pass_env=("ZE_AFFINITY_MASK", "ZE_*", "ONEAPI_*", "CCL_*", "SYCL_*"),
    tolerances=_ACCEL_LOW_PRECISION,
)
HPU = Profile(
    name="hpu", label="Intel Gaudi", torch_type="hpu", backend="hccl",
    build_probes=("habana_frameworks.torch.__version__", "habana_frameworks.torch"), build_kind="Gaudi",
    import_first=("habana_frameworks.torch",),
    import_failure="Intel Gaudi bridge ({module}) not importable: {error}",
    device_module="torch.hpu", absent_reason="no Gaudi device visible (HABANA_VISIBLE_MODULES / driver)",
    driver="dist:habana-torch-plugin", variant="gaudi", variant_from="fixed", host_only=True,
    pass_env=("HABANA_*", "PT_HPU_*", "HCCL_*", "GC_KERNEL_PATH"),
    tolerances={"bfloat16": _ACCEL_LOW_PRECISION["bfloat16"]},
)
MPS = Profile(
    name="mps", label="Apple GPU (MPS)", torch_type="mps", backend=None,
    no_backend_reason="no collective backend for MPS tensors (gloo, nccl and the others do not take mps tensors)",
    build_probes=("torch.backends.mps.is_built()",), build_kind="MPS", device_module="torch.mps",
    absent_reason="no MPS device available (needs Apple silicon and macOS 12.3+)",
    platforms=("darwin",), variant="", variant_from="fixed",
    pass_env=("PYTORCH_MPS_*", "PYTORCH_ENABLE_MPS_FALLBACK"),
    tolerances=_ACCEL_LOW_PRECISION,
)

BUILTIN: tuple[Profile, ...] = (CPU, CUDA, XPU, HPU, ROCM, MPS)
# Variables every device env passes through whatever its device: build pins, rendezvous and library paths.
COMMON_PASS_ENV = ("TORCH_*", "CONFORMANCE_*", "LD_LIBRARY_PATH", "MASTER_ADDR", "MASTER_PORT")

_loaded: dict[str, Profile] | None = None
_load_errors: list[str] = []


class ProfileError(ValueError):
    """An entry point that does not give a usable profile; the message names the distribution."""


def _from_entry_point(ep: importlib.metadata.EntryPoint) -> Profile:
    obj = ep.load()
    profile = obj() if callable(obj) and not isinstance(obj, Profile) else obj
    if not isinstance(profile, Profile):
        raise ProfileError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) gives "
                           f"{type(profile).__name__}, not a conformance.torchenv.profiles.Profile")
    dist = getattr(getattr(ep, "dist", None), "name", "") or ep.value.partition(":")[0]
    return Profile(**{**profile.__dict__, "source": dist})


def _load() -> dict[str, Profile]:
    global _loaded
    if _loaded is not None:
        return _loaded
    found = {p.name: p for p in BUILTIN}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            profile = _from_entry_point(ep)
        except Exception as exc:  # one broken plugin must not hide the built-in devices
            _load_errors.append(f"{ep.name} = {ep.value}: {type(exc).__name__}: {exc}")
            continue
        if profile.name in found:
            _load_errors.append(f"{ep.name} = {ep.value}: device {profile.name!r} is already defined "
                                f"({found[profile.name].source}); ignored")
            continue
        found[profile.name] = profile
    _loaded = found
    return found


def reload() -> None:
    """Forget the loaded entry points (tests install and remove plugins)."""
    global _loaded
    _loaded = None
    _load_errors.clear()


def all_profiles() -> dict[str, Profile]:
    """Every device by name: the built-in ones first, then the installed out-of-tree ones."""
    return dict(_load())


def names() -> tuple[str, ...]:
    return tuple(_load())


def load_errors() -> list[str]:
    _load()
    return list(_load_errors)


def get(name: str) -> Profile:
    try:
        return _load()[name]
    except KeyError:
        raise ProfileError(f"unknown device {name!r}: choose one of {', '.join(names())}") from None


def find(name: str) -> Profile | None:
    return _load().get(name)


def tolerance(device: str, dtype: str) -> tuple[float, float] | None:
    """A profile's (rtol, atol) override for `dtype` on `device` (a profile name or a torch device type)."""
    profile = find(device)
    if profile is None:  # a torch device type seen inside ranks ("cuda" of a ROCm env): its own profile
        profile = next((p for p in _load().values() if p.torch_type == device), None)
    return None if profile is None else profile.tolerances.get(dtype)


def others_of_type(profile: Profile) -> list[Profile]:
    """Devices reached through the same torch API (cuda and rocm): a build of one must not pass as the other."""
    return [p for p in _load().values() if p.name != profile.name and p.torch_type == profile.torch_type
            and p.build_probes]
