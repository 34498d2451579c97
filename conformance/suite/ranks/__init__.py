"""Rank-side scenarios of the suite's multi-rank checks, registered with `conformance.pool.scenarios`.

Runs inside rank processes; imports torch.
"""
