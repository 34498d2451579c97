"""CI files: every device env of tox.ini has a job in GitHub Actions and GitLab, the merge job is wired, and both
files stay valid against their published schemas with no high workflow-audit finding (check-jsonschema, zizmor)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml is a test dependency (pip install -e .[test])")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "conformance.yml"
GITLAB = ROOT / ".gitlab-ci.yml"
ACCELERATORS = ("cuda", "xpu", "hpu", "rocm", "mps")


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
    wf = yaml.safe_load(WORKFLOW.read_text())
    matrix = wf["jobs"]["device"]["strategy"]["matrix"]["include"]
    by_env = {row["env"]: row for row in matrix}
    assert sorted(by_env) == sorted(device_envs())
    for env in ACCELERATORS:
        assert env in by_env[env]["runs-on"] and "self-hosted" in by_env[env]["runs-on"]
        assert by_env[env]["strict"] == "1", "absence on an accelerator runner must fail"
    assert by_env["hpu"]["host"] == "1"
    steps = wf["jobs"]["device"]["steps"]
    run = next(s for s in steps if "tox -e" in s.get("run", ""))
    assert run["run"].endswith('tox -e "$ENV_NAME"') and run["env"]["ENV_NAME"] == "${{ matrix.env }}"
    assert any(s.get("with", {}).get("path") == "reports/${{ matrix.env }}.xml" for s in steps)
    report = wf["jobs"]["report"]
    assert report["needs"] == "device" and "always()" in report["if"]
    text = yaml.safe_dump(report)
    assert "GITHUB_STEP_SUMMARY" in text and "reports/merged.xml" in text and "--baseline" in text
    expect = next(line for line in text.splitlines() if "--expect" in line)
    assert set(expect.partition("--expect ")[2].strip(")").split(",")) == set(device_envs()), expect
    env_multicast = wf["jobs"]["device"]["env"]
    assert env_multicast["NCCL_NVLS_ENABLE"] == "0" and env_multicast["NVSHMEM_DISABLE_NVLS"] == "1"


def test_github_workflow_is_hardened():
    """The properties zizmor checks, stated here too: SHA-pinned actions, no persisted checkout credentials, no
    workflow-wide permissions, no expression spliced into a script."""
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert wf["permissions"] == {}, "permissions are per job"
    for name, job in wf["jobs"].items():
        assert "permissions" in job and "checks" not in job["permissions"], name
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                ref = uses.partition("@")[2]
                assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), f"{name}: {uses} not SHA-pinned"
                assert uses.startswith("actions/"), f"{name}: {uses}: only GitHub's own actions"
                if uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, name
            assert "${{" not in step.get("run", ""), f"{name}: expression in a script: {step.get('run')!r}"
    pinned = [line for line in WORKFLOW.read_text().splitlines() if "uses: actions/" in line]
    assert pinned and all("# v" in line for line in pinned), "each pin names its release in a comment"


def test_github_report_job_prints_the_annotations_after_the_merge():
    """The merge writes every output plus reports/annotations.txt; a later step, run whatever the merge's exit
    status, prints it so its workflow commands become the pull request's annotations."""
    from conformance.report.engine import FORMATS

    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]
    merge = next(i for i, s in enumerate(steps) if s.get("id") == "merge")
    fmt = next(line for line in steps[merge]["run"].splitlines() if "--format" in line)
    formats = fmt.partition("--format ")[2].split(")")[0].split(",")
    assert set(formats) == set(FORMATS) and FORMATS["github"][0] == "annotations.txt", fmt
    printing = [i for i, s in enumerate(steps) if "cat reports/annotations.txt" in s.get("run", "")]
    assert len(printing) == 1 and printing[0] > merge, "one step after the merge prints the annotations"
    assert "always()" in steps[printing[0]]["if"]


def test_gitlab_has_a_job_per_env_and_junit_reports():
    ci = yaml.safe_load(GITLAB.read_text())
    for env in device_envs():
        assert env in ci, f"no GitLab job for tox env {env}"
        job = ci[env]
        assert job["extends"] in (".device", ".hosted") and job["variables"]["CONFORMANCE_ENV_NAME"] == env
    assert ci[".hosted"]["extends"] == ".device" and ci[".hosted"]["image"].startswith("python:")
    for env in ACCELERATORS:
        assert ci[env]["tags"] == [env] and ci[env]["extends"] == ".device" and "image" not in ci[env]
    assert "image" not in ci[".device"], "accelerator jobs run in their tagged runner's own environment"
    assert ci[".device"]["artifacts"]["reports"]["junit"] == "reports/$CONFORMANCE_ENV_NAME.xml"
    assert ci["report"]["artifacts"]["reports"]["junit"] == "reports/merged.xml"
    assert {n["job"] for n in ci["report"]["needs"]} == set(device_envs())


# --- the published schemas and the workflow audit, offline ------------------------------------------------------

def _tool(name: str) -> str:
    """The tool from the test extra (next to this interpreter), else on PATH; CI must not pass by skipping."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found:
        return found
    if os.environ.get("CONFORMANCE_REQUIRE_E2E") == "1":  # set by .ci/run
        pytest.fail(f"{name} is missing: it is in the test extra (pip install -e .[test])")
    pytest.skip(f"{name} is not installed (test extra)")


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def _zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    # --offline: no GitHub API (no network in CI); the default persona reports what is likely a real problem
    return subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--format", "plain", str(path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.parametrize("schema,path", [("vendor.gitlab-ci", GITLAB), ("vendor.github-workflows", WORKFLOW)])
def test_ci_file_is_valid_against_its_published_schema(schema, path):
    proc = _check_jsonschema(schema, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gitlab_schema_check_can_fail(tmp_path):
    """The check reads the file: `image: null` on a job (what the device jobs had) is rejected."""
    bad = tmp_path / ".gitlab-ci.yml"
    bad.write_text("cuda:\n  image: null\n  script: [tox -e cuda]\n")
    proc = _check_jsonschema("vendor.gitlab-ci", bad)
    assert proc.returncode != 0 and "image" in proc.stdout + proc.stderr


def test_workflow_audit_has_no_findings():
    proc = _zizmor(WORKFLOW)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "No findings" in out, out


def test_workflow_audit_can_fail(tmp_path):
    """The audit reads the file: an unpinned action, persisted credentials and a template injection are found."""
    bad = tmp_path / "bad.yml"
    bad.write_text("\n".join([
        "name: bad",
        "on: [pull_request]",
        "permissions:",
        "  checks: write",
        "jobs:",
        "  x:",
        "    runs-on: ubuntu-latest",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - run: echo \"${{ github.event.pull_request.title }}\"",
    ]) + "\n")
    proc = _zizmor(bad)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "artipacked"):
        assert audit in out, f"{audit} not reported:\n{out}"
