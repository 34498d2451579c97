"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Test-only code (fault injection, crash switch, rank faults) lives in tests/support, never in the package: this
# process imports it from there, and so does every suite process and rank the tests start.
SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH", "")) if p)

# A copy of the Jenkins xunit plugin schema (shared/schemas/junit-10.xsd), kept in the repo so CI has it.
JUNIT_XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="session")
def junit_schema():
    """The Jenkins JUnit schema every JUnit file we write must validate against."""
    import xmlschema

    return xmlschema.XMLSchema(str(JUNIT_XSD))
