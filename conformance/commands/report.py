"""`conformance report`: merge per-env JUnit files into merged.xml and a checks x envs matrix (HTML, MD, JSON).

This module only parses the command line; `conformance.report.engine` does the work. Exit status, most specific
first (every reason is still printed on stderr):
  NO_INPUT (3)   no JUnit file found, or none readable; nothing is written
  STRICT (4)     an incomplete input (truncated, fewer testcases than declared), or --strict and any input
                 warning (the report may be incomplete, so this outranks results); --allow-warnings SLUG lets one pass
  REGRESSION (5) --baseline and a check that passed there now fails, errors or crashed, or lost coverage (passed
                 or xfail there, now unavailable, not run, missing, skipped or not applicable) unless
                 --allow-lost-coverage
  FAILED (1)     some env has a failed, error, crashed or strict-xpass check (a failed rerun included)
  OK (0)         otherwise
USAGE (2) for a bad option or unusable --baseline/--output-dir; INTERNAL (6) if merged.xml would not conserve the
input totals (a bug: nothing is written).
"""

from __future__ import annotations

import argparse
import gc

from conformance import __version__
from conformance.report import model as m
from conformance.report.engine import DEFAULT_DIR, FORMATS, Options, run_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="merge per-env JUnit files into merged.xml and a cross-device compatibility matrix",
        description="Merge per-env JUnit files (default reports/*.xml) into merged.xml plus a checks x envs "
                    "matrix as compatibility.html, .md and .json.",
        epilog="exit status: 0 ok, 1 a check failed/errored/crashed/xpassed, 3 no input, 4 an incomplete input or "
               "--strict and a warning, 5 regression or lost coverage against --baseline (precedence 3 > 4 > 5 > 1); "
               "2 bad usage, 6 internal error",
    )
    p.add_argument("junit_files", nargs="*", metavar="JUNIT_FILES",
                   help="JUnit XML files, folders or globs (default: reports/*.xml, without merged.xml)")
    p.add_argument("--output-dir", default=DEFAULT_DIR, metavar="DIR",
                   help="where the reports go (default: reports/); '-' writes the one --format to stdout")
    p.add_argument("--baseline", metavar="PATH",
                   help="a previous compatibility.json or merged.xml: list regressions and fixes")
    p.add_argument("--expect", default="", metavar="ENV,...",
                   help="envs that must have results, e.g. cpu,cuda (a missing one is a warning)")
    p.add_argument("--strict", action="store_true", help="exit 4 when any input warning was printed (an incomplete "
                                                         "input, truncated or with fewer testcases than declared, "
                                                         "exits 4 without it)")
    p.add_argument("--allow-warnings", default="", metavar="SLUG,...",
                   help="warning slugs --strict lets pass (still printed), e.g. duplicate,in-progress; known: "
                        + ", ".join(m.WARNING_SLUGS))
    p.add_argument("--allow-lost-coverage", action="store_true",
                   help="with --baseline: checks that ran there and now are unavailable, not run, missing or skipped "
                        "are listed but do not exit 5")
    p.add_argument("--envs", default="", metavar="ENV,...",
                   help="the Markdown shows only these envs, divergence computed among them (default: all)")
    p.add_argument("--format", default="md,html,json,xml", metavar="FMT,...",
                   help=f"outputs to write: any of {','.join(FORMATS)} (default: md,html,json,xml; github: the GitHub "
                        "Actions annotations, reports/annotations.txt)")
    p.set_defaults(func=run)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def options(args: argparse.Namespace) -> Options:
    """The engine's options from the parsed command line."""
    return Options(inputs=list(args.junit_files), output_dir=args.output_dir, formats=_split(args.format),
                   baseline=args.baseline, expect=_split(args.expect), strict=args.strict,
                   allow=frozenset(_split(args.allow_warnings)), allow_lost_coverage=args.allow_lost_coverage,
                   envs=_split(args.envs),
                   generator=f"conformance {__version__}")


def run(args: argparse.Namespace) -> int:
    # The matrix is a few hundred thousand small objects and holds no reference cycles worth collecting: the
    # cyclic GC would rescan them over and over (a third of the run time at 130k testcases).
    gc.disable()
    try:
        return run_report(options(args))
    finally:
        gc.enable()
