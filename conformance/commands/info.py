"""`conformance info`: the detected torch build, the devices it can use and the pins, as JSON."""

from __future__ import annotations

import argparse
import json

from conformance.torchenv import builds, device
from conformance import errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print the detected build and devices as JSON")
    p.add_argument("--device", choices=builds.DEVICES, action="append",
                   help="probe only this device (repeatable; default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    build = device.detect_build()
    names = args.device or list(builds.DEVICES)
    devices = {n: device.probe(n, build) for n in names}  # probing runs nvidia-smi and device queries: once
    plans = {n: builds.plan(n) for n in names}
    out = {
        "build": device.asdict(build),
        "devices": {n: device.asdict(d) for n, d in devices.items()},
        "pins": {n: device.asdict(p) for n, p in plans.items()},
        "identity": {n: device.asdict(device.identity(devices[n], build, plans[n])) for n in names},
    }
    print(json.dumps(out, indent=2))
    return errors.OK
