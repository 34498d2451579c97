"""Numerical tolerances per dtype and device, in one table: every comparison in the suite reads from here.

Why these numbers (measured on CPU with torch 2.13: the traced, split model gives bit-identical fp32, bf16 and
fp16 outputs and gradients to the unsplit model for every registry model, so the CPU rows are safety margins,
not measured gaps): fp32 uses torch.testing's defaults (the pipelined and the unsplit model run the same
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


EXACT = Tol(rtol=0.0, atol=0.0)

# (device, dtype name) -> tolerance; "*" matches any device. Per-device overrides live in the device's profile
# (`tolerances` in conformance/torchenv/profiles.py; accelerators widen bf16/fp16 because GEMMs over a microbatch
# and over the full batch may pick different kernels/accumulation orders); a row here wins over the profile.
TABLE: dict[tuple[str, str], Tol] = {
    ("*", "float32"): Tol(rtol=1.3e-6, atol=1e-5),
    ("*", "bfloat16"): Tol(rtol=1.6e-2, atol=1e-5),
    ("*", "float16"): Tol(rtol=1e-3, atol=1e-5),
    ("*", "float64"): Tol(rtol=1e-7, atol=1e-7),
}


def _profile_tol(device: str, dtype: str) -> Tol | None:
    from conformance.torchenv import profiles

    found = profiles.tolerance(device, dtype)
    return None if found is None else Tol(rtol=found[0], atol=found[1])


def tol(device: str, dtype: str) -> Tol:
    """Tolerance for comparing results of `dtype` (name, e.g. "bfloat16") computed on `device` (env device or type)."""
    dtype = dtype.removeprefix("torch.")
    found = TABLE.get((device, dtype)) or _profile_tol(device, dtype) or TABLE.get(("*", dtype))
    if found is None and dtype.startswith(("int", "uint", "bool")):
        return EXACT  # integer and boolean values (token ids, masks) must be identical
    if found is None:
        raise KeyError(f"conformance.suite.tolerances: no tolerance for {dtype} on {device}; add a row to TABLE")
    return found


# Short dtype names used in check ids -> torch dtype names.
DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

# (device, dtype name) -> why the device has no such dtype; checks of that dtype are skipped with this reason.
# Only devices that genuinely lack the dtype belong here (not slow or emulated support).
UNSUPPORTED: dict[tuple[str, str], str] = {}


def unsupported(device: str, dtype: str) -> str | None:
    """Why `device` cannot run `dtype` (a torch dtype name), or None when it can."""
    dtype = dtype.removeprefix("torch.")
    reason = UNSUPPORTED.get((device, dtype))
    if reason:
        return reason
    if device == "cuda" and dtype == "bfloat16":
        import torch

        # pre-Ampere GPUs have no bf16 arithmetic; emulated support does not count as the device's own
        if torch.version.hip is None and torch.cuda.get_device_capability() < (8, 0):
            return f"bfloat16 is not supported by {torch.cuda.get_device_name()} (needs compute capability >= 8.0)"
    return None
