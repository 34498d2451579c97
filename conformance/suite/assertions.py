"""Assertion helpers of the checks: API name first, hidden from tracebacks, say what was expected and what came."""

from __future__ import annotations

from conformance.suite import tolerances


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


def where(device: str | None = None, dtype: str | None = None) -> str:
    """' on cpu (bfloat16)': the device and dtype part of a failure message."""
    text = f" on {device}" if device else ""
    return text + (f" ({str(dtype).removeprefix('torch.')})" if dtype else "")


def assert_equal(api: str, actual, expected, what: str, *, device: str | None = None, dtype=None) -> None:
    __tracebackhide__ = True
    if actual != expected:
        raise AssertionError(f"{api}: {what}{where(device, dtype)}: expected {expected!r}, got {actual!r}")


def assert_raises(api: str, exc_type, match: str, fn, *args, what: str, **kwargs):
    """Call `fn`; it must raise `exc_type` with a message matching regex `match`. Returns the exception."""
    __tracebackhide__ = True
    import re

    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        if not re.search(match, str(exc)):
            raise AssertionError(
                f"{api}: {what}: expected {exc_type.__name__} matching {match!r}, got {exc_type.__name__}: {exc}"
            ) from None
        return exc
    except Exception as exc:
        raise AssertionError(
            f"{api}: {what}: expected {exc_type.__name__} matching {match!r}, got {type(exc).__name__}: {exc}"
        ) from None
    raise AssertionError(f"{api}: {what}: expected {exc_type.__name__} matching {match!r}, got no exception")


def assert_grads_close(api: str, actual: dict, expected: dict, *, device: str, what: str = "gradient") -> None:
    """Compare gradients by parameter name: same names, none missing, each close to the reference."""
    __tracebackhide__ = True
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        raise AssertionError(f"{api}: {what} names on {device}: missing {missing}, unexpected {extra}")
    for name in sorted(expected):
        if actual[name] is None:
            raise AssertionError(f"{api}: {what} of {name!r} on {device}: expected a gradient, got None")
        assert_close(api, actual[name], expected[name], device=device, what=f"{what} of {name!r}")
