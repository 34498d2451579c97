"""Exit codes of every `conformance` subcommand, documented in one place (README "Exit codes")."""

OK = 0  # everything ran and nothing failed
FAILED = 1  # a check failed or errored (run); a crashed or failed env in the inputs (report)
USAGE = 2  # bad command line: unknown device, missing file argument, bad option value
NO_INPUT = 3  # report: no JUnit input files found or none readable
STRICT = 4  # report --strict: an input warning (malformed file, duplicate, missing expected env)
REGRESSION = 5  # report --baseline: a check regressed against the baseline
INTERNAL = 6  # run: pytest could not run the suite; install-torch failed; report: merged totals not conserved
INTERRUPTED = 130  # Ctrl-C / SIGTERM: partial results were written, then the run stopped
