"""`conformance run`: run the conformance suite on one device against this interpreter's torch."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from conformance import builds, exitcodes

SUITE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checks")

# pytest's exit status -> ours (see conformance/exitcodes.py)
# (pytest's 2 is "interrupted", which it also uses for collection errors: a broken suite is a failure.)
_PYTEST_EXIT = {0: exitcodes.OK, 1: exitcodes.FAILED, 2: exitcodes.FAILED, 3: exitcodes.INTERNAL,
                4: exitcodes.USAGE, 5: exitcodes.INTERNAL}
# Drop the working directory from sys.path: a source checkout there must not shadow the installed package.
_BOOTSTRAP = "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; import pytest; sys.exit(pytest.main())"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the conformance suite on one device",
                       description="Run the conformance suite against the torch in this interpreter. "
                                   "Arguments after `--` go to pytest (e.g. `-- -k seed -x`).")
    p.add_argument("--device", required=True, choices=builds.DEVICES, help="device under test")
    p.add_argument("--junitxml", metavar="PATH", help="JUnit output (default reports/<env>.xml; '' for none)")
    p.add_argument("--env-name", metavar="NAME",
                   help="column name in the report (default: CONFORMANCE_ENV, TOX_ENV_NAME or the device)")
    p.add_argument("--strict-device", action="store_true",
                   help="fail every check when the device is absent (env CONFORMANCE_STRICT=1)")
    p.set_defaults(func=run)


def env_name(args: argparse.Namespace) -> str:
    return args.env_name or os.environ.get("CONFORMANCE_ENV") or os.environ.get("TOX_ENV_NAME") or args.device


def pytest_command(args: argparse.Namespace) -> list[str]:
    env = env_name(args)
    junit = f"reports/{env}.xml" if args.junitxml is None else args.junitxml
    cmd = [sys.executable, "-c", _BOOTSTRAP, "-p", "conformance.plugin",
           "-c", os.path.join(SUITE_DIR, "pytest.ini"), "--rootdir", SUITE_DIR,
           "--device", args.device, "--env-name", env, "-o", f"junit_suite_name={env}"]
    if junit:
        os.makedirs(os.path.dirname(os.path.abspath(junit)), exist_ok=True)
        cmd += ["--junitxml", os.path.abspath(junit)]
    if args.strict_device:
        cmd.append("--strict-device")
    return cmd + [SUITE_DIR, *args.extra]


def run(args: argparse.Namespace) -> int:
    cmd = pytest_command(args)
    # Plugins that happen to be installed (a host torch image brings xdist, timeout, ...) must not change the
    # suite's behaviour; pass `-- -p NAME` to load one on purpose.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    code = subprocess.call(cmd, env=env)
    if code < 0:
        sys.stderr.write(f"conformance run: the suite process died with signal {-code}\n")
        return exitcodes.FAILED
    return _PYTEST_EXIT.get(code, exitcodes.FAILED)
