"""The one base error and the exit codes: raised anywhere, caught once in `conformance.cli.main` (no torch).

Exit codes are documented in the README ("Exit codes"); each error class carries the code it exits with.
"""

from __future__ import annotations

OK = 0  # everything ran and nothing failed
FAILED = 1  # a check failed or errored (run); a crashed or failed env in the inputs (report)
USAGE = 2  # bad command line: unknown device, missing file argument, bad option value, malformed baseline
NO_INPUT = 3  # report: no JUnit input files found or none readable
STRICT = 4  # report --strict: an input warning (malformed file, duplicate, missing expected env)
REGRESSION = 5  # report --baseline: a check regressed against the baseline
INTERNAL = 6  # run: pytest could not run the suite; install-torch failed; report: merged totals not conserved
INTERRUPTED = 130  # Ctrl-C / SIGTERM: partial results were written, then the run stopped


class ConformanceError(Exception):
    """A problem the user can act on: one line on stderr, no traceback, and this exit code."""

    exit_code = INTERNAL

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ConformanceError):
    """Bad command line, setting or input file shape."""

    exit_code = USAGE


class NoInputError(ConformanceError):
    """Nothing to read."""

    exit_code = NO_INPUT


class BrokenEnvError(ConformanceError):
    """The environment cannot test anything (e.g. torch not importable in a device env)."""

    exit_code = FAILED
