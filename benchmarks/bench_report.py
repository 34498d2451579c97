"""Scale benchmark of `conformance report` against `junitparser merge` and `junit2html --report-matrix`.

Generates 16 env files x 5,000 cases plus one env of 50,000 cases (pytest xunit2 style, with suite properties,
failures with tracebacks, skips, xfails, crashes) in a temporary folder, then times every tool on the same
inputs in the same run: wall time and peak RSS of the tool's process (each run in a fresh wrapper process, so
RUSAGE_CHILDREN holds only that tool); CPU time (user+sys) is printed too, since a busy machine inflates wall
time. Not a test: run it by hand.

    python benchmarks/bench_report.py [--repeat 3] [--envs 16] [--cases 5000] [--big 50000] [--keep DIR]

Goal on a 2-core machine: all four outputs in under 2 s and under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("split", "microbatch", "stage", "schedules", "backward", "identity")
SCHEDULES = ("ScheduleGPipe", "Schedule1F1B", "ScheduleInterleaved1F1B", "ScheduleLoopedBFS",
             "ScheduleInterleavedZeroBubble", "ScheduleZBVZeroBubble", "ScheduleDualPipeV")
TRACEBACK = "".join(f"E   line {i} of a realistic assertion traceback with some context text\n" for i in range(12))

# Runs the command given as JSON in argv[1] and prints {"wall": s, "cpu": s, "rss_mb": MB, "rc": n}.
_WRAPPER = """
import json, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
t = time.perf_counter()
rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024, "rc": rc}))
"""


def case_id(i: int) -> tuple[str, str]:
    area = AREAS[i % len(AREAS)]
    return f"test_{area}", f"test_{area}_check_{i // len(AREAS)}[{SCHEDULES[i % len(SCHEDULES)]}-world{2 + i % 3}]"


def write_env(path: Path, env: str, n: int, rng: random.Random) -> int:
    props = {"env": env, "device": "cuda", "device_available": "true", "device_count": "8",
             "device_names": "NVIDIA H100 80GB HBM3", "torch_version": "2.13.0+cu130", "torch_variant": "cu130",
             "torch_source": "pinned", "runtime": "cuda", "runtime_version": "13.0", "driver_version": "580.65.06",
             "backend": "nccl", "python_version": "3.11.7", "hostname": f"node-{env}",
             "start_time": "2026-01-05T10:00:00+00:00", "conformance_version": "0.1.0"}
    cases = []
    tot = [0, 0, 0, 0]
    for i in range(n):
        classname, name = case_id(i)
        head = f'<testcase classname="{classname}" name={quoteattr(name)} time="{rng.random() * 2:.3f}"'
        r = rng.random()
        tot[0] += 1
        if r < 0.86:
            cases.append(head + " />")
        elif r < 0.91:
            tot[1] += 1
            cases.append(head + f'><failure message="AssertionError: {name} mismatch">{escape(TRACEBACK)}'
                                "</failure></testcase>")
        elif r < 0.92:
            tot[2] += 1
            cases.append(head + '><error type="crashed" message="crashed: rank 1 SIGABRT">stacks</error></testcase>')
        elif r < 0.97:
            tot[3] += 1
            cases.append(head + f'><skipped type="pytest.skip" message="unavailable: world size 8 needs 8 devices">'
                                f"/ci/checks/{classname}.py:10: unavailable: world size 8 needs 8 devices"
                                "</skipped></testcase>")
        else:
            tot[3] += 1
            cases.append(head + '><skipped type="pytest.xfail" message="pytorch#170000" /></testcase>')
    prop_xml = "".join(f"<property name={quoteattr(k)} value={quoteattr(v)} />" for k, v in props.items())
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
                    f'<testsuite name="{env}" errors="{tot[2]}" failures="{tot[1]}" skipped="{tot[3]}" '
                    f'tests="{tot[0]}" time="100.0" timestamp="2026-01-05T10:00:00+00:00" hostname="node">'
                    f"<properties>{prop_xml}</properties>" + "".join(cases) + "</testsuite></testsuites>\n",
                    encoding="utf-8")
    return n


def measure(cmd: list[str], cwd: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(cmd)], capture_output=True, text=True, cwd=cwd,
                         check=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--big", type=int, default=50000, help="cases of the one extra large env (0: none)")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    parser.add_argument("--only-ours", action="store_true", help="skip junitparser and junit2html")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    inputs = work / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20260105)
    total = sum(write_env(inputs / f"env{i:02d}.xml", f"env{i:02d}", args.cases, rng) for i in range(args.envs))
    if args.big:
        total += write_env(inputs / "big.xml", "big", args.big, rng)
    files = sorted(str(p) for p in inputs.glob("*.xml"))
    size = sum(Path(f).stat().st_size for f in files) / 1e6
    print(f"inputs: {len(files)} files, {total:,} testcases, {size:.1f} MB in {inputs}")

    env_py = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from conformance.cli import main; "
                                    "sys.exit(main())"]
    tools: dict[str, list[str]] = {
        "conformance report (xml+html+md+json)": env_py + ["report", *files, "--output-dir", str(work / "out")],
    }
    if not args.only_ours:
        if shutil.which("junitparser"):
            tools["junitparser merge"] = ["junitparser", "merge", *files, str(work / "junitparser.xml")]
        else:
            print("junitparser CLI not found: skipped")
        if shutil.which("junit2html"):
            tools["junit2html --report-matrix"] = ["junit2html", "--report-matrix", str(work / "matrix.html"), *files]
        else:
            print("junit2html not installed (pip install junit2html): skipped")

    # Other work on the machine inflates wall time but hardly CPU time: print the load so readers can judge.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f} before the runs")
    results = {}
    for label, cmd in tools.items():
        runs = [measure(cmd, work) for _ in range(args.repeat)]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        rcs = sorted({int(r["rc"]) for r in runs})
        results[label] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": round(rss, 1),
                          "exit": rcs}
        print(f"{label:40s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  peak RSS {rss:7.1f} MB  exit {rcs}  "
              f"(median of {args.repeat})")
    out = work / "out"
    if out.exists():
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.iterdir()))
        print(f"outputs: {sizes}")
    (work / "bench.json").write_text(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
