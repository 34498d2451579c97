"""`conformance run` as a user runs it: real child processes, real crashes, the JUnit file that remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
import xmlschema

from conformance import errors
from conftest import JUNIT_XSD

pytest.importorskip("torch", reason="run tests need torch in this interpreter (tox -e tests installs it)")


# Settings of the environment running these tests (tox's own env name, a crash switch) must not leak into the
# runs under test; each test passes what it means.
_OUTER = ("CONFORMANCE_TEST_CRASH", "CONFORMANCE_ENV", "TOX_ENV_NAME", "CONFORMANCE_STRICT", "CONFORMANCE_TIME_LIMIT")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER}
    env.update(extra)
    return env


def with_crash_plugin(args: tuple[str, ...] | list[str], env: dict) -> list[str]:
    """The test-only crash switch is a pytest plugin in tests/support, loaded into the suite process by name."""
    args = list(args)
    if "CONFORMANCE_TEST_CRASH" in env and "--" in args:
        args[args.index("--") + 1:1 + args.index("--")] = ["-p", "crash"]
    return args


def conformance(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = clean_env(**(env or {}))
    return subprocess.run([sys.executable, "-m", "conformance", *with_crash_plugin(args, full_env)],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def cases(path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {f"{c.get('classname')}::{c.get('name')}": c for c in root.iter("testcase")}


def props(path) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("property")}


def validate(path) -> None:
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(path))


SEED = "test_split::test_seed_split_begin_2stages"
IDENTITY = "test_identity::test_build_identity"


def test_cpu_seed_passes_and_records_build(tmp_path):
    out = tmp_path / "cpu.xml"
    proc = conformance("run", "--device", "cpu", "--junitxml", str(out), "--", "-q", "-k", "seed or identity")
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    validate(out)
    c = cases(out)
    assert set(c) == {SEED, IDENTITY}
    assert all(len(list(case)) == 0 for case in c.values()), "seed and identity must pass (no child element)"
    p = props(out)
    import torch

    assert p["torch_version"] == torch.__version__
    assert p["device"] == "cpu" and p["backend"] == "gloo" and p["env"] == "cpu"
    assert p["tf32"] == "off" and p["float32_matmul_precision"] == "highest", "fp32 checks must run in fp32"
    for key in ("python_version", "hostname", "start_time", "conformance_version", "torch_variant", "device_names"):
        assert p[key], key
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".journal", ".partial", ".lock")]


def test_absent_device_is_unavailable_and_strict_fails(tmp_path):
    out = tmp_path / "cuda.xml"
    env = {"CONFORMANCE_HOST_TORCH": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = conformance("run", "--device", "cuda", "--junitxml", str(out), "--", "-q", "-k", "seed or identity", env=env)
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here; this test needs a host without one")
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    validate(out)
    for key, case in cases(out).items():
        skipped = case.find("skipped")
        assert skipped is not None, f"{key} should be unavailable"
        assert skipped.get("message").startswith("unavailable: "), skipped.get("message")
    assert props(out)["device_available"] == "false"

    strict = conformance("run", "--device", "cuda", "--junitxml", str(out), "--strict-device", "--", "-q", "-k",
                         "seed or identity", env=env)
    assert strict.returncode == errors.FAILED
    assert all(case.find("skipped") is None for case in cases(out).values())

    # the whole suite, expectation entries included: every check fails or errors, none hides as xfail
    strict_all = conformance("run", "--device", "cuda", "--junitxml", str(out), "--strict-device", "--", "-q", env=env)
    assert strict_all.returncode == errors.FAILED
    every = cases(out)
    assert len(every) > 100
    assert all(case.find("failure") is not None or case.find("error") is not None for case in every.values()), \
        [k for k, c in every.items() if c.find("failure") is None and c.find("error") is None][:5]


def test_pinned_cuda_env_with_cpu_build_fails_identity(tmp_path):
    import torch

    if torch.version.cuda:
        pytest.skip("this interpreter has a CUDA build; the mislabel needs a CPU-only build")
    out = tmp_path / "cuda.xml"
    env = {"CONFORMANCE_HOST_TORCH": "", "TORCH_VERSION": torch.__version__.partition("+")[0]}
    proc = conformance("run", "--device", "cuda", "--junitxml", str(out), "--", "-q", "-k", "seed or identity", env=env)
    assert proc.returncode == errors.FAILED
    failure = cases(out)[IDENTITY].find("failure")
    assert failure is not None
    assert "expected the cu130 build" in failure.get("message") and torch.__version__ in failure.get("message")


def test_unknown_device_is_a_usage_error():
    proc = conformance("run", "--device", "tpu")
    assert proc.returncode == errors.USAGE
    assert "cpu" in proc.stderr and "cuda" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("mode, cause", [
    ("abort", "killed by SIGABRT"),
    ("sigkill", "killed by SIGKILL"),
    ("segfault", "killed by SIGSEGV"),
    ("exit", "exited with code 3"),
])
def test_crash_keeps_finished_results_and_marks_the_rest(tmp_path, mode, cause):
    out = tmp_path / "cpu.xml"
    proc = conformance("run", "--device", "cpu", "--junitxml", str(out), "--", "-q", "-k", "seed or identity",
                       env={"CONFORMANCE_TEST_CRASH": f"{mode}:seed"})
    assert proc.returncode == errors.FAILED, proc.stdout + proc.stderr
    validate(out)
    c = cases(out)
    assert len(list(c[IDENTITY])) == 0, "the check that finished before the crash keeps its pass"
    err = c[SEED].find("error")
    assert err is not None and err.get("type") == "crashed" and cause in err.get("message")
    assert "crashing on purpose" in err.text, "the last output lines travel with the crashed mark"
    assert cause in props(out)["run_status"]
    assert_report_shows_crash(out, tmp_path)


def assert_report_shows_crash(junit, tmp_path) -> None:
    """The merged report of a crashed env: exit 1, the env marked FAIL with its crash, a valid merged.xml."""
    __tracebackhide__ = True
    report = conformance("report", str(junit), "--output-dir", str(tmp_path / "report"))
    assert report.returncode == errors.FAILED, report.stdout + report.stderr
    assert "crashed" in report.stdout and "FAIL" in report.stdout, report.stdout
    validate(tmp_path / "report" / "merged.xml")
    merged_errors = [e for e in ET.parse(tmp_path / "report" / "merged.xml").getroot().iter("error")
                     if e.get("type") == "crashed"]
    assert len(merged_errors) == 1


def test_not_run_checks_after_a_crash(tmp_path):
    out = tmp_path / "cpu.xml"
    proc = conformance("run", "--device", "cpu", "--junitxml", str(out), "--", "-q", "-p", "no:randomly",
                       "-k", "identity or seed or split_points",
                       env={"CONFORMANCE_TEST_CRASH": "sigkill:test_build_identity"})
    assert proc.returncode == errors.FAILED
    c = cases(out)
    assert c[IDENTITY].find("error").get("type") == "crashed"
    later = [case for key, case in c.items() if key != IDENTITY]
    assert later and all(case.find("skipped") is not None and case.find("skipped").get("type") == "notrun"
                         for case in later)


def test_global_time_limit_reports_the_hung_check(tmp_path):
    out = tmp_path / "cpu.xml"
    start = time.monotonic()
    proc = conformance("run", "--device", "cpu", "--junitxml", str(out), "--time-limit", "15", "--", "-q", "-k",
                       "seed or identity", env={"CONFORMANCE_TEST_CRASH": "hang:seed"})
    assert time.monotonic() - start < 90
    assert proc.returncode == errors.FAILED
    err = cases(out)[SEED].find("error")
    assert err is not None and "global time limit of 15 s" in err.get("message")
    assert "crash.py" in err.text, "faulthandler's stack of the hung check is in the report"
    assert_report_shows_crash(out, tmp_path)


def test_sigterm_writes_what_finished_and_exits_nonzero(tmp_path):
    out = tmp_path / "cpu.xml"
    env = clean_env(CONFORMANCE_TEST_CRASH="hang:seed")
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml", str(out),
                             "--", "-p", "crash", "-q", "-k", "seed or identity"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    # wait until the hang has started, then cancel like a CI runner does
    for line in proc.stdout:
        if "crashing on purpose" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == errors.INTERRUPTED, rest
    validate(out)
    c = cases(out)
    assert len(list(c[IDENTITY])) == 0
    assert "interrupted (SIGTERM)" in c[SEED].find("error").get("message")


def test_two_runs_never_share_a_report_file(tmp_path):
    out = tmp_path / "cpu.xml"
    env = clean_env(CONFORMANCE_TEST_CRASH="hang:seed")
    first = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml", str(out),
                              "--time-limit", "60", "--", "-p", "crash", "-q", "-k", "seed"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in first.stdout:
            if "crashing on purpose" in line:
                break
        second = conformance("run", "--device", "cpu", "--junitxml", str(out), "--", "-q", "-k", "seed")
        assert second.returncode == errors.USAGE
        assert "another conformance run" in second.stderr and str(out) in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)


def test_bad_setting_is_a_usage_error_without_a_report(tmp_path):
    out = tmp_path / "cpu.xml"
    proc = conformance("run", "--device", "cpu", "--junitxml", str(out), env={"CONFORMANCE_TORCH_SERIES": "9.9"})
    assert proc.returncode == errors.USAGE
    assert "unknown torch series '9.9'" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert not list(tmp_path.iterdir()), "no report for a run that never started"


def test_env_names_match_the_modules_that_read_them():
    import crash

    assert crash.CRASH_ENV in _OUTER, "the test-only crash switch must not leak into the runs under test"


def test_parallel_envs_one_crashing_still_give_a_truthful_report(tmp_path):
    """What `tox -p all` does with one env crashing: the others finish, the report shows the crash, exit non-zero."""
    reports = tmp_path / "reports"
    base = [sys.executable, "-m", "conformance", "run", "--device"]
    env = clean_env()
    crashing = subprocess.Popen(base + ["cpu", "--env-name", "cpu", "--junitxml", str(reports / "cpu.xml"), "--",
                                        "-p", "crash", "-q", "-k", "seed or identity"],
                                env={**env, "CONFORMANCE_TEST_CRASH": "segfault:seed"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    healthy = subprocess.Popen(base + ["cpu", "--env-name", "cpu-again", "--junitxml", str(reports / "cpu-again.xml"),
                                       "--", "-q", "-k", "seed or identity"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert crashing.wait(timeout=180) == errors.FAILED
    assert healthy.wait(timeout=180) == errors.OK
    report = conformance("report", "--output-dir", str(tmp_path / "out"), str(reports / "cpu.xml"),
                         str(reports / "cpu-again.xml"))
    assert report.returncode == errors.FAILED, report.stdout + report.stderr
    lines = {line.split()[0]: line for line in report.stdout.splitlines()[1:] if line.strip()}
    assert "crashed" in lines["cpu"] and "FAIL" in lines["cpu"], report.stdout
    assert "ok" in lines["cpu-again"] and "2/2 passed" in lines["cpu-again"], report.stdout
    md = (tmp_path / "out" / "compatibility.md").read_text()
    assert "crashed" in md


def test_suite_uses_the_same_package_as_the_command(tmp_path):
    """`python -m conformance` from a checkout and the installed console script must not mix two copies."""
    from conformance.runner import supervisor as run

    assert os.path.isdir(run.SUITE_DIR)
    import conformance

    assert run._PKG_PARENT == os.path.dirname(os.path.dirname(conformance.__file__))
    out = tmp_path / "cpu.xml"
    # From the repository root `-m conformance` imports the checkout, whatever is installed in site-packages.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml", str(out),
                           "--", "-q", "-k", "identity"], cwd=root, env=clean_env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == errors.OK, proc.stdout[-2000:] + proc.stderr[-2000:]


# --- a device env without importable torch is a broken env, never an absent device (issue 11) -------------------


def assert_fails_for_missing_torch(proc: subprocess.CompletedProcess, out, env_name: str, cause: str) -> str:
    """Exit 1, the identity check failed naming the env, the cause and the fix; nothing else claims to have run."""
    assert proc.returncode == errors.FAILED, proc.stdout[-3000:] + proc.stderr
    validate(out)
    c = cases(out)
    failure = c[IDENTITY].find("failure")
    assert failure is not None, "a missing torch must fail the identity check"
    message = failure.get("message")
    assert f"the {env_name} env has no importable torch" in message and cause in message, message
    assert f"tox -r -e {env_name}" in message and "CONFORMANCE_HOST_PYTHON" in message, message
    assert message.removeprefix("Failed: ") in proc.stdout, "the fix must be in the run's output, not only in the XML"
    others = [case for key, case in c.items() if key != IDENTITY]
    assert others, "the other checks are still collected"
    for case in others:
        skipped = case.find("skipped")
        assert skipped is not None, ET.tostring(case, encoding="unicode")
        assert not skipped.get("message", "").startswith("unavailable"), "no torch is not an absent device"
    return message


def test_env_without_torch_fails_identity_and_says_how_to_fix_it(tmp_path):
    from venvs import venv_without_torch

    python = venv_without_torch(tmp_path / "venv")
    out = tmp_path / "cuda.xml"
    for device in ("cpu", "cuda"):  # with and without a device on the host: either way it is not "absent"
        env = clean_env(CONFORMANCE_HOST_TORCH="")
        proc = subprocess.run([str(python), "-m", "conformance", "run", "--device", device, "--env-name",
                               f"{device}-torch2.14", "--junitxml", str(out), "--", "-q", "-k", "seed or identity"],
                              capture_output=True, text=True, env=env, timeout=120)
        message = assert_fails_for_missing_torch(proc, out, f"{device}-torch2.14", "No module named 'torch'")
        assert "conformance install-torch" in message
    assert props(out)["torch_version"] == ""

    # host mode: the torch was to come from the host interpreter, so the fix names CONFORMANCE_HOST_PYTHON
    env = clean_env(CONFORMANCE_HOST_TORCH="1", CONFORMANCE_HOST_PYTHON="/opt/no-such/python3")
    proc = subprocess.run([str(python), "-m", "conformance", "run", "--device", "cuda", "--junitxml", str(out),
                           "--", "-q", "-k", "seed or identity"], capture_output=True, text=True, env=env, timeout=120)
    message = assert_fails_for_missing_torch(proc, out, "cuda", "No module named 'torch'")
    assert "host mode" in message and "/opt/no-such/python3" in message, message


def test_broken_torch_fails_identity_even_in_strict_mode(tmp_path):
    broken = tmp_path / "broken" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise OSError("libtorch_cpu.so: cannot open shared object file")\n')
    out = tmp_path / "cpu.xml"
    env = {"PYTHONPATH": os.pathsep.join([str(broken.parent), os.environ.get("PYTHONPATH", "")])}
    for strict in ([], ["--strict-device"]):
        proc = conformance("run", "--device", "cpu", "--junitxml", str(out), *strict, "--", "-q", "-k",
                           "seed or identity", env=env)
        assert_fails_for_missing_torch(proc, out, "cpu", "OSError: libtorch_cpu.so: cannot open shared object file")
