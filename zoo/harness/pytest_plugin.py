"""A pytest plugin (entry point ``pytest11``) that gives plugin authors the ``zoo_check`` fixture.

    def test_conforms(zoo_check):
        zoo_check("espcn")            # names or globs; fails with the table of checks

Importing this module costs nothing: zoo and torch load when the fixture is first used.
"""

import pytest

# Function-level imports: pytest loads this plugin in every session; the checks (torch) load only when used.


@pytest.fixture
def zoo_check():
    """``zoo_check(*names_or_globs, registry=None, device="cpu", checks=...)``: run zoo's conformance checks
    on the matching models and fail the test, with the table, if any check fails."""
    from zoo.harness.conformance import assert_conforms

    def run(*patterns, **kwargs):
        __tracebackhide__ = True
        try:
            assert_conforms(*patterns, **kwargs)
        except AssertionError as exc:
            pytest.fail(str(exc), pytrace=False)

    return run
