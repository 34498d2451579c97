"""One module per `conformance` subcommand; each exposes `register(subparsers)` and `run(args) -> int`."""
