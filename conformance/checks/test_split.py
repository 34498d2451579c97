"""Tracing and splitting: `pipeline`, `Pipe`, `SplitPoint`, `pipe_split` on the env's device."""

from conformance import models
from conformance.assertions import assert_close, assert_equal


def test_seed_split_begin_2stages(conformance, torch_device):
    """The seed scenario: 8-layer MLP, {"layers.4": BEGINNING} gives 2 stages that together are the model."""
    import torch
    from torch.distributed.pipelining import SplitPoint, pipeline

    model = models.transformer_like(d_hid=16).to(torch_device)
    x = torch.randn(4, 16, device=torch_device)
    expected = model(x)
    pipe = pipeline(model, mb_args=(x,), split_spec={"layers.4": SplitPoint.BEGINNING})
    assert_equal("pipeline", pipe.num_stages, 2, "num_stages for {'layers.4': SplitPoint.BEGINNING}")
    stage_keys = [set(pipe.get_stage_module(i).state_dict()) for i in range(pipe.num_stages)]
    assert_equal("Pipe.get_stage_module", stage_keys[0] & stage_keys[1], set(), "parameters in both stages")
    assert_equal("Pipe.get_stage_module", stage_keys[0] | stage_keys[1], set(model.state_dict()), "union of stage parameters")
    assert_equal("pipeline", sorted({k.split(".")[1] for k in stage_keys[0]}), ["0", "1", "2", "3"], "layers in stage 0")
    out = pipe(x)[0]
    assert_close("Pipe.forward", out, expected, device=conformance.dev.name)
