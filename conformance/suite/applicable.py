"""`require()`: skip the running check as not applicable unless the build has every API it names (suite process).

The versions live in `conformance.torchenv.api.SINCE`; this is only the pytest side of it, so torchenv stays free of
pytest. Check modules import it at module level: it must not import torch.
"""

from __future__ import annotations

import pytest

from conformance.torchenv import api


def require(*apis: str, version: str | None = None) -> None:
    """Skip as not applicable (`torchenv.api.missing_reason`: the API and the release it needs) for the first API the
    build lacks."""
    __tracebackhide__ = True
    for name in apis:
        reason = api.missing_reason(name, version)
        if reason is not None:
            pytest.skip(reason)
