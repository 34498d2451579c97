"""Shared fixtures of the project's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# A copy of the Jenkins xunit plugin schema (shared/schemas/junit-10.xsd), kept in the repo so CI has it.
JUNIT_XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="session")
def junit_schema():
    """The Jenkins JUnit schema every JUnit file we write must validate against."""
    import xmlschema

    return xmlschema.XMLSchema(str(JUNIT_XSD))
