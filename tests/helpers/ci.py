"""Whether the tests run under CI (CI=true, as .ci/run is run): there a test whose service or package
is missing fails instead of skipping, since CI installs and starts everything the tests need."""

from __future__ import annotations

import os


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
