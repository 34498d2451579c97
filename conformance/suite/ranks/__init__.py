"""Rank-side scenarios of the suite's multi-rank checks, registered with `conformance.pool.scenarios`.

Runs inside rank processes; the modules import torch. This package's `__init__` does not (the pytest process reads
`MODULES` from it).
"""

# Every module of the suite that registers rank-side scenarios. The rank pool names no suite module: this table
# travels to the ranks in every Task (`conformance.protocol.tasks.Task.modules`), and each rank imports the modules
# before it looks a scenario up. A new area adds its module here, one line each.
MODULES: tuple[str, ...] = (
    "conformance.suite.ranks.schedules",
    "conformance.suite.ranks.behaviour",
    "conformance.suite.ranks.composition",
    "conformance.suite.ranks.numerics",
    "conformance.suite.ranks.tier",
    "conformance.suite.ranks.graphs",
    "conformance.suite.ranks.training",
)
