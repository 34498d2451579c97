"""The conformance checks: pytest modules, one per pipelining area, run by `conformance run` on one device.

Modules here must not import torch at module level: with torch absent (a broken env) the checks must still be
collected, so every row shows up in the matrix as not run (and the identity check as failed) rather than missing.
"""
