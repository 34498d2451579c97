"""`conformance install-torch`: put the pinned torch build (or the host's torch) into the current environment."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from conformance import errors
from conformance.protocol import settings
from conformance.torchenv import builds, profiles

HOST_PTH = "_conformance_host_torch.pth"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-torch",
        help="install the pinned torch build for a device into this environment (tox runs it)",
        description=builds.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, choices=builds.DEVICES, help="device whose torch build to install")
    p.add_argument("--dry-run", action="store_true", help="print the plan as JSON and install nothing")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"conformance install-torch: {msg}", flush=True)


def _installed_torch() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip(args: list[str], env: dict[str, str] | None = None) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    lifted = f"PIP_CONSTRAINT={env['PIP_CONSTRAINT']} " if env else ""
    _say("running " + lifted + " ".join(cmd[1:]))
    return subprocess.call(cmd, env=env)


# --- pip constraints that exclude the pinned release ------------------------------------------------------------
# A constraints file (PIP_CONSTRAINT, or `constraint` in pip's config) may cap torch below the release an env pins
# (this project's CI-like machine caps it at 2.14.1 because those wheels lie on its disk). The env exists to test
# exactly that release, so its pip call runs without the torch lines that exclude it, and says so; every other
# constraint still applies. (An empty PIP_CONSTRAINT does not lift a configured file; /dev/null does.)

_REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;#]*)")
_CLAUSE = re.compile(r"^\s*(?P<op>===|~=|==|!=|<=|>=|<|>)\s*(?P<version>\S+)\s*$")


def _constraint_sources() -> list[str]:
    """The constraints files pip install reads here: PIP_CONSTRAINT, else pip's configured `constraint`."""
    raw = os.environ.get("PIP_CONSTRAINT", "").strip()
    if raw:
        return raw.split()
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    values = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    return (values.get("install.constraint") or values.get("global.constraint") or "").split()


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(m.group()) if (m := re.match(r"\d+", part)) else 0
                 for part in version.partition("+")[0].split("."))


def _allows(spec: str, version: str) -> bool:
    """Whether a PEP 440 specifier (`<=2.14.1`, `>=2.4,<3`, `==2.14.*`) allows `version` (release numbers only)."""
    have = _release(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = _CLAUSE.match(clause)
        if m is None:
            continue  # not a version clause pip would read either; pip itself reports it
        op, text = m.group("op"), m.group("version")
        if text.endswith(".*"):
            prefix = _release(text[:-2])
            if (have[:len(prefix)] == prefix) != (op == "=="):
                return False
            continue
        want = _release(text)
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {"==": a == b, "===": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b,
              "~=": a >= b and have[:len(want) - 1] == want[:len(want) - 1]}[op]
        if not ok:
            return False
    return True


def _is_torch_line(line: str) -> re.Match[str] | None:
    m = _REQUIREMENT.match(line)
    return m if m and re.sub(r"[-_.]+", "-", m.group("name")).lower() == "torch" else None


def _constraint_env(version: str, folder: str) -> dict[str, str] | None:
    """The environment for pip when a constraints file excludes torch `version` (the filtered copies go to
    `folder`, which lives as long as the pip call); None when nothing does."""
    excluding: list[tuple[str, str]] = []
    kept: list[str] = []
    for source in _constraint_sources():
        if "://" in source and not source.startswith("file://"):
            kept.append(source)  # a remote constraints file: cannot be filtered, pip reads it as it is
            continue
        path = source[len("file://"):] if source.startswith("file://") else source
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError:
            kept.append(source)  # pip reports a file it cannot read
            continue
        out = []
        for line in lines:
            m = _is_torch_line(line)
            if m and not _allows(m.group("spec"), version):
                excluding.append((line.strip(), path))
                out.append(f"# left out by conformance install-torch for torch {version}: {line}")
            else:
                out.append(line)
        copy = os.path.join(folder, f"{len(kept)}-{os.path.basename(path)}")
        with open(copy, "w", encoding="utf-8") as fh:
            fh.write("\n".join(out) + "\n")
        kept.append(copy)
    if not excluding:
        return None
    value = " ".join(kept) or os.devnull
    found = "; ".join(f"`{line}` in {path}" for line, path in excluding)
    _say(f"pip constraints exclude torch {version} ({found}); this env pins that release, so its pip call runs "
         f"without {'that line' if len(excluding) == 1 else 'those lines'} (PIP_CONSTRAINT={value}); "
         "every other constraint still applies")
    return {**os.environ, "PIP_CONSTRAINT": value}


def run(args: argparse.Namespace) -> int:
    plan = builds.plan(args.device)
    if args.dry_run:
        lacks = builds.host_lacks(profiles.get(args.device)) if plan.source == "pinned" else ""
        print(json.dumps({**plan.__dict__, "requirement": plan.exact_requirement, "host_lacks_device": lacks},
                         indent=2))
        return errors.OK
    if plan.source == "host":
        return _link_host_torch(plan)
    return _install_pinned(plan)


def _plain_wheel_is_it(plan: builds.TorchPlan) -> bool:
    """The default index's untagged wheel is the planned build (PyPI's Linux wheel is cu130; macOS's is MPS)."""
    return plan.index_url is None or plan.variant == builds.pypi_default_variant(plan.version)


def _forget_host_mode() -> None:
    """An earlier host-mode run of this env must neither shadow the pinned build nor be remembered."""
    for stale in (os.path.join(sysconfig.get_paths()["purelib"], HOST_PTH), builds.host_marker()):
        if os.path.exists(stale):
            os.remove(stale)
            _say(f"pinned mode: removed {stale} (left by host mode)")


def _forget_absence() -> None:
    marker = builds.absent_marker()
    if os.path.exists(marker):
        os.remove(marker)


def _leave_out_absent(plan: builds.TorchPlan, lacks: str) -> int:
    """The host lacks the device and the env has no torch yet: install nothing (no multi-GB download only to report
    every check unavailable).

    The env records why (builds.ABSENT_MARKER); its run then reports every check `unavailable` with that reason
    (strict mode fails them), instead of the "no torch, broken env" failure. An env that already holds a torch is
    never touched here: it is installed for as before.
    """
    reason = (f"{lacks}; torch not installed ({settings.INSTALL_ABSENT.name}=1 installs "
              f"{plan.exact_requirement} anyway)")
    with open(builds.absent_marker(), "w", encoding="utf-8") as fh:
        fh.write(reason + "\n")
    _say(f"{plan.device} absent: {lacks}; not installing {plan.exact_requirement}, its checks will read "
         f"unavailable ({settings.INSTALL_ABSENT.name}=1 installs it anyway)")
    return errors.OK


def _install_pinned(plan: builds.TorchPlan) -> int:
    _forget_host_mode()
    have = _installed_torch()
    already = have == f"{plan.version}+{plan.variant}" or (have == plan.version and _plain_wheel_is_it(plan))
    lacks = builds.host_lacks(profiles.get(plan.device)) if have is None else ""
    if lacks and not settings.INSTALL_ABSENT.flag():
        return _leave_out_absent(plan, lacks)
    _forget_absence()
    if already:
        _say(f"torch {have} already installed ({plan.describe()})")
        return errors.OK
    if plan.index_url is None:
        return _pip_or_explain(plan, [plan.requirement], plan.requirement, "the default index")
    ok, why = builds.index_reachable(plan.index_url)
    if not ok and have is not None and have.partition("+")[0] == plan.version:
        # pip could only pick the same release from the default index again; say what is there and move on.
        _say(f"PyTorch index {plan.index_url} not reachable ({why}); keeping the installed torch {have} "
             f"(not {plan.version}+{plan.variant}: the build identity check reports it)")
        return errors.OK
    if ok:
        return _pip_or_explain(plan, [plan.exact_requirement, "--extra-index-url", plan.index_url],
                               plan.exact_requirement, f"{plan.index_url} and the default index")
    # Without the PyTorch index, the default index (or a local wheelhouse) still has this release; the identity
    # check then records which build it really was instead of trusting the env's name.
    _say(f"PyTorch index {plan.index_url} not reachable ({why}); installing {plan.requirement} "
         "from the default index / PIP_FIND_LINKS instead" + _default_index_note(plan))
    return _pip_or_explain(plan, [plan.requirement], plan.requirement,
                           "the default index (PyTorch index unreachable: " + why + ")")


def _default_index_note(plan: builds.TorchPlan) -> str:
    if not sys.platform.startswith("linux") or plan.variant == builds.pypi_default_variant(plan.version):
        return ""
    return (f" (its Linux wheel there is the {builds.pypi_default_variant(plan.version)} CUDA build: several GB "
            "with its nvidia-* dependencies, unless PIP_FIND_LINKS holds the release)")


def _pip_or_explain(plan: builds.TorchPlan, pip_args: list[str], requirement: str, tried: str) -> int:
    with tempfile.TemporaryDirectory(prefix="conformance-constraints-") as folder:
        code = _pip(pip_args, _constraint_env(plan.version, folder))
    if code != 0:
        sys.stderr.write(
            f"conformance install-torch: could not install {requirement} for the {plan.device} env from {tried}.\n"
            f"  Choose an available release with TORCH_VERSION=..., point {settings.device_index(plan.device).name}"
            f" or {settings.INDEX_BASE.name} at a reachable mirror, or use host mode "
            f"({settings.HOST_TORCH.name}=1) to test the torch already installed.\n"
        )
        return errors.INTERNAL
    got = _installed_torch()
    expected = f"{plan.version}+{plan.variant}"
    if got not in (expected, plan.version if _plain_wheel_is_it(plan) else expected):
        consequence = ("the CPU checks run on it and the report records its variant" if plan.device == "cpu"
                       else "the build identity check will fail and say so")
        _say(f"WARNING: got torch {got}, not {expected}; {consequence}")
    else:
        _say(f"installed torch {got}")
    return errors.OK


def _host_python() -> str | None:
    """The interpreter that holds the host's torch: CONFORMANCE_HOST_PYTHON, else the first python3 outside this env."""
    chosen = settings.HOST_PYTHON.raw()
    if chosen:
        return shutil.which(chosen) or (chosen if os.path.exists(chosen) else None)
    own_bin = os.path.dirname(sys.executable)
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and os.path.realpath(d) != os.path.realpath(own_bin)]
    return shutil.which("python3", path=os.pathsep.join(path))


_PROBE = (
    "import json, site, sys, sysconfig\n"
    "paths = [sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']]\n"
    "paths += [p for p in (site.getsitepackages() if hasattr(site, 'getsitepackages') else []) if p not in paths]\n"
    "try:\n"
    "    import importlib.metadata as m; torch = m.version('torch')\n"
    "except Exception:\n"
    "    torch = None\n"
    "print(json.dumps({'executable': sys.executable, 'version': sys.version.split()[0], 'paths': paths,\n"
    "                  'torch': torch}))\n"
)


def _remember_host_mode(plan: builds.TorchPlan) -> None:
    """Write the env's host-mode marker, so this env's `conformance run` tests the host's torch without the variable.

    A pinned run of install-torch (CONFORMANCE_HOST_TORCH=0, or a recreated env) removes it again.
    """
    marker = builds.host_marker()
    with open(marker, "w", encoding="utf-8") as fh:
        json.dump({"device": plan.device, "because": plan.host_because,
                   "host_python": settings.HOST_PYTHON.raw()}, fh)
        fh.write("\n")
    if not plan.host_because.startswith("remembered"):
        _say(f"host mode remembered in {marker} ({settings.HOST_TORCH.name}=0 or `tox -r` forgets it)")


def _link_host_torch(plan: builds.TorchPlan) -> int:
    """Append the host interpreter's site-packages to this env's sys.path via a .pth file.

    tox's system_site_packages would give the *base* interpreter's packages, which misses torch when the host
    torch lives in a venv or conda env (GPU images, Gaudi images): the .pth file points at the real place.
    """
    site_dir = sysconfig.get_paths()["purelib"]
    pth = os.path.join(site_dir, HOST_PTH)
    if os.path.exists(pth):
        os.remove(pth)
    _forget_absence()
    _remember_host_mode(plan)
    if _installed_torch():  # a pinned build left in this env by an earlier run would shadow the host's torch
        _say("host mode: removing this env's own torch so the host's is the one tested")
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "torch"])
    host = _host_python()
    if host is None:
        _say(f"WARNING: host mode but no host python3 found outside this env; set {settings.HOST_PYTHON.name}. "
             "The run will fail its identity check: the env has no torch.")
        return errors.OK
    try:
        info = json.loads(subprocess.check_output([host, "-c", _PROBE], text=True, timeout=60))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        sys.stderr.write(f"conformance install-torch: cannot ask host interpreter {host} for its packages: {exc}\n")
        return errors.INTERNAL
    ours = sys.version.split()[0].rsplit(".", 1)[0]
    theirs = info["version"].rsplit(".", 1)[0]
    if ours != theirs:
        sys.stderr.write(
            f"conformance install-torch: host mode needs the env's Python ({ours}) to match the host "
            f"interpreter {info['executable']} ({theirs}); run tox with that interpreter "
            f"(e.g. `{info['executable']} -m tox -e {plan.device}`).\n"
        )
        return errors.INTERNAL
    paths = [p for p in info["paths"] if os.path.isdir(p) and os.path.realpath(p) != os.path.realpath(site_dir)]
    with open(pth, "w", encoding="utf-8") as fh:
        fh.write("\n".join(paths) + "\n")
    if info["torch"]:
        _say(f"host mode: using torch {info['torch']} from {info['executable']}")
        return errors.OK
    lacks = builds.host_lacks(profiles.get(plan.device))
    if lacks:  # nothing to test here anyway: an absent device, not a broken env (builds.ABSENT_MARKER)
        with open(builds.absent_marker(), "w", encoding="utf-8") as fh:
            fh.write(f"{lacks}; host mode and {info['executable']} has no torch\n")
        _say(f"{plan.device} absent: {lacks}, and {info['executable']} has no torch; its checks will read "
             "unavailable")
    else:
        _say(f"WARNING: host mode but {info['executable']} has no torch; the run will fail its identity check")
    return errors.OK
