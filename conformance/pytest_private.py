"""The one adapter for pytest internals that have no public equivalent (pinned: pytest >= 8, < 10).

- Suite-level JUnit properties outside a test: `record_testsuite_property` is a fixture and only runs when a
  check runs, but an env whose every check is skipped must still record its build and device.
- The JUnit (classname, name) of a node id, so a journal rebuilt after a crash names checks as pytest would.
"""

from __future__ import annotations

import pytest
from _pytest import junitxml


def add_suite_property(config: pytest.Config, name: str, value: str) -> bool:
    """Add a `<property>` to the JUnit `<testsuite>`; False when no JUnit file is being written."""
    xml = config.stash.get(junitxml.xml_key, None)
    if xml is None:
        return False
    xml.add_global_property(name, value)
    return True


def junit_names(nodeid: str) -> tuple[str, str]:
    """(classname, name) exactly as pytest's junitxml writes them for `nodeid`."""
    names = junitxml.mangle_test_address(nodeid)
    return ".".join(names[:-1]), names[-1]
