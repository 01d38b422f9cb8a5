"""Shared pytest fixtures: a seeded RNG whose seed is printed on failure."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator; seed from DBPIM_SEED or fresh, reported on failure.

    Re-run a failure with ``DBPIM_SEED=<seed> pytest <test id>``.
    """
    seed = int(os.environ.get("DBPIM_SEED", random.SystemRandom().randrange(2**32)))
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: DBPIM_SEED={seed}")
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for k, v in item.user_properties:
            if k == "seed":
                rep.sections.append(("random seed", f"reproduce with DBPIM_SEED={v}"))
