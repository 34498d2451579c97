"""`conformance run`: run the conformance suite on one device against this interpreter's torch."""

from __future__ import annotations

import argparse
import os

from conformance.protocol import settings
from conformance.runner import supervisor
from conformance.torchenv import builds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the conformance suite on one device",
                       description="Run the conformance suite against the torch in this interpreter. "
                                   "Arguments after `--` go to pytest (e.g. `-- -k seed -x`).")
    p.add_argument("--device", required=True, choices=builds.DEVICES, help="device under test")
    p.add_argument("--junitxml", metavar="PATH", help="JUnit output (default reports/<env>.xml)")
    p.add_argument("--env-name", metavar="NAME",
                   help=f"column name in the report (default: {settings.ENV.name}, TOX_ENV_NAME or the device)")
    p.add_argument("--strict-device", action="store_true",
                   help=f"fail every check when the device is absent (env {settings.STRICT.name}=1)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help=f"stop the whole run after this long; the running check is reported as timed out "
                        f"(env {settings.TIME_LIMIT.name}; default: none)")
    p.set_defaults(func=run)


def env_name(args: argparse.Namespace) -> str:
    return args.env_name or settings.ENV.raw() or os.environ.get("TOX_ENV_NAME") or args.device


def request(args: argparse.Namespace) -> supervisor.RunRequest:
    env = env_name(args)
    junit = os.path.abspath(args.junitxml or os.path.join("reports", f"{env}.xml"))
    if args.time_limit is not None:
        limit = args.time_limit if args.time_limit > 0 else None
    else:
        limit = supervisor.time_limit_from_env()
    return supervisor.RunRequest(args.device, junit, env, args.strict_device, limit, list(args.extra))


def run(args: argparse.Namespace) -> int:
    return supervisor.run(request(args))
