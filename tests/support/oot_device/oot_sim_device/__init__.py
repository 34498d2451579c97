"""TEST ONLY: the profile of a SIMULATED out-of-tree accelerator, registered through `conformance.devices`.

It stands in for a PrivateUse1 device (Ascend `npu` with `torch_npu` and `hccl`) so the project's tests can prove
that detection, backend, identity, metadata and unavailability all flow from an installed profile. Its tensors are
CPU tensors and its backend wraps gloo: it is labelled simulated everywhere and never claims real hardware.
Importing this module must not import torch (builds.py plans installs before torch exists).
"""

from conformance.torchenv.profiles import Profile

PROFILE = Profile(
    name="simdev",
    label="simulated accelerator (not real hardware)",
    torch_type="cpu",  # where its tensors really live
    backend="simccl",  # registered by oot_sim_device.runtime, as torch_npu registers hccl
    build_probes=("oot_sim_device.runtime.build_version()",),
    build_kind="SimDev",
    import_first=("oot_sim_device.runtime",),
    device_module="oot_sim_device.runtime.device",
    visibility_vars=("SIMDEV_DEVICES",),
    absent_reason="no simulated device visible",
    variant="cpu",  # the stock CPU wheel plus the bridge package, as torch_npu is installed
    pass_env=("SIMDEV_*",),
    rank_env={"SIMDEV_RANK_ENV": "from-profile"},
    tolerances={"float32": (2e-6, 1e-5)},
    simulated=True,
)
