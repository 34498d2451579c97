"""Command-line entry point: parses arguments and dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import sys

from conformance import __version__, errors
from conformance.commands import info, install_torch, report, repro, run
from conformance.report.console import safe_line


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code and a one-line hint, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(errors.USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conformance",
        description="Pipeline-parallel (torch.distributed.pipelining) conformance across devices.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (run, report, info, install_torch, repro):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare `--` goes to pytest untouched (conformance run ... -- -k seed).
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.extra = extra
    try:
        return int(args.func(args))
    except errors.ConformanceError as exc:
        # The message can echo paths and names from the command line: never let it forge a CI annotation.
        sys.stderr.write(safe_line(f"conformance {args.command}: error: {exc}") + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("conformance: interrupted\n")
        return errors.INTERRUPTED
