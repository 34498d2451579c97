"""Device conformance matrix for PyTorch's pipeline parallelism (torch.distributed.pipelining).

Layout, by the process each part runs in: `commands/` and `runner/` (the supervisor), `suite/` (the pytest
process), `pool/` (rank processes), `report/` (the report), `torchenv/` (torch builds and devices, everywhere).
Shared by all: `errors`, `contracts`, `settings`, `output`, `signals`. Only `suite/`, `pool/` ranks and
`torchenv/` functions import torch.
"""

__version__ = "0.1.0"
