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
    with pytest.raises(ValueError, match="choose one of cpu, cuda, xpu, hpu, rocm, mps"):
        builds.plan("tpu", {})


def test_rocm_variant_is_settable_like_cuda():
    assert builds.plan("rocm", {}).exact_requirement == f"torch=={builds.DEFAULT_TORCH_VERSION}+rocm7.1"
    plan = builds.plan("rocm", {"CONFORMANCE_ROCM_VARIANT": "rocm6.4", "CONFORMANCE_INDEX_BASE": "https://m.example/whl"})
    assert plan.variant == "rocm6.4" and plan.index_url == "https://m.example/whl/rocm6.4"
    assert plan.exact_requirement.endswith("+rocm6.4")
    assert builds.plan("rocm", {"CONFORMANCE_ROCM_INDEX": "file:///w/rocm"}).index_url == "file:///w/rocm"


def test_mps_installs_the_default_indexs_plain_wheel():
    plan = builds.plan("mps", {})
    assert plan.source == "pinned" and plan.index_url is None and plan.variant == "mps"
    assert plan.exact_requirement == f"torch=={builds.DEFAULT_TORCH_VERSION}", "macOS wheels carry no local tag"


def test_devices_backends_and_host_only_come_from_the_profiles():
    from conformance.torchenv import profiles

    assert builds.DEVICES[:6] == ("cpu", "cuda", "xpu", "hpu", "rocm", "mps")
    assert builds.DEVICES == profiles.names()
    assert builds.BACKENDS["rocm"] == "nccl" and builds.BACKENDS["mps"] == "", "MPS has no collective backend"
    assert builds.HOST_ONLY_DEVICES >= {"hpu"} and "rocm" not in builds.HOST_ONLY_DEVICES


def test_builds_imports_without_torch(tmp_path):
    """install-torch plans before torch exists in the env: builds (and the profiles it reads) must not need it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from conformance.torchenv import builds\n"
            "print(builds.plan('rocm', {}).exact_requirement, sorted(m for m in sys.modules if m.startswith('torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "+rocm" in out and out.strip().endswith("['torch']")


def test_host_mode_is_remembered_by_the_env_and_forgotten_on_request(tmp_path):
    assert builds.plan("cuda", {}, prefix=str(tmp_path)).source == "pinned"
    (tmp_path / builds.HOST_MARKER).write_text("{}")
    remembered = builds.plan("cuda", {}, prefix=str(tmp_path))
    assert remembered.source == "host" and builds.HOST_MARKER in remembered.host_because
    assert builds.plan("cuda", {"CONFORMANCE_HOST_TORCH": "0"}, prefix=str(tmp_path)).source == "pinned"
    assert builds.plan("cuda", {"CONFORMANCE_HOST_TORCH": "1"}, prefix=str(tmp_path)).host_because.startswith(
        "CONFORMANCE_HOST_TORCH")


@pytest.mark.parametrize("version, markers, variant", [
    ("2.13.0+cpu", {}, "cpu"),
    ("2.13.0", {"cuda": "13.0"}, "cu130"),
    ("2.13.0+cu126", {"cuda": "12.6"}, "cu126"),
    ("2.13.0+rocm6.4", {"rocm": "6.4.43482"}, "rocm6.4"),
    ("2.13.0+xpu", {"xpu": "20250101"}, "xpu"),
    ("2.13.0+xpu", {"xpu": "built"}, "xpu"),
    ("2.6.0", {"hpu": "1.22.0"}, "gaudi"),
    ("2.6.0+cu124", {"hpu": "1.22.0", "cuda": "12.4"}, "gaudi"),  # the bridge names the build
    ("2.13.0", {"mps": "built"}, "mps"),
])
def test_variant_of(version, markers, variant):
    assert builds.variant_of(version, markers) == variant


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


def test_tox_envs_and_labels_follow_the_releases():
    """One `-torch<series>` factor per release, the `versions` label covering them, `newest` naming the last one
    (CI runs it beside the pin), and the report waiting for every versioned env."""
    import configparser
    import re
    from pathlib import Path

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(Path(__file__).parent.parent / "tox.ini")
    section = next(name for name in ini.sections() if name.startswith("testenv:{cpu,"))
    factors = set(re.findall(r"-torch(\d+\.\d+)", section))
    assert factors == set(builds.RELEASES), f"tox.ini [{section}] vs RELEASES {sorted(builds.RELEASES)}"
    labels = dict(line.split("=", 1) for line in ini["tox"]["labels"].strip().splitlines()
                  if "=" in line and not line.strip().startswith("#"))
    labels = {k.strip(): [e.strip() for e in v.split(",")] for k, v in labels.items()}
    assert labels["versions"] == [f"cpu-torch{s}" for s in sorted(builds.RELEASES, key=lambda s: s.split("."))]
    assert labels["newest"] == [f"cpu-torch{builds.NEWEST_SERIES}"]
    assert set(re.findall(r"-torch(\d+\.\d+)", ini["testenv:report"]["depends"])) == set(builds.RELEASES)
    for series in builds.RELEASES:
        assert f"torch{series}: CONFORMANCE_TORCH_SERIES = {series}" in ini[section]["set_env"]


def test_newest_series_and_the_default_indexs_cuda_build():
    assert builds.NEWEST_SERIES == "2.15" and builds.RELEASES["2.15"] == "2.15.0"
    assert builds.RELEASES["2.12"] == "2.12.1"
    assert builds.pypi_default_variant("2.14.1") == "cu130"
    assert builds.pypi_default_variant("2.15.0") == "cu132", "measured: PyPI's 2.15.0 Linux wheel is +cu132"


@pytest.mark.parametrize("name,system,signs,reason", [
    ("cpu", "linux", {}, ""),
    ("mps", "linux", {}, "Apple GPU (MPS) exists only on darwin; this host is linux"),
    ("mps", "darwin", {}, ""),
    ("cuda", "linux", {}, "no NVIDIA driver on this host"),
    ("cuda", "linux", {"path": "nvidia"}, ""),
    ("cuda", "linux", {"tool": "nvidia-smi"}, ""),
    ("rocm", "linux", {}, "no AMD GPU driver on this host"),
    ("rocm", "linux", {"path": "amdgpu"}, ""),
    ("xpu", "linux", {}, "no Intel GPU on this host"),
    ("xpu", "linux", {"intel": True}, ""),
    ("xpu", "win32", {}, ""),  # no stdlib sign of an Intel GPU there: the suite's probe decides
    ("hpu", "linux", {}, "no Intel Gaudi driver on this host"),  # host-only: decides absence when the host has no torch
    ("hpu", "linux", {"gaudi": True}, ""),
])
def test_host_lacks_tells_certain_absence_without_torch(tmp_path, monkeypatch, name, system, signs, reason):
    from conformance.torchenv import profiles

    present = tmp_path / "present"
    present.write_text("")
    missing = str(tmp_path / "missing")
    table = {}
    for driver, (_, tools, why) in builds._DRIVER_SIGNS.items():
        table[driver] = ((str(present) if signs.get("path") == driver else missing,), tools, why)
    monkeypatch.setattr(builds, "_DRIVER_SIGNS", table)
    monkeypatch.setattr(builds.shutil, "which", lambda tool: "/bin/x" if tool == signs.get("tool") else None)
    drm = tmp_path / "drm"
    (drm / "renderD128" / "device").mkdir(parents=True)
    (drm / "renderD128" / "device" / "vendor").write_text("0x8086\n" if signs.get("intel") else "0x1af4\n")
    monkeypatch.setattr(builds, "_DRM", str(drm))
    monkeypatch.setattr(builds, "_GAUDI_PATHS", (str(present) if signs.get("gaudi") else missing,))
    got = builds.host_lacks(profiles.get(name), system)
    assert got.startswith(reason) and bool(got) == bool(reason), got


def test_plan_reads_the_recorded_absence(tmp_path):
    (tmp_path / builds.ABSENT_MARKER).write_text("no NVIDIA driver on this host; torch not installed\n")
    plan = builds.plan("cuda", {}, prefix=str(tmp_path))
    assert plan.absent == "no NVIDIA driver on this host; torch not installed"
    assert builds.plan("cuda", {}, prefix=str(tmp_path / "other")).absent == ""


def test_tox_writes_no_venv_redirect_file():
    """tox >= 4.6x writes a `.venv` file (PEP 832) pointing at one of its envs unless told not to; the Quick start's
    `python3 -m venv .venv` after any tox run would then fail. tox itself must read `venv_redirect = false`."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, "-m", "tox", "config", "--core", "-k", "venv_redirect", "-c",
                          str(root / "tox.ini")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "venv_redirect = False" in out.stdout, out.stdout[-2000:]
