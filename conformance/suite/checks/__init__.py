"""The conformance checks: pytest modules, one per pipelining area, run by `conformance run` on one device.

Modules here must not import torch at module level: with torch absent (an hpu env on a non-Gaudi host) the
checks must still be collected, so every row shows up in the matrix as unavailable rather than missing.
"""
