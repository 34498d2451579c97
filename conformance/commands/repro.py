"""`conformance repro CHECK_ID`: write a standalone reproduction of one check and an issue body beside it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance import errors
from conformance.repro import engine, issue


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("repro", help="write a standalone plain-torch reproduction of a check and an issue body")
    p.add_argument("check_id", metavar="CHECK_ID",
                   help="a check id as the report shows it, e.g. 'test_schedules.py::test_schedule_eval["
                        "ScheduleInterleaved1F1B-world1]'")
    p.add_argument("--device", default="cpu", help="device the script runs on (default: cpu)")
    p.add_argument("--out", type=Path, default=Path("reports") / "repro",
                   help="folder for repro_<id>.py and repro_<id>.md (default: reports/repro)")
    p.add_argument("--no-run", action="store_true",
                   help="write only: do not run the script or collect the environment for the issue body")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that runs the script for the issue body (default: this one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    written = engine.write(args.check_id, args.device, args.out, python=args.python, run=not args.no_run)
    print(f"wrote {written.script_path}")
    print(f"wrote {written.issue_path}")
    if written.outcome is not None and written.outcome.code is not None:
        verdict = issue.VERDICTS.get(written.outcome.code, f"exit code {written.outcome.code}")
        print(f"ran it: {verdict} (exit {written.outcome.code})")
    return errors.OK
