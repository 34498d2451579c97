"""`conformance report`: merge per-env JUnit files into merged.xml and a checks x envs matrix (HTML, MD, JSON).

Exit status, most specific first (every reason is still printed on stderr):
  NO_INPUT (3)   no JUnit file found, or none readable; nothing is written
  STRICT (4)     --strict and an input warning (the report may be incomplete, so this outranks results)
  REGRESSION (5) --baseline and a check that passed there now fails, errors, crashed, is missing or not run
  FAILED (1)     some env has a failed, error, crashed or strict-xpass check
  OK (0)         otherwise
USAGE (2) for a bad option or unusable --baseline/--output-dir; INTERNAL (6) if merged.xml would not conserve the
input totals (a bug: nothing is written).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from conformance import __version__, errors
from conformance.output import STDOUT, write_text
from conformance.report import baseline as baseline_mod
from conformance.report import model as m
from conformance.report.console import summary_lines
from conformance.report.html import render_html
from conformance.report.inputs import MERGED_NAME, find_inputs, read_inputs
from conformance.report.jsonfmt import render_json
from conformance.report.markdown import render_markdown
from conformance.report.matrix import build_matrix
from conformance.report.merge import MergeError, render_merged
from conformance.report.render import RenderError, render_all

FORMATS: dict[str, tuple[str, Callable[[m.Matrix], str]]] = {
    "xml": (MERGED_NAME, render_merged),
    "html": ("compatibility.html", render_html),
    "md": ("compatibility.md", render_markdown),
    "json": ("compatibility.json", render_json),
}
DEFAULT_DIR = "reports"
GITLAB_MAX_BYTES = 30_000_000
GITLAB_MAX_CASES = 500_000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="merge per-env JUnit files into merged.xml and a cross-device compatibility matrix",
        description="Merge per-env JUnit files (default reports/*.xml) into merged.xml plus a checks x envs "
                    "matrix as compatibility.html, .md and .json.",
        epilog="exit status: 0 ok, 1 a check failed/errored/crashed/xpassed, 3 no input, 4 --strict and a warning, "
               "5 regression against --baseline (precedence 3 > 4 > 5 > 1); 2 bad usage, 6 internal error",
    )
    p.add_argument("junit_files", nargs="*", metavar="JUNIT_FILES",
                   help="JUnit XML files, folders or globs (default: reports/*.xml, without merged.xml)")
    p.add_argument("--output-dir", default=DEFAULT_DIR, metavar="DIR",
                   help="where the reports go (default: reports/); '-' writes the one --format to stdout")
    p.add_argument("--baseline", metavar="PATH",
                   help="a previous compatibility.json or merged.xml: list regressions and fixes")
    p.add_argument("--expect", default="", metavar="ENV,...",
                   help="envs that must have results, e.g. cpu,cuda (a missing one is a warning)")
    p.add_argument("--strict", action="store_true", help="exit 4 when any input warning was printed")
    p.add_argument("--format", default="md,html,json,xml", metavar="FMT,...",
                   help="outputs to write: any of md,html,json,xml (default: all)")
    p.set_defaults(func=run)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _err(msg: str) -> None:
    sys.stderr.write(f"conformance report: {msg}\n")


def _gitlab_note(text: str | bytes, cases: int) -> None:
    # GitLab silently ignores a test report over its limits; say so while there is still time to split it.
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))
    if size > GITLAB_MAX_BYTES or cases > GITLAB_MAX_CASES:
        _err(f"note: merged.xml has {cases:,} testcases in {size / 1e6:.1f} MB; GitLab ignores test reports over "
             f"{GITLAB_MAX_BYTES // 1_000_000} MB or {GITLAB_MAX_CASES:,} cases (upload the per-env files instead)")


def exit_code(matrix: m.Matrix, strict: bool) -> int:
    if strict and matrix.warnings:
        return errors.STRICT
    diff = matrix.baseline
    if diff is not None and diff.regressions:
        return errors.REGRESSION
    if matrix.failed_envs:
        return errors.FAILED
    return errors.OK


def run(args: argparse.Namespace) -> int:
    # The matrix is a few hundred thousand small objects and holds no reference cycles worth collecting: the
    # cyclic GC would rescan them over and over (a third of the run time at 130k testcases).
    gc.disable()
    try:
        return _run(args)
    finally:
        gc.enable()


def _run(args: argparse.Namespace) -> int:
    formats = _split(args.format)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        _err(f"unknown --format {', '.join(unknown) or repr(args.format)} (choose from {', '.join(FORMATS)})")
        return errors.USAGE
    to_stdout = args.output_dir == STDOUT
    if to_stdout and len(formats) != 1:
        _err("--output-dir - writes one report to stdout: pick it with --format (e.g. --format md)")
        return errors.USAGE
    out_dir = Path(DEFAULT_DIR if to_stdout else args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        _err(f"--output-dir {out_dir} exists and is not a folder")
        return errors.USAGE
    expect = _split(args.expect)

    found = find_inputs(list(args.junit_files), DEFAULT_DIR, exclude=out_dir / MERGED_NAME)
    if not found.files:
        for w in found.warnings:
            _err(f"warning: {w}")
        _err(f"no JUnit files found (searched {found.searched}); nothing written. "
             "Run a device env first (e.g. `tox -e cpu`) or pass the files.")
        return errors.NO_INPUT
    envs, warnings = read_inputs(found.files)
    warnings = found.warnings + warnings
    if not envs:
        for w in warnings:
            _err(f"warning: {w}")
        _err(f"none of the {len(found.files)} input files could be read (searched {found.searched}); "
             "nothing written")
        return errors.NO_INPUT

    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    matrix = build_matrix(envs, warnings, expect, generated_at=now, generator=f"conformance {__version__}")
    if args.baseline:
        try:
            before = baseline_mod.load(args.baseline)
        except baseline_mod.BaselineError as exc:
            _err(f"--baseline: {exc}")
            return errors.USAGE
        matrix.baseline = baseline_mod.diff(matrix, before, args.baseline)

    # Render everything before writing anything: a failed render (or merge check) leaves old reports intact.
    try:
        rendered = render_all(matrix, [(f, FORMATS[f][1]) for f in formats])
    except (MergeError, RenderError) as exc:
        _err(f"internal error: {exc}; nothing written")
        return errors.INTERNAL
    texts = [(STDOUT if to_stdout else out_dir / FORMATS[f][0], text) for f, text in zip(formats, rendered)]
    try:
        for path, text in texts:
            write_text(path, text)
    except OSError as exc:
        _err(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}")
        return errors.USAGE

    for w in matrix.warnings:
        _err(f"warning: {w}")
    for f, text in zip(formats, rendered):
        if f == "xml":
            _gitlab_note(text, sum(c.result.tests for c in matrix.envs))
    try:
        # With the report itself on stdout, the summary must not mix into it.
        stream = sys.stderr if to_stdout else sys.stdout
        for line in summary_lines(matrix):
            print(line, file=stream)
        if not to_stdout:
            print("wrote " + ", ".join(str(p) for p, _ in texts))
        sys.stdout.flush()
    except BrokenPipeError:
        # `conformance report | head`: the reader left; the reports are written, the exit code still matters.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = exit_code(matrix, args.strict)
    if code == errors.STRICT:
        _err(f"--strict: {len(matrix.warnings)} input warning(s) (exit {code})")
    return code
