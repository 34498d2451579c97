"""The pins: one version for the matrix, per-device variant and index, overrides, index probing."""

from __future__ import annotations

import socket

import pytest

from conformance.torchenv import builds


def test_defaults_come_from_one_place():
    for dev in ("cpu", "cuda", "xpu"):
        plan = builds.plan(dev, {})
        assert plan.version == builds.DEFAULT_TORCH_VERSION and plan.source == "pinned"
    assert builds.plan("cpu", {}).index_url == "https://download.pytorch.org/whl/cpu"
    assert builds.plan("cuda", {}).exact_requirement == f"torch=={builds.DEFAULT_TORCH_VERSION}+cu130"
    assert builds.plan("xpu", {}).index_url.endswith("/xpu")
    assert builds.plan("hpu", {}).source == "host"


def test_overrides():
    env = {"TORCH_VERSION": "2.14.1", "CONFORMANCE_CUDA_VARIANT": "cu128",
           "CONFORMANCE_INDEX_BASE": "https://mirror.example/whl/", "CONFORMANCE_XPU_INDEX": "file:///wheels/xpu"}
    assert builds.plan("cuda", env).exact_requirement == "torch==2.14.1+cu128"
    assert builds.plan("cuda", env).index_url == "https://mirror.example/whl/cu128"
    assert builds.plan("xpu", env).index_url == "file:///wheels/xpu"
    assert builds.plan("cpu", {"CONFORMANCE_HOST_TORCH": "1"}).source == "host"
    assert builds.plan("cpu", {"CONFORMANCE_HOST_TORCH": "0"}).source == "pinned"


def test_unknown_device():
    with pytest.raises(ValueError, match="choose one of cpu, cuda, xpu, hpu"):
        builds.plan("mps", {})


@pytest.mark.parametrize("version, cuda, hip, xpu, gaudi, variant", [
    ("2.13.0+cpu", None, None, None, False, "cpu"),
    ("2.13.0", "13.0", None, None, False, "cu130"),
    ("2.13.0+cu126", "12.6", None, None, False, "cu126"),
    ("2.13.0+rocm6.4", None, "6.4.43482", None, False, "rocm6.4"),
    ("2.13.0+xpu", None, None, "20250101", False, "xpu"),
    ("2.6.0", None, None, None, True, "gaudi"),
])
def test_variant_of(version, cuda, hip, xpu, gaudi, variant):
    assert builds.variant_of(version, cuda, hip, xpu, gaudi) == variant


def test_index_probe_is_quick_and_says_why(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    ok, why = builds.index_reachable(f"http://127.0.0.1:{port}/whl/cpu", timeout=2)
    assert not ok and f"127.0.0.1:{port} unreachable" in why
    ok, why = builds.index_reachable("file:///definitely/not/here")
    assert not ok and "not a folder" in why


def test_index_probe_reaches_a_live_server(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        ok, _ = builds.index_reachable(f"http://127.0.0.1:{listener.getsockname()[1]}/whl/cpu")
        assert ok
    finally:
        listener.close()


def test_versioned_envs_pin_their_series_whatever_torch_version_says():
    env = {"CONFORMANCE_TORCH_SERIES": "2.14", "TORCH_VERSION": "2.13.0"}
    assert builds.plan("cpu", env).version == builds.RELEASES["2.14"]
    with pytest.raises(ValueError, match="unknown torch series '9.9'"):
        builds.plan("cpu", {"CONFORMANCE_TORCH_SERIES": "9.9"})
