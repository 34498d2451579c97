"""TEST ONLY: the simulated device's registration module (the profile's `import_first`), imported with torch.

SIMDEV_BUILD=1 makes this "build" carry the simulated device; SIMDEV_DEVICES=N makes N simulated devices visible.
The collective backend `simccl` is gloo under another name, registered as an out-of-tree backend is.
"""

from __future__ import annotations

import os

import torch.distributed as dist

BACKEND = "simccl"


def build_version() -> str:
    """The bridge's version when this build counts as a simulated-device build, else ""."""
    return "0.1.0+simulated" if os.environ.get("SIMDEV_BUILD") == "1" else ""


class _Device:
    """What a PrivateUse1 device module offers the conformance probe: count, availability, names."""

    @staticmethod
    def device_count() -> int:
        return int(os.environ.get("SIMDEV_DEVICES", "0") or 0)

    def is_available(self) -> bool:
        return self.device_count() > 0

    @staticmethod
    def get_device_name(index: int) -> str:
        return f"simulated device {index} (not real hardware)"


device = _Device()


def _create(store, rank, size, timeout):
    # Ranks prove they imported this module (the profile's import_first) and got the profile's rank variables.
    if os.environ.get("SIMDEV_RANK_ENV") != "from-profile":
        raise RuntimeError("simccl: SIMDEV_RANK_ENV not set: the rank did not get its profile's rank_env")
    return dist.ProcessGroupGloo(store, rank, size, timeout)


if not hasattr(dist.Backend, BACKEND.upper()):
    dist.Backend.register_backend(BACKEND, _create, devices=["cpu"])
