"""Test-only: every Python process started with this folder on PYTHONPATH (a reproduction script and the ranks it
spawns) imports `pool_faults`, which breaks every schedule's `step` with CONFORMANCE_TEST_SCHEDULE_FAULT, the same
fault the pool tests inject into the suite's ranks (and `training_faults` / `graphs_faults` with theirs). Proves
the generated scripts assert what the checks assert."""

import os
import sys

_SUPPORT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_SUPPORT, os.path.dirname(os.path.dirname(_SUPPORT))]  # tests/support and the checkout

if os.environ.get("CONFORMANCE_TEST_SCHEDULE_FAULT"):
    import pool_faults  # noqa: F401  (applies the fault on import)
if os.environ.get("CONFORMANCE_TEST_TRAINING_FAULT"):  # the training area's faults (tests/support/training_faults.py)
    import training_faults  # noqa: F401
if os.environ.get("CONFORMANCE_TEST_GRAPHS_FAULT"):  # the graphs area's (split backward: graphs_faults.py)
    import graphs_faults  # noqa: F401
