"""Fixtures of the search tests."""

import pytest

from helpers.fakes import make_tiny_prepared


@pytest.fixture(scope="module")
def small_prepared(tmp_path_factory):
    """Fewer faces than the shared `prepared` fixture: the search trains many trials on it."""
    return make_tiny_prepared(tmp_path_factory.mktemp("data") / "prepared", n=120, n_test=20)
