"""Benchmark of the rank pool: the whole cpu suite's wall time, and the multi-rank checks with the pool vs isolate.

    .venv/bin/python benchmarks/bench_pool.py [--select EXPR] [--skip-suite] [--json PATH]

Each measurement is one `conformance run --device cpu` in a child process (the env is already built); the pool
and isolate runs select the same multi-rank checks. A measurement, not a timed test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

# Multi-rank checks only (world 1 runs inside pytest and is the same in both modes): the 14 fp32 checks of every
# schedule at world 2 and 4, so the isolate baseline finishes in about a minute. Widen with --select.
DEFAULT_SELECT = ("test_schedule and not tracer and not eval and not kwargs and not iterations and not summed "
                  "and not constructor and fp32 and (world2 or world4)")


def run(select: str | None, pool: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "bench.xml")
        cmd = [sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml", xml, "--", "-q"]
        if select:
            cmd += ["-k", select]
        env = {**os.environ, "CONFORMANCE_POOL": pool}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        if os.path.exists(xml):
            for tc in ET.parse(xml).iter("testcase"):
                kind = "failed" if tc.find("failure") is not None or tc.find("error") is not None else (
                    "skipped" if tc.find("skipped") is not None else "passed")
                counts[kind] += 1
    return {"pool": pool, "select": select, "wall_s": round(wall, 1), "exit": proc.returncode, **counts,
            "tail": proc.stdout.strip().splitlines()[-1:] }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--select", default=DEFAULT_SELECT,
                    help=f"-k expression of the multi-rank checks (default: {DEFAULT_SELECT!r})")
    ap.add_argument("--skip-suite", action="store_true", help="skip the whole-suite measurement")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args()
    out: dict = {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()[0]}
    if not args.skip_suite:
        out["suite"] = run(None, "persistent")
        print(f"(a) whole cpu suite: {out['suite']['wall_s']} s  {out['suite']['tail']}", flush=True)
    out["pool"] = run(args.select, "persistent")
    print(f"(b) multi-rank checks, persistent pool: {out['pool']['wall_s']} s  {out['pool']['tail']}", flush=True)
    out["isolate"] = run(args.select, "isolate")
    print(f"(b) multi-rank checks, isolate: {out['isolate']['wall_s']} s  {out['isolate']['tail']}", flush=True)
    out["speedup"] = round(out["isolate"]["wall_s"] / out["pool"]["wall_s"], 1)
    out["loadavg_after"] = os.getloadavg()[0]
    print(f"pool speed-up over isolate: {out['speedup']}x (load average {out['loadavg_before']:.1f} -> "
          f"{out['loadavg_after']:.1f} on {out['cpus']} cpus)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
