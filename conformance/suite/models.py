"""The model registry: every model the checks split, trace and train, built fresh per use.

Fresh per use because `pipeline()` rewrites the given module's `forward` in place (split points from one call
would leak into the next).

Each registry entry is a `ModelSpec`: the builder, how to make example inputs on a device, and a default split
(2 stages) whose stage membership is known, so checks can loop over every model without special cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def transformer_like(d_hid: int = 16, n_layers: int = 8, seed: int = 0):
    """The seed model: `layers` of Linear+ReLU blocks, the shape upstream's pipelining tests use."""
    import torch
    from torch import nn

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


def transformer_block(d_model: int = 16, n_heads: int = 2, n_layers: int = 4, seq: int = 6, seed: int = 0):
    """Pre-norm transformer blocks: multi-head self-attention, LayerNorm, residuals, GELU MLP.

    Each block holds a causal mask as a (persistent) buffer, so splitting must carry buffers with their stage.
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(d_model)
            self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
            self.ln2 = nn.LayerNorm(d_model)
            self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
            self.register_buffer("causal_mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1))

        def forward(self, x):
            h = self.ln1(x)
            a, _ = self.attn(h, h, h, attn_mask=self.causal_mask, need_weights=False)
            x = x + a
            return x + self.mlp(self.ln2(x))

    class TransformerBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([Block() for _ in range(n_layers)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    torch.manual_seed(seed)
    return TransformerBlock()


def embedding_lm(vocab: int = 32, d_model: int = 16, n_layers: int = 4, tied: bool = True, seed: int = 0):
    """Embedding, Linear+tanh layers, LM head; with `tied` the head shares the embedding's weight."""
    import torch
    from torch import nn

    class EmbeddingLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.layers = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(n_layers)])
            self.norm = nn.LayerNorm(d_model)
            self.lm_head = nn.Linear(d_model, vocab, bias=False)
            if tied:
                self.lm_head.weight = self.embed.weight

        def forward(self, tokens):
            x = self.embed(tokens)
            for layer in self.layers:
                x = torch.tanh(layer(x))
            return self.lm_head(self.norm(x))

    torch.manual_seed(seed)
    return EmbeddingLM()


def kwargs_model(d_hid: int = 16, n_layers: int = 4, seed: int = 0):
    """Takes keyword inputs (`mask`, `bias`) besides the positional one: traced with `pipeline(mb_kwargs=...)`."""
    import torch
    from torch import nn

    class KwargsModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(d_hid, d_hid) for _ in range(n_layers)])

        def forward(self, x, mask=None, bias=None):
            for layer in self.layers:
                x = torch.relu(layer(x))
                if mask is not None:
                    x = x * mask
            if bias is not None:
                x = x + bias
            return x

    torch.manual_seed(seed)
    return KwargsModel()


def multi_io(d_hid: int = 16, n_layers: int = 4, seed: int = 0):
    """Two inputs, two outputs: a branch per input, mixed at every layer, returns a tuple."""
    import torch
    from torch import nn

    class MultiIO(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a_layers = nn.ModuleList([nn.Linear(d_hid, d_hid) for _ in range(n_layers)])
            self.b_layers = nn.ModuleList([nn.Linear(d_hid, d_hid) for _ in range(n_layers)])

        def forward(self, a, b):
            for la, lb in zip(self.a_layers, self.b_layers, strict=True):
                a, b = torch.tanh(la(a) + b), torch.sigmoid(lb(b)) * a
            return a, b.sum(dim=-1)

    torch.manual_seed(seed)
    return MultiIO()


def pipe_split_mlp(d_hid: int = 16, n_layers: int = 8, split_after: tuple[int, ...] = (3,), seed: int = 0):
    """The seed MLP with `pipe_split()` markers in `forward` after the layers named in `split_after`."""
    import torch
    from torch import nn

    class PipeSplitMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(d_hid, d_hid) for _ in range(n_layers)])

        def forward(self, x):
            from torch.distributed.pipelining import pipe_split

            for i, layer in enumerate(self.layers):
                x = torch.relu(layer(x))
                if i in split_after:
                    pipe_split()
            return x

    torch.manual_seed(seed)
    return PipeSplitMLP()


@dataclass(frozen=True)
class ModelSpec:
    """How checks use a registry model without knowing it: inputs, default split and its stage membership."""

    name: str
    builder: Callable
    # (device, batch) -> (args, kwargs); float inputs are fp32 and cast by the check when it tests another dtype
    inputs: Callable[[Any, int], tuple[tuple, dict]]
    # the default 2-stage split and the top-level prefixes each stage must hold
    split_spec: Callable[[], dict] = field(default=dict)
    stage_prefixes: tuple[tuple[str, ...], ...] = ()
    # names of parameters the model deliberately shares (the first is the canonical state_dict key)
    tied: tuple[tuple[str, ...], ...] = ()
    # forward output: a single tensor (False) or a tuple of tensors (True)
    multi_output: bool = False


def _begin(name: str):
    def spec():
        from torch.distributed.pipelining import SplitPoint

        return {name: SplitPoint.BEGINNING}

    return spec


def _randn(*shape):
    def make(device, batch):
        import torch

        g = torch.Generator().manual_seed(1)
        return (torch.randn(batch, *shape, generator=g).to(device),), {}

    return make


def _tokens(device, batch):
    import torch

    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 32, (batch, 6), generator=g).to(device),), {}


def _kwargs_inputs(device, batch):
    import torch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 16, generator=g)
    mask = (torch.rand(batch, 16, generator=g) > 0.25).float()
    bias = torch.randn(batch, 16, generator=g)
    return (x.to(device),), {"mask": mask.to(device), "bias": bias.to(device)}


def _two_inputs(device, batch):
    import torch

    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, 16, generator=g).to(device), torch.randn(batch, 16, generator=g).to(device)), {}


SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("TransformerLike", transformer_like, _randn(16), _begin("layers.4"),
                  (("layers.0.", "layers.1.", "layers.2.", "layers.3."),
                   ("layers.4.", "layers.5.", "layers.6.", "layers.7."))),
        ModelSpec("TransformerBlock", transformer_block, _randn(6, 16), _begin("layers.2"),
                  (("layers.0.", "layers.1."), ("layers.2.", "layers.3."))),
        ModelSpec("EmbeddingLM", embedding_lm, _tokens, _begin("layers.2"),
                  (("embed.", "layers.0.", "layers.1."), ("layers.2.", "layers.3.", "norm.", "lm_head.")),
                  tied=(("embed.weight", "lm_head.weight"),)),
        ModelSpec("KwargsModel", kwargs_model, _kwargs_inputs, _begin("layers.2"),
                  (("layers.0.", "layers.1."), ("layers.2.", "layers.3."))),
        ModelSpec("MultiIO", multi_io, _two_inputs, _begin("a_layers.2"),
                  (("a_layers.0.", "a_layers.1.", "b_layers.0.", "b_layers.1."),
                   ("a_layers.2.", "a_layers.3.", "b_layers.2.", "b_layers.3.")),
                  multi_output=True),
    )
}

REGISTRY: dict[str, Callable] = {
    "TransformerLike": transformer_like,
    "TransformerBlock": transformer_block,
    "EmbeddingLM": embedding_lm,
    "KwargsModel": kwargs_model,
    "MultiIO": multi_io,
    "PipeSplitMLP": pipe_split_mlp,
}

# Plain-string ids for parametrizing checks over every model with a default split (stable across builds).
SPLIT_MODELS: tuple[str, ...] = tuple(SPECS)


def build(name: str, **kwargs):
    return REGISTRY[name](**kwargs)


def spec(name: str) -> ModelSpec:
    return SPECS[name]
