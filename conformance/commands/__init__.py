"""One thin module per `conformance` subcommand: `register(subparsers)` and `run(args) -> int` over an engine.

No torch here: `report` and `install-torch` must work where torch is absent or broken.
"""
