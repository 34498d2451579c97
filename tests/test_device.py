"""Device decision and build identity, on simulated XPU, Gaudi, CUDA and ROCm builds (no such hardware here)."""

from __future__ import annotations

import types

import pytest

from conformance.torchenv import builds, device


def fake_torch(monkeypatch, version="2.13.0+cpu", cuda=None, hip=None, xpu=None, xpu_devices=0, hpu_devices=None,
               cuda_devices=0):
    torch = types.ModuleType("torch")
    torch.__version__ = version
    torch.__file__ = "/fake/torch/__init__.py"
    torch.version = types.SimpleNamespace(cuda=cuda, hip=hip, xpu=xpu)
    torch.cuda = types.SimpleNamespace(device_count=lambda: cuda_devices,
                                       get_device_name=lambda i: f"Fake GPU {i}")
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
    assert dev.available and dev.backend == "xccl" and dev.count == 2 and dev.torch_device == "xpu:0"
    assert dev.names[0].startswith("Intel(R) Data Center GPU Max") and dev.driver_version == "1.6.31294"
    ident = device.identity(dev, build, builds.plan("xpu", {}))
    assert ident.outcome == "pass", ident.message
    meta = device.metadata("xpu", dev, build, builds.plan("xpu", {}))
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
    with pytest.raises(ValueError, match="cpu, cuda, xpu, hpu"):
        device.probe("tpu")
