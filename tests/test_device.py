"""Device decision and build identity through the device profiles, on simulated XPU, Gaudi, CUDA, ROCm and MPS builds
(no such hardware here: fake `torch` modules stand in for those builds)."""

from __future__ import annotations

import types

import pytest

from conformance.torchenv import builds, device


def fake_torch(monkeypatch, version="2.13.0+cpu", cuda=None, hip=None, xpu=None, xpu_devices=0, hpu_devices=None,
               cuda_devices=0, mps_built=None, mps_devices=0):
    torch = types.ModuleType("torch")
    torch.__version__ = version
    torch.__file__ = "/fake/torch/__init__.py"
    torch.version = types.SimpleNamespace(cuda=cuda, hip=hip, xpu=xpu)
    # ROCm builds answer through the torch.cuda API
    torch.cuda = types.SimpleNamespace(device_count=lambda: cuda_devices,
                                       get_device_name=lambda i: f"Fake {'AMD Instinct' if hip else 'GPU'} {i}")
    if mps_built is not None:
        torch.backends = types.SimpleNamespace(mps=types.SimpleNamespace(is_built=lambda: mps_built))
        torch.mps = types.SimpleNamespace(device_count=lambda: mps_devices)
    if xpu is not None:
        torch.xpu = types.SimpleNamespace(
            _is_compiled=lambda: True, is_available=lambda: xpu_devices > 0, device_count=lambda: xpu_devices,
            get_device_name=lambda i: f"Intel(R) Data Center GPU Max 1550 #{i}",
            get_device_properties=lambda i: types.SimpleNamespace(driver_version="1.6.31294"))
    monkeypatch.setitem(__import__("sys").modules, "torch", torch)
    if hpu_devices is not None:
        hf = types.ModuleType("habana_frameworks")
        hft = types.ModuleType("habana_frameworks.torch")
        hft.__version__ = "1.22.0"
        hf.torch = hft
        torch.hpu = types.SimpleNamespace(is_available=lambda: hpu_devices > 0, device_count=lambda: hpu_devices,
                                          get_device_name=lambda i: "GAUDI3")
        monkeypatch.setitem(__import__("sys").modules, "habana_frameworks", hf)
        monkeypatch.setitem(__import__("sys").modules, "habana_frameworks.torch", hft)
    else:
        monkeypatch.setitem(__import__("sys").modules, "habana_frameworks", None)
    return torch


def test_xpu_build_with_device(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+xpu", xpu="20250101", xpu_devices=2)
    build = device.detect_build()
    assert build.variant == "xpu"
    dev = device.probe("xpu", build)
    assert dev.available and dev.backend == "xccl" and dev.count == 2 and dev.device_string == "xpu:0"
    assert dev.names[0].startswith("Intel(R) Data Center GPU Max") and dev.driver_version == "1.6.31294"
    ident = device.identity(dev, build, builds.plan("xpu", {}))
    assert ident.outcome == "pass", ident.message
    meta = device.metadata("xpu", dev, build, builds.plan("xpu", {})).to_properties()
    assert meta["backend"] == "xccl" and meta["torch_variant"] == "xpu" and meta["runtime"] == "xpu"


def test_xpu_build_without_device_is_unavailable(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+xpu", xpu="20250101", xpu_devices=0)
    monkeypatch.setenv("ZE_AFFINITY_MASK", "7")
    dev = device.probe("xpu")
    assert not dev.available and "no Intel GPU visible" in dev.reason and "ZE_AFFINITY_MASK='7'" in dev.reason


def test_xpu_env_with_cpu_build_is_a_mislabel_in_pinned_mode_and_unavailable_in_host_mode(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+cpu")
    build = device.detect_build()
    dev = device.probe("xpu", build)
    assert not dev.available and "has no XPU support" in dev.reason
    pinned = device.identity(dev, build, builds.plan("xpu", {}))
    assert pinned.outcome == "fail" and "2.13.0+cpu" in pinned.message and "xpu" in pinned.message
    host = device.identity(dev, build, builds.plan("xpu", {"CONFORMANCE_HOST_TORCH": "1"}))
    assert host.outcome == "unavailable"


def test_gaudi_bridge_gives_hpu(monkeypatch):
    fake_torch(monkeypatch, version="2.6.0", hpu_devices=8)
    build = device.detect_build()
    assert build.variant == "gaudi" and build.gaudi == "1.22.0"
    dev = device.probe("hpu", build)
    assert dev.available and dev.backend == "hccl" and dev.count == 8 and dev.names[0] == "GAUDI3"
    plan = builds.plan("hpu", {})
    assert plan.source == "host", "Gaudi torch is never pip-installed"
    assert device.identity(dev, build, plan).outcome == "pass"


def test_hpu_without_bridge_is_unavailable_with_reason(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+cpu")
    dev = device.probe("hpu")
    assert not dev.available and "habana_frameworks.torch" in dev.reason


def test_cuda_build_variants_and_rocm_is_not_cuda(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+rocm6.4", hip="6.4.43482")
    build = device.detect_build()
    assert build.variant == "rocm6.4"
    dev = device.probe("cuda", build)
    assert not dev.available and "ROCm" in dev.reason


def test_cuda_build_without_gpu(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0", cuda="13.0", cuda_devices=0)
    monkeypatch.setattr(device, "_nvidia_driver", lambda: "580.1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    build = device.detect_build()
    assert build.variant == "cu130"
    dev = device.probe("cuda", build)
    assert not dev.available and dev.reason.startswith("no GPU visible") and "CUDA_VISIBLE_DEVICES=''" in dev.reason
    # the PyPI default wheel (no local tag) is the cu130 build: that is not a mislabel
    assert device.identity(dev, build, builds.plan("cuda", {})).outcome == "unavailable"


def test_cuda_variant_mismatch_is_a_failure(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+cu126", cuda="12.6", cuda_devices=1)
    monkeypatch.setattr(device, "_nvidia_driver", lambda: "580.1")
    build = device.detect_build()
    dev = device.probe("cuda", build)
    ident = device.identity(dev, build, builds.plan("cuda", {"CONFORMANCE_CUDA_VARIANT": "cu130"}))
    assert ident.outcome == "fail" and "cu130" in ident.message and "2.13.0+cu126" in ident.message


def test_version_pin_mismatch_is_a_failure(monkeypatch):
    fake_torch(monkeypatch, version="2.12.0+cpu")
    build = device.detect_build()
    ident = device.identity(device.probe("cpu", build), build, builds.plan("cpu", {"TORCH_VERSION": "2.13.0"}))
    assert ident.outcome == "fail" and "pins torch 2.13.0" in ident.message


def test_torch_missing_is_unavailable(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    build = device.detect_build()
    assert not build.importable
    dev = device.probe("cpu", build)
    assert not dev.available and "torch is not importable" in dev.reason


def test_unknown_device_names_the_valid_ones():
    with pytest.raises(ValueError, match="cpu, cuda, xpu, hpu, rocm, mps"):
        device.probe("tpu")


# --- ROCm: torch.version.hip, devices through torch.cuda, backend nccl (RCCL) -----------------------------------

@pytest.fixture
def amd_driver(monkeypatch):
    monkeypatch.setattr(device, "_amdgpu_driver", lambda: "6.12.12")
    for var in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)


def test_rocm_build_with_gpus(monkeypatch, amd_driver):
    fake_torch(monkeypatch, version="2.13.0+rocm7.1", hip="7.1.25424", cuda_devices=2)
    build = device.detect_build()
    assert build.variant == "rocm7.1" and build.markers == {"rocm": "7.1.25424"}
    dev = device.probe("rocm", build)
    assert dev.available and dev.backend == "nccl" and dev.count == 2 and dev.device_string == "cuda:0"
    assert dev.runtime == "rocm" and dev.runtime_version == "7.1.25424" and dev.driver_version == "6.12.12"
    assert dev.names[0].startswith("Fake AMD Instinct")
    plan = builds.plan("rocm", {})
    assert device.identity(dev, build, plan).outcome == "pass"
    meta = device.metadata("rocm", dev, build, plan).to_properties()
    assert meta["backend"] == "nccl" and meta["torch_variant"] == "rocm7.1" and meta["runtime"] == "rocm"
    assert meta["device_simulated"] == "false"


def test_rocm_variant_mismatch_and_cpu_fallback_fail_identity(monkeypatch, amd_driver):
    fake_torch(monkeypatch, version="2.13.0+rocm6.4", hip="6.4.43482", cuda_devices=1)
    build = device.detect_build()
    dev = device.probe("rocm", build)
    ident = device.identity(dev, build, builds.plan("rocm", {"CONFORMANCE_ROCM_VARIANT": "rocm7.1"}))
    assert ident.outcome == "fail" and "rocm7.1" in ident.message and "2.13.0+rocm6.4" in ident.message
    assert device.identity(dev, build, builds.plan("rocm", {"CONFORMANCE_ROCM_VARIANT": "rocm6.4"})).outcome == "pass"

    fake_torch(monkeypatch, version="2.13.0+cpu")  # pip fell back to the default index's wheel
    build = device.detect_build()
    dev = device.probe("rocm", build)
    assert not dev.available and "has no ROCm support" in dev.reason
    pinned = device.identity(dev, build, builds.plan("rocm", {}))
    assert pinned.outcome == "fail" and "2.13.0+cpu" in pinned.message and "refusing to label it rocm" in pinned.message
    host = device.identity(dev, build, builds.plan("rocm", {"CONFORMANCE_HOST_TORCH": "1"}))
    assert host.outcome == "unavailable", "a CPU build in host mode ran nothing: unavailable, as for xpu"


def test_cuda_and_rocm_builds_never_pass_as_each_other(monkeypatch, amd_driver):
    monkeypatch.setattr(device, "_nvidia_driver", lambda: "580.1")
    host = {"CONFORMANCE_HOST_TORCH": "1"}
    # A ROCm build finds the AMD GPUs through torch.cuda: under `cuda` that is a mislabel even in host mode.
    fake_torch(monkeypatch, version="2.13.0+rocm7.1", hip="7.1.25424", cuda_devices=2)
    build = device.detect_build()
    dev = device.probe("cuda", build)
    assert not dev.available and "(it is a ROCm build)" in dev.reason
    for env in ({}, host):
        ident = device.identity(dev, build, builds.plan("cuda", env))
        assert ident.outcome == "fail" and "refusing to label it cuda" in ident.message, env
    # and a CUDA build under `rocm`
    fake_torch(monkeypatch, version="2.13.0", cuda="13.0", cuda_devices=2)
    build = device.detect_build()
    dev = device.probe("rocm", build)
    assert not dev.available and "(it is a CUDA build)" in dev.reason
    for env in ({}, host):
        ident = device.identity(dev, build, builds.plan("rocm", env))
        assert ident.outcome == "fail" and "refusing to label it rocm" in ident.message, env
    assert "found a CUDA build" in device.identity(dev, build, builds.plan("rocm", host)).message


def test_rocm_visibility_variables_are_honoured_and_named(monkeypatch, amd_driver):
    fake_torch(monkeypatch, version="2.13.0+rocm7.1", hip="7.1.25424", cuda_devices=0)  # HIP hides them all
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "")
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "3")
    dev = device.probe("rocm")
    assert not dev.available and dev.reason.startswith("no AMD GPU visible")
    assert "HIP_VISIBLE_DEVICES=''" in dev.reason and "ROCR_VISIBLE_DEVICES='3'" in dev.reason


def test_rocm_without_driver_is_unavailable(monkeypatch):
    fake_torch(monkeypatch, version="2.13.0+rocm7.1", hip="7.1.25424", cuda_devices=0)
    monkeypatch.setattr(device, "_amdgpu_driver", lambda: "")
    monkeypatch.setattr(device.os.path, "exists", lambda p: False)
    dev = device.probe("rocm")
    assert not dev.available and "no AMD GPU driver" in dev.reason


# --- MPS: macOS only, identity needs torch.backends.mps.is_built(), no collective backend ------------------------

def test_mps_build_on_macos(monkeypatch):
    monkeypatch.setattr(device.sys, "platform", "darwin")
    fake_torch(monkeypatch, version="2.13.0", mps_built=True, mps_devices=1)
    build = device.detect_build()
    assert build.variant == "mps"
    dev = device.probe("mps", build)
    assert dev.available and dev.device_string == "mps:0" and dev.count == 1 and dev.runtime == "mps"
    assert dev.backend == "" and "no collective backend for MPS tensors" in dev.no_backend_reason
    plan = builds.plan("mps", {})
    assert device.identity(dev, build, plan).outcome == "pass"
    assert device.metadata("mps", dev, build, plan).backend == ""


def test_mps_identity_requires_an_mps_build(monkeypatch):
    monkeypatch.setattr(device.sys, "platform", "darwin")
    fake_torch(monkeypatch, version="2.13.0", mps_built=False)
    build = device.detect_build()
    dev = device.probe("mps", build)
    assert not dev.available and "has no MPS support" in dev.reason
    ident = device.identity(dev, build, builds.plan("mps", {}))
    assert ident.outcome == "fail" and "mps" in ident.message


def test_mps_elsewhere_than_macos_is_unavailable_with_reason(monkeypatch):
    monkeypatch.setattr(device.sys, "platform", "linux")
    fake_torch(monkeypatch, version="2.13.0+cpu")
    dev = device.probe("mps")
    assert not dev.available and "only on darwin" in dev.reason


def test_mps_multi_rank_checks_are_unavailable_with_the_reason():
    from conformance.pool import pools
    from conformance.torchenv import profiles

    p = pools.Pools(profiles.MPS, "", 1)
    for world in (1, 2):
        with pytest.raises(pools.Unavailable, match="no collective backend for MPS tensors"):
            p.check_available(world)


# --- what else flows from the profiles -------------------------------------------------------------------------

def test_rank_env_comes_from_the_profile():
    from conformance.pool import worker
    from conformance.torchenv import profiles

    nvls_off = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
    assert worker.rank_env(profiles.CUDA) == nvls_off, "multicast must stay off on shared multi-GPU hosts"
    assert worker.rank_env(profiles.ROCM) == nvls_off, "RCCL reads the NCCL_* names"
    assert worker.rank_env(profiles.CPU) == {}


def test_rocm_ranks_use_the_cuda_device_type():
    from conformance.pool import pools
    from conformance.pool.scenarios import RankContext
    from conformance.torchenv import profiles

    p = pools.Pools(profiles.ROCM, "nccl", 1)
    ctx = RankContext(1, 2, p.profile, p.profile.device_string(1), "nccl")
    assert (ctx.device_type, ctx.device_string, ctx.profile.name) == ("cuda", "cuda:1", "rocm")
    with pytest.raises(pools.Unavailable, match="needs 2 rocm devices, found 1"):
        p.check_available(2)


def test_tolerance_overrides_come_from_the_profiles():
    from conformance.suite import tolerances
    from conformance.torchenv import profiles

    assert tolerances.tol("rocm", "bfloat16") == tolerances.Tol(*profiles.ROCM.tolerances["bfloat16"])
    assert tolerances.tol("cuda", "float32") == tolerances.Tol(rtol=1e-5, atol=1e-5)
    assert tolerances.tol("cpu", "float32") == tolerances.TABLE[("*", "float32")]
    assert tolerances.tol("mps", "float16") == tolerances.Tol(*profiles.MPS.tolerances["float16"])
