"""Devices as data: the registry against the README and tox.ini, an out-of-tree device registered by an installed
package (SIMULATED, tests/support/oot_device), and `conformance run`/`info` for devices absent here (rocm)."""

from __future__ import annotations

import configparser
import fnmatch
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance import errors
from conformance.torchenv import builds, device, profiles

ROOT = Path(__file__).resolve().parents[1]
_OUTER = ("CONFORMANCE_ENV", "TOX_ENV_NAME", "CONFORMANCE_STRICT", "CONFORMANCE_TIME_LIMIT", "CONFORMANCE_HOST_TORCH",
          "SIMDEV_BUILD", "SIMDEV_DEVICES")


def run_conformance(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in _OUTER}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "conformance", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def cases(path: Path) -> dict[str, ET.Element]:
    return {f"{c.get('classname')}::{c.get('name')}": c for c in ET.parse(path).getroot().iter("testcase")}


def props(path: Path) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("property")}


# --- the registry is the one source ----------------------------------------------------------------------------

def readme_device_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Devices, builds and backends", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_readme_device_table_matches_the_registry():
    rows = readme_device_table()
    assert set(rows) == {p.name for p in profiles.BUILTIN}, "one README row per built-in device profile"
    for p in profiles.BUILTIN:
        _, label, build, index, backend = rows[p.name]
        assert label == p.label, p.name
        assert backend.split()[0].rstrip(":") == (p.backend or "none"), p.name
        if p.host_only:
            assert "not pip-installable" in index and "host mode" in build, p.name
        elif p.variant:
            assert f"+{p.variant}`" in build and index.endswith(f"/{p.variant}`"), p.name
            if p.variant_setting:
                assert f"CONFORMANCE_{p.variant_setting}" in build, p.name
        else:
            assert "default index" in index, p.name


def test_tox_passes_every_profiles_variables_through():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    passed = [v.strip() for v in cfg["testenv"]["pass_env"].split() if v.strip()]
    for p in profiles.BUILTIN:
        for var in (*p.pass_env, *p.visibility_vars, *profiles.COMMON_PASS_ENV):
            assert any(fnmatch.fnmatch(var, pattern) or var == pattern for pattern in passed), (p.name, var)
    # and every built-in device has its env (with the version axis)
    section = next(s for s in cfg.sections() if s.startswith("testenv:{cpu,"))
    for p in profiles.BUILTIN:
        assert p.name in section and f"{p.name}: CONFORMANCE_DEVICE = {p.name}" in cfg[section]["set_env"]


def test_every_profile_is_well_formed():
    for p in profiles.all_profiles().values():
        assert p.backend or p.no_backend_reason, f"{p.name}: without a backend, say why multi-rank checks cannot run"
        assert not p.build_probes or p.build_kind, p.name
        assert p.driver in ("", "nvidia", "amdgpu", "properties") or p.driver.startswith("dist:"), p.name
        assert all(k in ("float16", "bfloat16", "float32", "float64") for k in p.tolerances), p.name


# --- an out-of-tree device from an installed package (SIMULATED) -----------------------------------------------

@pytest.fixture(scope="module")
def simdev() -> profiles.Profile:
    eps = [ep for ep in importlib.metadata.entry_points(group=profiles.ENTRY_POINT_GROUP) if ep.name == "simdev"]
    assert eps, ("the simulated out-of-tree device is not installed: `pip install -e tests/support/oot_device` "
                 "(tox's tests env installs it)")
    profiles.reload()
    return profiles.get("simdev")


def test_entry_point_profile_joins_the_registry(simdev):
    assert simdev.simulated, "a test stand-in must say it is simulated"
    assert simdev.source == "conformance-oot-sim-device"
    assert "simdev" in builds.DEVICES and builds.BACKENDS["simdev"] == "simccl"
    assert profiles.load_errors() == []


def test_simulated_device_detection_backend_identity_and_metadata_flow_from_its_profile(simdev, monkeypatch):
    monkeypatch.setenv("SIMDEV_BUILD", "1")
    monkeypatch.setenv("SIMDEV_DEVICES", "2")
    build = device.detect_build()
    assert build.markers.get("simdev") == "0.1.0+simulated", "the profile's import_first and build probe ran"
    dev = device.probe("simdev", build)
    assert dev.available and dev.count == 2 and dev.backend == "simccl" and dev.simulated
    assert all("simulated" in n and "not real hardware" in n for n in dev.names)
    plan = builds.plan("simdev", {"TORCH_VERSION": build.version.partition("+")[0]})
    ident = device.identity(dev, build, plan)
    assert ident.outcome == "pass" and "SIMULATED" in ident.message
    meta = device.metadata("simdev", dev, build, plan).to_properties()
    assert meta["device_simulated"] == "true" and meta["backend"] == "simccl" and meta["device"] == "simdev"


def test_simulated_device_absent_or_build_without_it(simdev, monkeypatch):
    monkeypatch.setenv("SIMDEV_BUILD", "1")
    monkeypatch.setenv("SIMDEV_DEVICES", "0")
    dev = device.probe("simdev")
    assert not dev.available and dev.reason == "no simulated device visible (SIMDEV_DEVICES='0')"
    monkeypatch.delenv("SIMDEV_BUILD")
    build = device.detect_build()
    dev = device.probe("simdev", build)
    assert not dev.available and "has no SimDev support" in dev.reason
    pinned = device.identity(dev, build, builds.plan("simdev", {"TORCH_VERSION": build.version.partition("+")[0]}))
    assert pinned.outcome == "fail" and "without SimDev support" in pinned.message
    host = device.identity(dev, build, builds.plan("simdev", {"CONFORMANCE_HOST_TORCH": "1"}))
    assert host.outcome == "unavailable"


def test_simulated_device_tolerance_override(simdev):
    from conformance.suite import tolerances

    assert tolerances.tol("simdev", "float32") == tolerances.Tol(*simdev.tolerances["float32"])


def test_run_on_the_simulated_device_end_to_end(simdev, tmp_path):
    """Ranks import the profile's module (its backend exists only then) and get its rank variables; the column
    says simulated."""
    out = tmp_path / "simdev.xml"
    selection = "identity or (ScheduleGPipe and fp32 and (world1 or world2) and not kwargs)"
    proc = run_conformance("run", "--device", "simdev", "--junitxml", str(out), "--", "-q", "-k", selection,
                           SIMDEV_BUILD="1", SIMDEV_DEVICES="2", CONFORMANCE_HOST_TORCH="1")
    assert proc.returncode == errors.OK, proc.stdout[-3000:] + proc.stderr[-3000:]
    c = cases(out)
    ran = [k for k in c if "world2" in k]
    assert ran and all(len(list(c[k])) == 0 for k in ran), "world-2 checks must pass on the simulated device"
    assert any("world1" in k for k in c)
    p = props(out)
    assert p["backend"] == "simccl" and p["device_simulated"] == "true" and "not real hardware" in p["device_names"]

    report = run_conformance("report", str(out), "--output-dir", str(tmp_path / "r"), "--format", "md,json")
    assert report.returncode == errors.OK, report.stdout + report.stderr
    assert "SIMULATED" in (tmp_path / "r" / "compatibility.md").read_text()


def test_simulated_device_absent_reports_every_check_unavailable(simdev, tmp_path):
    out = tmp_path / "simdev.xml"
    proc = run_conformance("run", "--device", "simdev", "--junitxml", str(out), "--", "-q", "-k", "seed or identity",
                           SIMDEV_BUILD="1", CONFORMANCE_HOST_TORCH="1")
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    for key, case in cases(out).items():
        skipped = case.find("skipped")
        assert skipped is not None and "no simulated device visible" in skipped.get("message"), key


# --- ROCm on this CPU machine ----------------------------------------------------------------------------------

def test_rocm_run_here_is_unavailable_with_the_reason_in_host_mode_and_a_mislabel_when_pinned(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.version.hip:
        pytest.skip("a ROCm build is installed here")
    out = tmp_path / "rocm.xml"
    proc = run_conformance("run", "--device", "rocm", "--junitxml", str(out), "--", "-q", "-k",
                           "seed or identity or (GPipe and world2 and fp32)", CONFORMANCE_HOST_TORCH="1")
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    c = cases(out)
    assert len(c) >= 3
    for key, case in c.items():
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message").startswith("unavailable: "), key
        assert "has no ROCm support" in skipped.get("message"), key
    assert props(out)["backend"] == "nccl" and props(out)["device"] == "rocm"

    pinned = run_conformance("run", "--device", "rocm", "--junitxml", str(out), "--", "-q", "-k", "identity",
                             TORCH_VERSION=torch.__version__.partition("+")[0], CONFORMANCE_HOST_TORCH="0")
    assert pinned.returncode == errors.FAILED
    failure = next(iter(cases(out).values())).find("failure")
    assert failure is not None and "expected the rocm7.1 build" in failure.get("message")


def test_info_for_rocm_prints_json():
    proc = run_conformance("info", "--device", "rocm")
    assert proc.returncode == errors.OK, proc.stderr
    data = json.loads(proc.stdout)
    assert data["devices"]["rocm"]["backend"] == "nccl"
    assert data["profiles"]["rocm"]["torch_type"] == "cuda"
    assert "HIP_VISIBLE_DEVICES" in data["profiles"]["rocm"]["pass_env"]
    assert re.fullmatch(r"rocm\d+\.\d+", data["pins"]["rocm"]["variant"])
