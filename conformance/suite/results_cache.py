"""Rank-task results shared by the checks of one pytest session: one run serves every check id that reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class Cache:
    """Task results by key, outcome exceptions included (a failed or skipped run fails or skips each reader)."""

    def __init__(self) -> None:
        self.results: dict[tuple, Any] = {}

    def get(self, key: tuple, run: Callable[[], list[dict]]) -> list[dict]:
        __tracebackhide__ = True
        if key not in self.results:
            try:
                self.results[key] = run()
            except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
                self.results[key] = exc
        got = self.results[key]
        if isinstance(got, BaseException):
            raise got
        return got
