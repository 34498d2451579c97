"""Split backward against the full one, outside any schedule: is I + W dearer than B in pipelining's own functions?

The step-cost traces show a zero-bubble schedule's I + W costing 1.4-2.0x the B of a non-split schedule on the same
stage (README "Step cost in the report"). This times the three functions the stages call, on one stage alone:
`stage_backward` (B), `stage_backward_input` (I) then `stage_backward_weight` (W), each after its own forward, so a
factor near 1.0 here puts the inflation in the runtime around them and a factor near the traces' in the functions.

    python benchmarks/bench_split_backward.py --device cuda --d-hid 8192 --mb-size 256 --layers 2   # the traces'
    python benchmarks/bench_split_backward.py --device cpu --d-hid 1024 --mb-size 64 --layers 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def stage(d: int, layers: int, device: str, dtype: Any) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    with torch.device(device):
        return nn.Sequential(*[m for _ in range(layers) for m in (nn.Linear(d, d), nn.GELU())]).to(dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--d-hid", type=int, default=1024)
    ap.add_argument("--mb-size", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    import torch
    from torch.distributed.pipelining._backward import stage_backward, stage_backward_input, stage_backward_weight

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = stage(args.d_hid, args.layers, args.device, dtype)
    x0 = torch.randn(args.mb_size, args.d_hid, device=args.device, dtype=dtype)
    grad = torch.ones_like(x0)
    sync = getattr(torch, torch.device(args.device).type, None)

    def now() -> float:
        if sync is not None and hasattr(sync, "synchronize"):
            sync.synchronize()
        return time.perf_counter()

    def full() -> dict[str, float]:
        x = x0.detach().requires_grad_(True)
        out = model(x)
        t0 = now()
        stage_backward((out,), (grad,), [x])
        return {"B": now() - t0}

    def split() -> dict[str, float]:
        x = x0.detach().requires_grad_(True)
        out = model(x)
        t0 = now()
        _, groups = stage_backward_input([out], [grad], [x], model.parameters())
        t1 = now()
        stage_backward_weight(model.parameters(), groups)
        return {"I": t1 - t0, "W": now() - t1}

    times: dict[str, list[float]] = {"B": [], "I": [], "W": []}
    for i in range(args.repeats + 3):  # 3 warm-ups, then full and split alternate so drift hits both alike
        for fn in (full, split):
            got = fn()
            model.zero_grad(set_to_none=True)
            if i >= 3:
                for k, v in got.items():
                    times[k].append(v)
    med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}
    print(f"device {args.device} {args.dtype}, {args.layers} x Linear({args.d_hid})+GELU, microbatch "
          f"({args.mb_size}, {args.d_hid}), median of {args.repeats}: B {med['B']:.3f} ms, I {med['I']:.3f} ms, "
          f"W {med['W']:.3f} ms, (I + W) / B = {(med['I'] + med['W']) / med['B']:.2f}")


if __name__ == "__main__":
    main()
