"""Torch's global numerics state: taken before pipelining runs and compared after, so a build cannot change it.

A pipelining build that turns TF32 on, changes the default dtype, leaves autocast or deterministic mode behind
or switches grad mode changes every later computation of the user's program, and changes numerics by less than
a tolerance can see. The checks snapshot this state, run a pipelining operation and require the same state
after it (and, where the user's module runs, inside it). Read in the suite process and in every rank.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Flags read as attributes of torch.backends (legacy TF32 flags, the fp32_precision API of torch >= 2.9, cuDNN and
# oneDNN switches). Missing ones (older builds) are left out of the snapshot, so ids and checks stay the same.
_BACKEND_FLAGS = (
    "cuda.matmul.allow_tf32",
    "cuda.matmul.allow_fp16_reduced_precision_reduction",
    "cuda.matmul.allow_bf16_reduced_precision_reduction",
    "cuda.matmul.allow_fp16_accumulation",
    "cudnn.allow_tf32",
    "cudnn.benchmark",
    "cudnn.deterministic",
    "cudnn.enabled",
    "mkldnn.enabled",
    "mkldnn.deterministic",
    "fp32_precision",
    "cuda.matmul.fp32_precision",
    "cudnn.fp32_precision",
    "cudnn.conv.fp32_precision",
    "cudnn.rnn.fp32_precision",
    "mkldnn.fp32_precision",
    "mkldnn.matmul.fp32_precision",
    "mkldnn.conv.fp32_precision",
    "mkldnn.rnn.fp32_precision",
)

# Device types whose autocast state is recorded besides the suite's own device.
AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "hpu", "mps")

GRAD_MODE = "torch.is_grad_enabled()"

_MISSING = object()


def _read(read: Callable[[], Any]) -> Any:
    # Reading a legacy TF32 flag after the new API set it raises: that is a state too, and a changed one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read()
        except (AttributeError, TypeError):
            return _MISSING
        except RuntimeError as exc:
            return f"<unreadable: {str(exc).strip().splitlines()[0][:120]}>"


def _attr(root: Any, path: str) -> Callable[[], Any]:
    def read() -> Any:
        obj = root
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    return read


def _call(root: Any, name: str, *args: str) -> Callable[[], Any]:
    # Looked up when read, so a function an older build lacks is simply absent from the snapshot.
    return lambda: getattr(root, name)(*args)


def _readers(device_types: Iterable[str]) -> dict[str, Callable[[], Any]]:
    import torch

    readers = {f"torch.backends.{p}": _attr(torch.backends, p) for p in _BACKEND_FLAGS}
    for fn in ("get_float32_matmul_precision", "are_deterministic_algorithms_enabled",
               "is_deterministic_algorithms_warn_only_enabled", "get_default_dtype", "get_default_device",
               "is_grad_enabled", "is_inference_mode_enabled", "is_anomaly_enabled", "is_autocast_cache_enabled"):
        readers[f"torch.{fn}()"] = _call(torch, fn)
    for dev in dict.fromkeys([*AUTOCAST_DEVICES, *device_types]):
        for fn in ("is_autocast_enabled", "get_autocast_dtype"):
            readers[f"torch.{fn}({dev!r})"] = _call(torch, fn, dev)
    return readers


def snapshot(device_types: Iterable[str] = ()) -> dict[str, str]:
    """Every global numerics setting this build has, by the expression that reads it, as text."""
    state = {}
    for name, read in _readers(device_types).items():
        value = _read(read)
        if value is not _MISSING:
            state[name] = str(value)
    return state


def compare(before: dict[str, str], after: dict[str, str], ignore: Iterable[str] = ()) -> list[str]:
    """What changed, one `name: before -> after` line per setting (empty when nothing did)."""
    skip = set(ignore)
    names = [n for n in dict.fromkeys([*before, *after]) if n not in skip]
    return [f"{n}: {before.get(n, '(absent)')} -> {after.get(n, '(absent)')}"
            for n in names if before.get(n) != after.get(n)]


def assert_unchanged(api_name: str, before: dict[str, str], after: dict[str, str], where: str,
                     device: str = "", ignore: Iterable[str] = ()) -> None:
    """Fail naming the API and every global setting it changed."""
    __tracebackhide__ = True
    changed = compare(before, after, ignore)
    if changed:
        on = f" on {device}" if device else ""
        raise AssertionError(f"{api_name}: changed torch's global numerics state {where}{on}: " + "; ".join(changed))


@dataclass
class Guard:
    """The state a guarded block started from, and the device types it reads."""

    devices: list[str]
    before: dict[str, str]

    def now(self) -> dict[str, str]:
        return snapshot(self.devices)

    def assert_unchanged(self, api_name: str, where: str, device: str = "", after: dict[str, str] | None = None,
                         ignore: Iterable[str] = ()) -> None:
        """Fail unless `after` (default: the state now) is the state the block started from."""
        __tracebackhide__ = True
        assert_unchanged(api_name, self.before, self.now() if after is None else after, where, device, ignore)


@contextmanager
def guarded(device_types: Iterable[str]) -> Iterator[Guard]:
    """Run a block from the suite's pinned state (whatever an earlier check left behind) and, if the block changed
    the state, restore it after: what one check found must not spill into the next one (here or on a rank)."""
    restore_defaults()
    guard = Guard(list(device_types), {})
    guard.before = guard.now()
    try:
        yield guard
    finally:
        if compare(guard.before, guard.now()):
            restore_defaults()


def restore_defaults() -> None:
    """The state the suite runs every check in: TF32 off (`pin_numerics`), fp32 default dtype, grad mode on,
    no deterministic-only mode, no autocast. Used after a check found a change, so it does not spill over."""
    import torch

    from conformance.torchenv.device import pin_numerics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision"):
            owner_path, _, name = path.rpartition(".")
            try:
                owner = _attr(torch.backends, owner_path)() if owner_path else torch.backends
                if hasattr(owner, name):  # a build without the fp32_precision API must not gain the attribute
                    setattr(owner, name, "none")
            except (AttributeError, RuntimeError, TypeError, ValueError):
                pass
        pin_numerics()
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False
    for dev in AUTOCAST_DEVICES:
        try:
            torch.set_autocast_enabled(dev, False)
        except (RuntimeError, TypeError):
            pass  # a device type this build does not know
