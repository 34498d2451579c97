"""The conformance suite's process: the pytest plugin, options, fixtures, expectations, models and the checks.

Imports torch (lazily, so checks collect with the same ids when torch is absent). `checks/` holds one module per
pipelining area; `ranks/` holds the rank-side scenarios the multi-rank checks run on the rank pool.
"""
