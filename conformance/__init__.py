"""Device conformance matrix for PyTorch's pipeline parallelism (torch.distributed.pipelining)."""

__version__ = "0.1.0"
