"""Signal names for messages about dead processes (stdlib only; shared by the supervisor and the rank pool)."""

from __future__ import annotations

import signal


def signal_name(num: int) -> str:
    """`SIGSEGV` for 11; `signal 99` for a number the platform does not name."""
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
