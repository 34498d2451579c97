"""Assertion helpers of the checks: API name first, hidden from tracebacks, say what was expected and what came."""

from __future__ import annotations

from conformance import tolerances


def assert_close(api: str, actual, expected, *, device: str, what: str = "output") -> None:
    """Compare tensors with the suite's tolerance table; the message names the API, device and dtype."""
    __tracebackhide__ = True
    import torch

    dtype = str(expected.dtype).removeprefix("torch.")
    t = tolerances.tol(device, dtype)
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{api}: {what} dtype on {device}: expected {expected.dtype}, got {actual.dtype}")
    if actual.device.type != expected.device.type:
        raise AssertionError(f"{api}: {what} on {device}: expected device {expected.device}, got {actual.device}")
    try:
        torch.testing.assert_close(actual, expected, rtol=t.rtol, atol=t.atol)
    except AssertionError as exc:
        raise AssertionError(
            f"{api}: {what} differs from the unsplit model on {device} ({dtype}, rtol={t.rtol}, atol={t.atol}): {exc}"
        ) from None


def assert_equal(api: str, actual, expected, what: str) -> None:
    __tracebackhide__ = True
    if actual != expected:
        raise AssertionError(f"{api}: {what}: expected {expected!r}, got {actual!r}")
