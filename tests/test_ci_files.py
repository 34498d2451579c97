"""CI fan-out files: every device env of tox.ini has a job in GitHub Actions and GitLab, and the merge job is wired."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml is a test dependency (pip install -e .[test])")

ROOT = Path(__file__).resolve().parents[1]


def device_envs() -> list[str]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    envs: list[str] = []
    for line in cfg["tox"]["labels"].strip().splitlines():
        label, _, names = line.partition("=")
        if label.strip() in ("devices", "versions"):
            envs += [n.strip() for n in names.split(",") if n.strip()]
    assert {"cpu", "cuda", "rocm", "mps"} <= set(envs), envs
    return envs


def test_github_has_a_job_per_env_and_a_merge_job():
    wf = yaml.safe_load((ROOT / ".github/workflows/conformance.yml").read_text())
    matrix = wf["jobs"]["device"]["strategy"]["matrix"]["include"]
    by_env = {row["env"]: row for row in matrix}
    assert sorted(by_env) == sorted(device_envs())
    for env in ("cuda", "xpu", "hpu", "rocm", "mps"):
        assert env in by_env[env]["runs-on"] and "self-hosted" in by_env[env]["runs-on"]
        assert by_env[env]["strict"] == "1", "absence on an accelerator runner must fail"
    assert by_env["hpu"]["host"] == "1"
    steps = wf["jobs"]["device"]["steps"]
    assert any("tox -e ${{ matrix.env }}" in s.get("run", "") for s in steps)
    assert any(s.get("with", {}).get("path") == "reports/${{ matrix.env }}.xml" for s in steps)
    report = wf["jobs"]["report"]
    assert report["needs"] == "device" and "always()" in report["if"]
    text = yaml.safe_dump(report)
    assert "GITHUB_STEP_SUMMARY" in text and "reports/merged.xml" in text and "--baseline" in text
    env_multicast = wf["jobs"]["device"]["env"]
    assert env_multicast["NCCL_NVLS_ENABLE"] == "0" and env_multicast["NVSHMEM_DISABLE_NVLS"] == "1"


def test_gitlab_has_a_job_per_env_and_junit_reports():
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    for env in device_envs():
        assert env in ci, f"no GitLab job for tox env {env}"
        job = ci[env]
        assert job["extends"] == ".device" and job["variables"]["CONFORMANCE_ENV_NAME"] == env
    for env in ("cuda", "xpu", "hpu", "rocm", "mps"):
        assert ci[env]["tags"] == [env]
    assert ci[".device"]["artifacts"]["reports"]["junit"] == "reports/$CONFORMANCE_ENV_NAME.xml"
    assert ci["report"]["artifacts"]["reports"]["junit"] == "reports/merged.xml"
    assert {n["job"] for n in ci["report"]["needs"]} == set(device_envs())
