"""Standalone reproductions of checks: `conformance repro CHECK_ID` writes a plain-torch script and an issue body.

Runs in the CLI process and never imports torch: the check-id grammar (`checkids`), the script builders
(`scripts`), the issue body (`issue`, which asks the target interpreter for its environment in a subprocess) and
the engine the command and the report call (`engine`).
"""
