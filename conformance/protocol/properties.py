"""Suite-level JUnit properties: the key of each, and the typed build record the suite writes and the report reads.

The suite writes them once per run (`<testsuite><properties>`, the Jenkins schema forbids per-testcase ones); the
supervisor adds `run_status` when it rebuilds a dead run's report; the report parses them once into a `BuildRecord`
per env column and renders its fields. Step costs and traces (`stepcost:<check>`, `trace:<check>`) are properties
too, with their own payloads (`conformance.protocol.stepcost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from conformance.protocol import stepcost

ENV = "env"  # the report column
DEVICE = "device"  # the profile name (cpu, cuda, ...)
DEVICE_AVAILABLE = "device_available"
DEVICE_REASON = "device_reason"  # why the device is not available
DEVICE_COUNT = "device_count"
DEVICE_NAMES = "device_names"  # comma-separated
TORCH_VERSION = "torch_version"
TORCH_VARIANT = "torch_variant"
TORCH_SOURCE = "torch_source"  # pinned or host
TORCH_PINNED = "torch_pinned"
RUNTIME = "runtime"
RUNTIME_VERSION = "runtime_version"
DRIVER_VERSION = "driver_version"
BACKEND = "backend"
DEVICE_SIMULATED = "device_simulated"
PYTHON_VERSION = "python_version"
HOSTNAME = "hostname"
START_TIME = "start_time"
CONFORMANCE_VERSION = "conformance_version"
PLATFORM = "platform"
TF32 = "tf32"  # numerics pinned in every computing process (conformance.torchenv.device.pin_numerics)
FLOAT32_MATMUL_PRECISION = "float32_matmul_precision"
RUN_STATUS = "run_status"  # why the run stopped early; only in a report rebuilt from the journal
INCOMPLETE = "conformance_incomplete"  # merged.xml only: why an env's results are partial (the report writes it)

_TRUE_TEXT = ("true", "1", "yes")  # how a boolean property reads as true (older writers too)
_FALSE_TEXT = ("false", "0", "no")

# Written only when set (the numerics pins need torch; run_status exists only for a dead run).
_OPTIONAL = frozenset({TF32, FLOAT32_MATMUL_PRECISION, RUN_STATUS})


def _bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class BuildRecord:
    """What was tested, where, with what: one env's suite-level properties, typed.

    Field names are the property keys; `extra` keeps properties this version does not know (plain ones only:
    step costs and traces are read by `conformance.protocol.stepcost`).
    """

    env: str = ""
    device: str = ""
    device_available: bool = True  # an absent key reads as available: only an explicit "false" marks absence
    device_reason: str = ""
    device_count: int = 0
    device_names: str = ""
    torch_version: str = ""
    torch_variant: str = ""
    torch_source: str = ""
    torch_pinned: str = ""
    runtime: str = ""
    runtime_version: str = ""
    driver_version: str = ""
    backend: str = ""
    device_simulated: bool = False
    python_version: str = ""
    hostname: str = ""
    start_time: str = ""
    conformance_version: str = ""
    platform: str = ""
    tf32: str = ""
    float32_matmul_precision: str = ""
    run_status: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def to_properties(self) -> dict[str, str]:
        """The properties in the order the suite writes them (optional ones only when set), then `extra`."""
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and not value:
                continue
            out[f.name] = _bool(value) if isinstance(value, bool) else str(value)
        return {**out, **self.extra}

    def updated(self, props: Mapping[str, str]) -> BuildRecord:
        """This record with `props` (properties by key, as text) written over it."""
        return BuildRecord.from_properties({**self.to_properties(), **props})

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> BuildRecord:
        """The record of an env's properties; missing keys take their defaults, never an error."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, object] = {k: str(v) for k, v in props.items() if k in known}
        kwargs[DEVICE_AVAILABLE] = str(props.get(DEVICE_AVAILABLE, "")).strip().lower() not in _FALSE_TEXT
        kwargs[DEVICE_SIMULATED] = str(props.get(DEVICE_SIMULATED, "")).strip().lower() in _TRUE_TEXT
        try:
            kwargs[DEVICE_COUNT] = int(str(props.get(DEVICE_COUNT, "0")).strip() or 0)
        except ValueError:
            kwargs[DEVICE_COUNT] = 0
        extra = {k: str(v) for k, v in props.items() if k not in known and not k.startswith(stepcost.PREFIXES)}
        return cls(**kwargs, extra=extra)  # type: ignore[arg-type]


KEYS: tuple[str, ...] = tuple(f.name for f in fields(BuildRecord) if f.name != "extra")
