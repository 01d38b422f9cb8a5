"""The test suite's own scheduling: ``make test`` runs pytest-xdist with ``--dist loadgroup`` so that the tests
of one ``xdist_group`` (those sharing a Verilator build folder or harness) run on one worker, one after the
other. pytest-xdist passes the group to its scheduler as a suffix of the node id; where a pytest release stops
taking that suffix, the grouping is silently lost (pyproject.toml pins pytest below such a release)."""

import pytest


@pytest.mark.xdist_group("suite-groups")
def test_a_grouped_test_reaches_the_scheduler_with_its_group(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@suite-groups"), (
        f"{request.node.nodeid}: pytest-xdist's group suffix is missing, so --dist loadgroup does not group "
        f"(pytest {pytest.__version__})")
