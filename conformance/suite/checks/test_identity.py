"""Build identity: the torch under test is the build the env claims, so no column is mislabeled."""

import pytest

from conformance.protocol import outcomes


@pytest.mark.identity
def test_build_identity(conformance):
    ident = conformance.ident
    if ident.outcome == "fail":
        pytest.fail(ident.message, pytrace=False)
    if ident.outcome == "unavailable":
        if conformance.strict:
            pytest.fail(f"device required (strict mode): {ident.message}", pytrace=False)
        pytest.skip(outcomes.unavailable(ident.message))
