"""The model registry: every model the checks split, trace and train, built fresh per use.

Fresh per use because `pipeline()` rewrites the given module's `forward` in place (split points from one call
would leak into the next).
"""

from __future__ import annotations

from typing import Callable


def _nn():
    import torch.nn as nn

    return nn


def transformer_like(d_hid: int = 16, n_layers: int = 8, seed: int = 0):
    """The seed model: `layers` of Linear+ReLU blocks, the shape upstream's pipelining tests use."""
    import torch

    nn = _nn()

    class MLPBlock(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.net1 = nn.Linear(d, d)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.net1(x))

    class TransformerLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*[MLPBlock(d_hid) for _ in range(n_layers)])

        def forward(self, x):
            return self.layers(x)

    torch.manual_seed(seed)
    return TransformerLike()


REGISTRY: dict[str, Callable] = {
    "TransformerLike": transformer_like,
}


def build(name: str, **kwargs):
    return REGISTRY[name](**kwargs)
