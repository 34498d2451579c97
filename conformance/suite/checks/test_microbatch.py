"""Microbatch utilities: `split_args_kwargs_into_chunks`, `merge_chunks`, `TensorChunkSpec` on the env's device."""

import pytest

from conformance.suite.applicable import require
from conformance.suite.assertions import assert_close, assert_equal


def _split(*args, **kwargs):
    from torch.distributed.pipelining.microbatch import split_args_kwargs_into_chunks

    require("split_args_kwargs_into_chunks")
    return split_args_kwargs_into_chunks(*args, **kwargs)


def _merge(chunks, spec):
    from torch.distributed.pipelining.microbatch import merge_chunks

    require("merge_chunks")
    return merge_chunks(chunks, spec)


def _rand(device, *shape, dtype=None):
    import torch

    g = torch.Generator().manual_seed(sum(shape))
    t = torch.randn(*shape, generator=g)
    return t.to(device=device, dtype=dtype or t.dtype)


def _assert_same(api_name, got, want, device, what):
    """Chunking moves no data between devices or dtypes and rounds nothing: values must be identical."""
    __tracebackhide__ = True
    import torch

    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{api_name}: {what} on {device}: expected a tensor {tuple(want.shape)}, "
                             f"got {type(got).__name__}")
    assert_equal(api_name, tuple(got.shape), tuple(want.shape), f"{what} shape", device=device)
    assert_close(api_name, got, want, device=device, what=what)
    if not torch.equal(got, want):
        raise AssertionError(f"{api_name}: {what} on {device} ({want.dtype}): expected identical values, got different")


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int64"])
@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_split_merge_roundtrip(conformance, torch_device, chunks, dtype):
    """Splitting args and kwargs along dim 0 and merging the chunks gives back the inputs, dtype and device kept."""
    import torch

    dev = conformance.dev.name
    tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int64": torch.int64}[dtype]
    x = (_rand(torch_device, 8, 5) * 10).to(tdtype)
    y = (_rand(torch_device, 8, 3) * 10).to(tdtype)
    args_split, kwargs_split = _split((x,), {"y": y}, chunks)
    assert_equal("split_args_kwargs_into_chunks", (len(args_split), len(kwargs_split)), (chunks, chunks),
                 f"number of arg and kwarg chunks for {chunks} chunks", device=conformance.dev.name)
    for i, (a, k) in enumerate(zip(args_split, kwargs_split, strict=True)):
        assert_equal("split_args_kwargs_into_chunks", tuple(a[0].shape), (8 // chunks, 5), f"arg chunk {i} shape",
                     device=conformance.dev.name)
        assert_equal("split_args_kwargs_into_chunks", (a[0].dtype, a[0].device.type), (tdtype, torch_device.type),
                     f"arg chunk {i} dtype and device", device=conformance.dev.name)
        assert_equal("split_args_kwargs_into_chunks", tuple(k["y"].shape), (8 // chunks, 3), f"kwarg chunk {i} shape",
                     device=conformance.dev.name)
    _assert_same("merge_chunks", _merge([a[0] for a in args_split], None), x, dev, f"merged args ({dtype})")
    _assert_same("merge_chunks", _merge([k["y"] for k in kwargs_split], None), y, dev, f"merged kwargs ({dtype})")
    merged = _merge(list(args_split), tuple(_spec(0) for _ in range(1)))
    _assert_same("merge_chunks", merged[0], x, dev, f"merged args tuple ({dtype})")


def _spec(dim):
    from torch.distributed.pipelining.microbatch import TensorChunkSpec

    require("TensorChunkSpec")
    return TensorChunkSpec(dim)


@pytest.mark.parametrize("dim", [1, 2])
def test_chunk_spec_dim(conformance, torch_device, dim):
    """`TensorChunkSpec(dim)` splits along that dim (as `torch.tensor_split`) and merges back along it."""
    import torch

    x = _rand(torch_device, 4, 8, 8)
    args_split, _ = _split((x,), None, 4, args_chunk_spec=(_spec(dim),))
    want = torch.tensor_split(x, 4, dim)
    assert_equal("TensorChunkSpec", len(args_split), 4, f"number of chunks along dim {dim}",
                 device=conformance.dev.name)
    for i, (got, w) in enumerate(zip(args_split, want, strict=True)):
        _assert_same("TensorChunkSpec", got[0], w, conformance.dev.name, f"chunk {i} along dim {dim}")
    merged = _merge([a[0] for a in args_split], _spec(dim))
    _assert_same("merge_chunks", merged, x, conformance.dev.name, f"merge along dim {dim}")


def test_chunk_spec_from_tuple(conformance, torch_device):
    """`TensorChunkSpec.from_tuple((0, 1))` gives one spec per positional argument, honoured by the split."""
    import torch
    from torch.distributed.pipelining.microbatch import TensorChunkSpec

    require("TensorChunkSpec.from_tuple")
    spec = TensorChunkSpec.from_tuple((0, 1))
    assert_equal("TensorChunkSpec.from_tuple", [type(s).__name__ for s in spec], ["TensorChunkSpec"] * 2, "spec types",
                 device=conformance.dev.name)
    assert_equal("TensorChunkSpec.from_tuple", [s.split_dim for s in spec], [0, 1], "split dims",
                 device=conformance.dev.name)
    a, b = _rand(torch_device, 4, 6), _rand(torch_device, 3, 4)
    args_split, _ = _split((a, b), None, 2, args_chunk_spec=spec)
    for i in range(2):
        _assert_same("TensorChunkSpec.from_tuple", args_split[i][0], torch.tensor_split(a, 2, 0)[i],
                     conformance.dev.name, f"arg 0 chunk {i} (dim 0)")
        _assert_same("TensorChunkSpec.from_tuple", args_split[i][1], torch.tensor_split(b, 2, 1)[i],
                     conformance.dev.name, f"arg 1 chunk {i} (dim 1)")


def test_chunk_spec_from_dict(conformance, torch_device):
    """`TensorChunkSpec.from_dict({...})` gives one spec per keyword argument, honoured by the split."""
    import torch
    from torch.distributed.pipelining.microbatch import TensorChunkSpec

    require("TensorChunkSpec.from_dict")
    spec = TensorChunkSpec.from_dict({"ids": 0, "mask": 1})
    assert_equal("TensorChunkSpec.from_dict", {k: v.split_dim for k, v in spec.items()}, {"ids": 0, "mask": 1},
                 "split dims by name", device=conformance.dev.name)
    ids, mask = _rand(torch_device, 4, 6), _rand(torch_device, 6, 4)
    _, kwargs_split = _split((), {"ids": ids, "mask": mask}, 2, kwargs_chunk_spec=spec)
    for i in range(2):
        _assert_same("TensorChunkSpec.from_dict", kwargs_split[i]["ids"], torch.tensor_split(ids, 2, 0)[i],
                     conformance.dev.name, f"kwarg 'ids' chunk {i} (dim 0)")
        _assert_same("TensorChunkSpec.from_dict", kwargs_split[i]["mask"], torch.tensor_split(mask, 2, 1)[i],
                     conformance.dev.name, f"kwarg 'mask' chunk {i} (dim 1)")


def test_non_tensor_replicated(conformance, torch_device):
    """Non-tensor arguments (ints, floats, strings, bools) are passed unchanged to every chunk."""
    x = _rand(torch_device, 6, 2)
    marker = object()
    args_split, kwargs_split = _split((x, 3, "mode"), {"scale": 0.5, "flag": True, "obj": marker}, 3)
    assert_equal("split_args_kwargs_into_chunks", len(args_split), 3, "number of chunks", device=conformance.dev.name)
    for i, (a, k) in enumerate(zip(args_split, kwargs_split, strict=True)):
        assert_equal("split_args_kwargs_into_chunks", a[1:], (3, "mode"), f"non-tensor args of chunk {i}",
                     device=conformance.dev.name)
        assert_equal("split_args_kwargs_into_chunks", (k["scale"], k["flag"], k["obj"] is marker), (0.5, True, True),
                     f"non-tensor kwargs of chunk {i}", device=conformance.dev.name)


@pytest.mark.parametrize("rows,chunks", [(10, 4), (7, 3), (5, 2), (9, 8)], ids=str)
def test_uneven_split(conformance, torch_device, rows, chunks):
    """Rows that do not divide evenly are spread like `torch.tensor_split`: the first chunks get one more."""
    import torch

    x = _rand(torch_device, rows, 3)
    args_split, _ = _split((x,), None, chunks)
    want = torch.tensor_split(x, chunks, 0)
    assert_equal("split_args_kwargs_into_chunks", [tuple(a[0].shape) for a in args_split],
                 [tuple(w.shape) for w in want], f"chunk shapes for {rows} rows into {chunks} chunks",
                 device=conformance.dev.name)
    for i, (a, w) in enumerate(zip(args_split, want, strict=True)):
        _assert_same("split_args_kwargs_into_chunks", a[0], w, conformance.dev.name, f"chunk {i} of {rows} rows")
    _assert_same("merge_chunks", _merge([a[0] for a in args_split], None), x, conformance.dev.name,
                 f"merge of {rows} rows in {chunks} uneven chunks")


def test_kwargs_chunked(conformance, torch_device):
    """Tensor kwargs are chunked like args (dim 0 by default), including nested containers."""
    import torch

    x = _rand(torch_device, 8, 4)
    mask = _rand(torch_device, 8, 4) > 0
    pair = [_rand(torch_device, 8, 2), _rand(torch_device, 8, 1)]
    _, kwargs_split = _split((x,), {"mask": mask, "pair": pair}, 4)
    assert_equal("split_args_kwargs_into_chunks", len(kwargs_split), 4, "number of kwarg chunks",
                 device=conformance.dev.name)
    for i, k in enumerate(kwargs_split):
        _assert_same("split_args_kwargs_into_chunks", k["mask"], torch.tensor_split(mask, 4)[i],
                     conformance.dev.name, f"kwarg 'mask' chunk {i}")
        for j in range(2):
            _assert_same("split_args_kwargs_into_chunks", k["pair"][j], torch.tensor_split(pair[j], 4)[i],
                         conformance.dev.name, f"kwarg 'pair'[{j}] chunk {i}")


def test_fewer_rows_than_chunks(conformance, torch_device):
    """Fewer rows than requested chunks: the split yields one chunk per row (fewer chunks), args and kwargs alike.

    Upstream behaviour (microbatch._shard_dict_of_args: the chunk count is min(rows, chunks)); schedules then
    reject the batch because the chunk count no longer matches n_microbatches.
    """
    x = _rand(torch_device, 3, 4)
    y = _rand(torch_device, 3, 2)
    args_split, kwargs_split = _split((x,), {"y": y}, 5)
    assert_equal("split_args_kwargs_into_chunks", (len(args_split), len(kwargs_split)), (3, 3),
                 "number of arg and kwarg chunks for 3 rows into 5 chunks", device=conformance.dev.name)
    for i in range(3):
        _assert_same("split_args_kwargs_into_chunks", args_split[i][0], x[i:i + 1], conformance.dev.name,
                     f"arg chunk {i}")
        _assert_same("split_args_kwargs_into_chunks", kwargs_split[i]["y"], y[i:i + 1], conformance.dev.name,
                     f"kwarg chunk {i}")


def test_numerics_state_unchanged(conformance, torch_device):
    """`split_args_kwargs_into_chunks` and `merge_chunks` leave torch's global numerics state as they found it
    (TF32/cuDNN and deterministic flags, default dtype, autocast, grad mode)."""
    from conformance.suite import numerics_state as ns

    x, mask = _rand(torch_device, 8, 4), _rand(torch_device, 8, 4) > 0
    with ns.guarded([torch_device.type]) as state:
        args_split, _ = _split((x,), {"mask": mask, "scale": 0.5}, 4)
        state.assert_unchanged("split_args_kwargs_into_chunks", "after splitting", conformance.dev.name)
        _merge([a[0] for a in args_split], None)
        state.assert_unchanged("merge_chunks", "after merging", conformance.dev.name)
