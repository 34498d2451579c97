"""The report engine: inputs -> matrix -> outputs replaced as a set -> exit code; knows nothing of argparse.

`conformance.commands.report` turns the command line into `Options` and calls `run_report`. Problems the user can
act on raise `conformance.errors.ConformanceError` subclasses (caught once in `conformance.cli.main`).
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from conformance import errors
from conformance.output import STDOUT, commit, discard, stage
from conformance.report import baseline as baseline_mod
from conformance.report import model as m
from conformance.report import releases, stepcost
from conformance.report.annotations import render_annotations
from conformance.report.console import safe_line, summary_lines, warning_line
from conformance.report.html import render_html
from conformance.report.inputs import MERGED_NAME, find_inputs, read_inputs
from conformance.report.jsonfmt import render_json
from conformance.report.markdown import render_markdown
from conformance.report.matrix import build_matrix
from conformance.report.merge import write_merged
from conformance.report.render import Writer, render_files, text_writer

# format -> (file name, writer); the order here is the order of --format's help.
FORMATS: dict[str, tuple[str, Writer]] = {
    "xml": (MERGED_NAME, write_merged),
    "html": ("compatibility.html", text_writer(render_html)),
    "md": ("compatibility.md", text_writer(render_markdown)),
    "json": ("compatibility.json", text_writer(render_json)),
    "github": ("annotations.txt", text_writer(render_annotations)),  # workflow commands; not in the default set
}
DEFAULT_DIR = "reports"
GITLAB_MAX_BYTES = 30_000_000
GITLAB_MAX_CASES = 500_000


@dataclass
class Options:
    """What to read, what to write and how strict to be: everything the command line decides."""

    inputs: list[str] = field(default_factory=list)  # files, folders or globs; [] = <DEFAULT_DIR>/*.xml
    output_dir: str = DEFAULT_DIR  # "-" writes the one format to stdout
    formats: list[str] = field(default_factory=lambda: ["md", "html", "json", "xml"])
    baseline: str | None = None
    expect: list[str] = field(default_factory=list)
    strict: bool = False
    allow: frozenset[str] = frozenset()  # warning slugs that --strict (and incomplete inputs) let pass
    allow_lost_coverage: bool = False  # lost coverage against --baseline is listed but does not exit 5
    envs: list[str] = field(default_factory=list)  # --envs: the envs the Markdown shows ([] = all)
    generator: str = ""


@dataclass
class Streams:
    """Where the summary and the warnings go (stdout/stderr unless a caller captures them)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def note(self, text: str) -> None:
        self.err.write(safe_line(f"conformance report: {text}") + "\n")


def check_options(opts: Options) -> Path:
    """The output folder, after refusing options that cannot work together."""
    unknown = [f for f in opts.formats if f not in FORMATS]
    if unknown or not opts.formats:
        raise errors.UsageError(f"unknown --format {', '.join(unknown) or '(none)'} (choose from "
                                f"{', '.join(FORMATS)})")
    bad_slugs = sorted(opts.allow - set(m.WARNING_SLUGS))
    if bad_slugs:
        raise errors.UsageError(f"unknown warning slug {', '.join(bad_slugs)} (known: {', '.join(m.WARNING_SLUGS)})")
    if opts.output_dir == STDOUT:
        if len(opts.formats) != 1:
            raise errors.UsageError("--output-dir - writes one report to stdout: pick it with --format "
                                    "(e.g. --format md)")
        return Path(DEFAULT_DIR)
    out_dir = Path(opts.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise errors.UsageError(f"--output-dir {out_dir} exists and is not a folder")
    return out_dir


def read_envs(opts: Options, out_dir: Path, streams: Streams) -> tuple[list[m.EnvResult], list[m.InputWarning]]:
    """Find and read the inputs; NoInputError (after the warnings that explain it) when nothing is usable."""
    found = find_inputs(list(opts.inputs), DEFAULT_DIR, exclude=out_dir / MERGED_NAME)
    if not found.files:
        print_warnings(found.warnings, streams)
        raise errors.NoInputError(f"no JUnit files found (searched {found.searched}); nothing written. Run a "
                                  "device env first (e.g. `tox -e cpu`) or pass the files.")
    for note in found.notes:
        streams.note(f"read {note}")
    envs, warnings = read_inputs(found.files)
    warnings = found.warnings + warnings
    if not envs:
        print_warnings(warnings, streams)
        raise errors.NoInputError(f"none of the {len(found.files)} input files could be read (searched "
                                  f"{found.searched}); nothing written")
    return envs, warnings


def build(opts: Options, envs: list[m.EnvResult], warnings: list[m.InputWarning]) -> m.Matrix:
    """The matrix, with the baseline comparison when one was given."""
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    matrix = build_matrix(envs, warnings, opts.expect, generated_at=now, generator=opts.generator)
    releases.attach(matrix)  # the version axes and their delta; bad version columns become warnings
    unknown = sorted(set(opts.envs) - {c.name for c in matrix.envs})
    if unknown:
        raise errors.UsageError(f"--envs: no env named {', '.join(unknown)}")
    if opts.baseline:
        try:
            before = baseline_mod.load(opts.baseline)
        except baseline_mod.BaselineError as exc:
            raise baseline_mod.BaselineError(f"--baseline: {exc}") from None
        matrix.baseline = baseline_mod.diff(matrix, before, opts.baseline)
        matrix.baseline.lost_allowed = opts.allow_lost_coverage
    return matrix


def writer(opts: Options, fmt: str) -> Writer:
    """The writer of one format; the Markdown's shows only the --envs view when one was asked for."""
    if fmt == "md" and opts.envs:
        return text_writer(functools.partial(render_markdown, envs=opts.envs))
    return FORMATS[fmt][1]


def write_reports(opts: Options, matrix: m.Matrix, out_dir: Path) -> list[Path]:
    """Render every format into temporary files, then replace the outputs together (nothing on failure)."""
    if opts.output_dir == STDOUT:
        writer(opts, opts.formats[0])(matrix, sys.stdout)
        sys.stdout.flush()
        return []
    targets = [out_dir / FORMATS[f][0] for f in opts.formats]
    try:
        staged = stage(targets)
    except OSError as exc:
        raise errors.UsageError(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    try:
        render_files(matrix, [(f, writer(opts, f), item.tmp) for f, item in zip(opts.formats, staged, strict=True)])
    except BaseException:
        discard(staged)
        raise
    try:
        commit(staged)
    except OSError as exc:
        raise errors.UsageError(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}; the previous "
                                "reports were kept") from None
    traces = stepcost.write_chrome_traces(matrix, out_dir)
    return targets + ([out_dir / stepcost.TRACE_DIR] if traces else [])


def print_warnings(warnings: list[m.InputWarning], streams: Streams) -> None:
    for w in warnings:
        streams.err.write(warning_line(w) + "\n")


def gitlab_note(size: int, cases: int, streams: Streams) -> None:
    """GitLab silently ignores a test report over its limits: say so while there is still time to split it."""
    if size > GITLAB_MAX_BYTES or cases > GITLAB_MAX_CASES:
        streams.note(f"note: merged.xml has {cases:,} testcases in {size / 1e6:.1f} MB; GitLab ignores test "
                     f"reports over {GITLAB_MAX_BYTES // 1_000_000} MB or {GITLAB_MAX_CASES:,} cases (upload the "
                     "per-env files instead)")


def print_summary(opts: Options, matrix: m.Matrix, written: list[Path], streams: Streams) -> None:
    """Warnings and notes on stderr, the per-env summary on stdout (stderr when the report itself is there)."""
    print_warnings(matrix.warnings, streams)
    for path in written:
        if path.name == MERGED_NAME:
            gitlab_note(path.stat().st_size, sum(c.result.tests for c in matrix.envs), streams)
    to_stdout = opts.output_dir == STDOUT
    stream = streams.err if to_stdout else streams.out
    try:
        for line in summary_lines(matrix):
            print(line, file=stream)
        if written:
            print(safe_line("wrote " + ", ".join(str(p) for p in written)), file=streams.out)
        streams.out.flush()
    except BrokenPipeError:
        # `conformance report | head`: the reader left; the reports are written, the exit code still matters.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def strict_warnings(opts: Options, matrix: m.Matrix) -> list[m.InputWarning]:
    """The warnings that fail the report (exit 4): an incomplete input always (it would read green on lost
    testcases), any warning under --strict; in both cases but the slugs --allow-warnings names."""
    return [w for w in matrix.warnings if w.slug not in opts.allow and (opts.strict or w.slug in m.INCOMPLETE_SLUGS)]


def exit_code(opts: Options, matrix: m.Matrix) -> int:
    """Most specific first: incomplete inputs or --strict warnings (4), baseline regressions or lost coverage (5),
    failed envs (1), else 0."""
    if strict_warnings(opts, matrix):
        return errors.STRICT
    diff = matrix.baseline
    if diff is not None and diff.gating:
        return errors.REGRESSION
    if matrix.failed_envs:
        return errors.FAILED
    return errors.OK


def run_report(opts: Options, streams: Streams | None = None) -> int:
    """Every step of `conformance report`; returns the exit status, raises ConformanceError for the others."""
    streams = streams or Streams()
    out_dir = check_options(opts)
    envs, warnings = read_envs(opts, out_dir, streams)
    matrix = build(opts, envs, warnings)
    written = write_reports(opts, matrix, out_dir)
    print_summary(opts, matrix, written, streams)
    code = exit_code(opts, matrix)
    if code == errors.STRICT:
        failing = strict_warnings(opts, matrix)
        slugs = sorted({w.slug for w in failing})
        why = "--strict" if opts.strict else "incomplete input"
        streams.note(f"{why}: {len(failing)} input warning(s) ({', '.join(slugs)}) (exit {code}; "
                     f"--allow-warnings {','.join(slugs)} lets them pass)")
    elif code == errors.REGRESSION and matrix.baseline is not None and not matrix.baseline.regressions:
        streams.note(f"{len(matrix.baseline.lost)} checks lost coverage against the baseline (exit {code}; "
                     "--allow-lost-coverage lets that pass)")
    return code
