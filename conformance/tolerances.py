"""Numerical tolerances per dtype and device, in one table: every comparison in the suite reads from here.

Why these numbers: fp32 uses torch.testing's defaults (the pipelined and the unsplit model run the same
kernels in the same order, so they agree to rounding); bf16/fp16 keep torch.testing's dtype defaults, widened
on accelerators where fused/reduced-precision kernels (TF32 off, but cuBLAS split-K and different
accumulation order between microbatched and full-batch GEMMs) differ by a few ulps of the low-precision type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float


# (device, dtype name) -> tolerance; "*" matches any device.
TABLE: dict[tuple[str, str], Tol] = {
    ("*", "float32"): Tol(rtol=1.3e-6, atol=1e-5),
    ("*", "bfloat16"): Tol(rtol=1.6e-2, atol=1e-5),
    ("*", "float16"): Tol(rtol=1e-3, atol=1e-5),
    # Accelerators: GEMMs over a microbatch and over the full batch may pick different kernels/accumulation
    # orders, so low precision outputs differ by one or two ulps.
    ("cuda", "float32"): Tol(rtol=1e-5, atol=1e-5),
    ("cuda", "bfloat16"): Tol(rtol=3.2e-2, atol=1e-2),
    ("cuda", "float16"): Tol(rtol=4e-3, atol=1e-3),
    ("xpu", "bfloat16"): Tol(rtol=3.2e-2, atol=1e-2),
    ("xpu", "float16"): Tol(rtol=4e-3, atol=1e-3),
    ("hpu", "bfloat16"): Tol(rtol=3.2e-2, atol=1e-2),
}


def tol(device: str, dtype: str) -> Tol:
    """Tolerance for comparing results of `dtype` (name, e.g. "bfloat16") computed on `device` type."""
    dtype = dtype.removeprefix("torch.")
    return TABLE.get((device, dtype)) or TABLE[("*", dtype)]
