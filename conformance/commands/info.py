"""`conformance info`: the detected torch build, the devices it can use and the pins, as JSON."""

from __future__ import annotations

import argparse
import json

from conformance import errors
from conformance.torchenv import builds, device, profiles


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print the detected build and devices as JSON")
    p.add_argument("--device", choices=profiles.names(), action="append",
                   help="probe only this device (repeatable; default: all)")
    p.set_defaults(func=run)


def profile_json(profile: profiles.Profile) -> dict:
    """A profile as JSON: every field (mappings as objects), the simulated flag spelled out."""
    out = {k: dict(v) if k in ("rank_env", "tolerances") else v for k, v in profile.__dict__.items()}
    out["pass_env"] = sorted(set(profile.pass_env) | set(profiles.COMMON_PASS_ENV))
    return out


def run(args: argparse.Namespace) -> int:
    build = device.detect_build()
    names = args.device or list(profiles.names())
    devices = {n: device.probe(n, build) for n in names}  # probing runs nvidia-smi and device queries: once
    plans = {n: builds.plan(n) for n in names}
    out = {
        "build": device.asdict(build),
        "devices": {n: device.asdict(d) for n, d in devices.items()},
        "pins": {n: device.asdict(p) for n, p in plans.items()},
        "identity": {n: device.asdict(device.identity(devices[n], build, plans[n])) for n in names},
        "profiles": {n: profile_json(profiles.get(n)) for n in names},
        "profile_errors": profiles.load_errors(),
    }
    print(json.dumps(out, indent=2))
    return errors.OK
