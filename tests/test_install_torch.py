"""`conformance install-torch` in real fresh virtual environments: host mode linking and install failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import venv

import pytest

from conformance import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new venv with pip but no torch; this checkout importable through PYTHONPATH."""
    path = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(path)
    # the package's own dependencies (not torch), as a real install of it would have
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "pytest", "numpy", "junitparser"],
                   check=True)
    return path / "bin" / "python"


def install(python, *args, env=None):
    """install-torch in `python`'s env; pinned unless `env` says otherwise (the shared env may remember host mode
    from an earlier test); a None value unsets the variable."""
    env = {"CONFORMANCE_HOST_TORCH": "0", **(env or {})}
    full = {**os.environ, "PYTHONPATH": ROOT, **{k: v for k, v in env.items() if v is not None}}
    for key in ("CONFORMANCE_HOST_TORCH", "TORCH_VERSION", "CONFORMANCE_HOST_PYTHON"):
        if env.get(key) is None:
            full.pop(key, None)
    return subprocess.run([str(python), "-m", "conformance", "install-torch", *args], capture_output=True,
                          text=True, env=full, timeout=600)


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/whl/cpu"


def test_host_mode_links_the_host_interpreters_torch(fresh_env):
    pytest.importorskip("torch", reason="host mode needs a torch in the interpreter running these tests")
    proc = install(fresh_env, "--device", "cpu",
                   env={"CONFORMANCE_HOST_TORCH": "1", "CONFORMANCE_HOST_PYTHON": sys.executable})
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    assert "host mode: using torch" in proc.stdout
    import torch

    out = subprocess.run([str(fresh_env), "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.stdout.strip() == torch.__version__, out.stderr


def test_host_mode_without_torch_warns_and_carries_on(fresh_env, tmp_path):
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    proc = install(fresh_env, "--device", "cpu", env={"CONFORMANCE_HOST_TORCH": "1",
                                                      "CONFORMANCE_HOST_PYTHON": str(bare / "bin" / "python")})
    assert proc.returncode == errors.OK, proc.stderr
    assert "has no torch; the run will fail its identity check" in proc.stdout


def test_host_mode_without_torch_on_a_host_without_gaudi_records_the_absence(fresh_env, tmp_path):
    """hpu is host-only: where the host has neither torch nor a Gaudi driver, that is an absent device (its checks
    read unavailable), not a broken env."""
    from conformance.torchenv import builds, profiles

    lacks = builds.host_lacks(profiles.get("hpu"))
    if not lacks:
        pytest.skip("this host has a Gaudi driver")
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    proc = install(fresh_env, "--device", "hpu", env={"CONFORMANCE_HOST_PYTHON": str(bare / "bin" / "python")})
    assert proc.returncode == errors.OK, proc.stderr
    assert f"hpu absent: {lacks}" in proc.stdout and "has no torch" in proc.stdout
    marker = os.path.join(os.path.dirname(os.path.dirname(str(fresh_env))), "conformance-device-absent")
    with open(marker) as fh:
        assert lacks in fh.read()
    os.remove(marker)  # the shared env goes on with other tests


def test_uninstallable_version_names_version_and_index(fresh_env):
    index = closed_port_url()
    proc = install(fresh_env, "--device", "cpu", env={"TORCH_VERSION": "0.0.1", "CONFORMANCE_CPU_INDEX": index})
    assert proc.returncode == errors.INTERNAL
    assert "torch==0.0.1" in proc.stderr and "127.0.0.1" in proc.stderr and "TORCH_VERSION" in proc.stderr
    # one line about the dead index, not pip's wall of retries against it
    assert proc.stdout.count("not reachable") == 1 and "Retrying" not in proc.stdout + proc.stderr


def test_dry_run_prints_the_plan(fresh_env):
    proc = install(fresh_env, "--device", "cuda", "--dry-run", env={"TORCH_VERSION": "2.14.1"})
    assert proc.returncode == errors.OK
    assert '"requirement": "torch==2.14.1+cu130"' in proc.stdout
    assert '"host_lacks_device": ' in proc.stdout, "the dry run says whether install-torch would leave torch out"


def test_same_release_already_installed_is_kept_when_the_index_is_unreachable():
    torch = pytest.importorskip("torch", reason="needs a torch installed in this interpreter")
    version = torch.__version__.partition("+")[0]
    proc = subprocess.run([sys.executable, "-m", "conformance", "install-torch", "--device", "cuda"],
                          capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k != "CONFORMANCE_HOST_TORCH"},
                               "TORCH_VERSION": version, "CONFORMANCE_CUDA_INDEX": closed_port_url(),
                               "CONFORMANCE_CUDA_VARIANT": "cu999"})
    assert proc.returncode == errors.OK, proc.stderr
    assert f"keeping the installed torch {torch.__version__}" in proc.stdout and "running" not in proc.stdout


def test_host_mode_is_remembered_by_the_env(fresh_env):
    """`CONFORMANCE_HOST_TORCH=1 tox -e cuda` once; then the env's own `conformance` keeps testing the host's torch
    without the variable, and a pinned install (`=0`) forgets it."""
    pytest.importorskip("torch", reason="host mode needs a torch in the interpreter running these tests")
    proc = install(fresh_env, "--device", "cpu",
                   env={"CONFORMANCE_HOST_TORCH": "1", "CONFORMANCE_HOST_PYTHON": sys.executable})
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    assert "host mode remembered in" in proc.stdout
    prefix = os.path.dirname(os.path.dirname(str(fresh_env)))
    marker = os.path.join(prefix, "conformance-host-torch")
    assert os.path.exists(marker)

    # no CONFORMANCE_HOST_TORCH from here on: the env itself says host mode
    info = subprocess.run([str(fresh_env), "-m", "conformance", "info", "--device", "cuda"], capture_output=True,
                          text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if k != "CONFORMANCE_HOST_TORCH"},
                               "PYTHONPATH": ROOT, "TORCH_VERSION": "0.0.1"})
    assert info.returncode == errors.OK, info.stderr
    data = json.loads(info.stdout)
    assert data["pins"]["cuda"]["source"] == "host" and marker in data["pins"]["cuda"]["host_because"]
    # the pin (0.0.1 here) is not held against the host's torch: no "pins torch" identity failure
    assert "pins torch" not in data["identity"]["cuda"]["message"]

    dry = install(fresh_env, "--device", "cpu", "--dry-run", env={"CONFORMANCE_HOST_TORCH": None})
    assert '"source": "host"' in dry.stdout, "the env's install-torch remembers too (tox re-runs it)"
    forget = install(fresh_env, "--device", "cpu", "--dry-run", env={"CONFORMANCE_HOST_TORCH": "0"})
    assert '"source": "pinned"' in forget.stdout


def _absent_device() -> str:
    """A device this host certainly lacks (mps off macOS, else cuda without an NVIDIA driver), or skip."""
    from conformance.torchenv import builds, profiles

    for name in ("mps", "cuda", "rocm"):
        if builds.host_lacks(profiles.get(name)):
            return name
    pytest.skip("this host has every device whose absence install-torch can tell")


def test_absent_device_installs_nothing_and_its_checks_read_unavailable(tmp_path):
    """`tox -p all` on a host without the device: no multi-GB download, one line saying why, every check
    unavailable with that reason (exit 0), strict mode fails them, and the env remembers why it has no torch."""
    name = _absent_device()
    env_dir = tmp_path / "env"  # its own env: the shared one may link a host torch from a host-mode test
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "pytest", "numpy"], check=True)
    env = {**os.environ, "PYTHONPATH": ROOT, "CONFORMANCE_HOST_TORCH": "0"}
    for key in ("CONFORMANCE_INSTALL_ABSENT", "CONFORMANCE_STRICT", "TORCH_VERSION"):
        env.pop(key, None)
    proc = subprocess.run([str(python), "-m", "conformance", "install-torch", "--device", name], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == errors.OK, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "absent" in line]
    assert len(lines) == 1 and f"{name} absent: " in lines[0] and "CONFORMANCE_INSTALL_ABSENT=1" in lines[0]
    assert "running" not in proc.stdout, "pip must not run"
    assert (env_dir / "conformance-device-absent").is_file()

    def run(*extra, **more):
        out = tmp_path / f"{name}-{len(list(tmp_path.glob('*.xml')))}.xml"
        done = subprocess.run([str(python), "-m", "conformance", "run", "--device", name, "--junitxml", str(out),
                               "--", "-q", "-rs", "-k", "identity or seed", *extra],
                              capture_output=True, text=True, env={**env, **more}, timeout=300, cwd=tmp_path)
        return done, out.read_text()

    done, xml = run()
    assert done.returncode == errors.OK, done.stdout + done.stderr
    assert "unavailable: " in xml and "torch not installed (CONFORMANCE_INSTALL_ABSENT=1" in xml
    assert "<failure" not in xml and "not run" not in xml and "no importable torch" not in xml
    strict, xml = run(CONFORMANCE_STRICT="1")
    assert strict.returncode == errors.FAILED and "device required (strict mode)" in xml

    # the setting installs anyway: pip runs (and fails here, on a release that does not exist)
    forced = subprocess.run([str(python), "-m", "conformance", "install-torch", "--device", name],
                            capture_output=True, text=True, timeout=300,
                            env={**env, "CONFORMANCE_INSTALL_ABSENT": "1", "TORCH_VERSION": "0.0.1",
                                 f"CONFORMANCE_{name.upper()}_INDEX": closed_port_url(), "PIP_NO_INDEX": "1"})
    assert "running" in forced.stdout and "absent" not in forced.stdout, forced.stdout
    assert not (env_dir / "conformance-device-absent").exists(), "an install attempt forgets the recorded absence"


def test_constraints_that_exclude_the_pin_are_left_out_of_its_pip_call(tmp_path, monkeypatch, capsys):
    from conformance.commands import install_torch

    caps = tmp_path / "constraints.txt"
    caps.write_text("# cap\ntorch<=2.14.1\ntorchvision<=0.29.1\nnumpy<3\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(caps))
    folder = tmp_path / "lifted"
    folder.mkdir()
    env = install_torch._constraint_env("2.15.0", str(folder))
    assert env is not None
    lifted = env["PIP_CONSTRAINT"]
    assert lifted != str(caps) and os.path.isfile(lifted) and lifted.startswith(str(folder))
    kept = [line for line in open(lifted).read().splitlines() if line and not line.startswith("#")]
    assert kept == ["torchvision<=0.29.1", "numpy<3"], "only the torch line goes"
    said = capsys.readouterr().out
    assert "`torch<=2.14.1` in " + str(caps) in said and "every other constraint still applies" in said
    assert install_torch._constraint_env("2.14.1", str(folder)) is None, "a release the cap allows changes nothing"
    assert install_torch._constraint_env("2.13.0", str(folder)) is None


@pytest.mark.parametrize("spec,version,allowed", [
    ("<=2.14.1", "2.15.0", False),
    ("<=2.14.1", "2.14.1", True),
    ("<=2.14.1", "2.14.1+cu130", True),
    ("<2.15", "2.15.0", False),
    (">=2.4,<3", "2.15.0", True),
    ("==2.14.*", "2.15.0", False),
    ("==2.15.*", "2.15.0", True),
    ("!=2.15.0", "2.15.0", False),
    ("~=2.14.0", "2.14.1", True),
    ("~=2.14.0", "2.15.0", False),
    ("", "2.15.0", True),
])
def test_specifiers_of_a_torch_cap(spec, version, allowed):
    from conformance.commands import install_torch

    assert install_torch._allows(spec, version) is allowed
