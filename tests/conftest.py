"""Shared fixtures: tiny synthetic prepared data in tmp_path, and a clean working directory.

Helpers that are not fixtures live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

from helpers.fakes import make_tiny_prepared

SHARED_FER = Path(__file__).resolve().parents[1].parent / "shared" / "fer2013"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test with tmp_path as the working directory (data/, runs/, submissions/ land there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERKAGGLE_RUNS_DIR", raising=False)
    return tmp_path


@pytest.fixture
def tiny_prepared(in_tmp):
    return make_tiny_prepared(in_tmp / "data" / "prepared")


@pytest.fixture
def shared_fer() -> Path:
    if not (SHARED_FER / "train.csv.gz").is_file():
        pytest.skip("../shared/fer2013 is not present")
    return SHARED_FER


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One tiny prepared set (200 labelled faces, 40 test faces) shared by a module's training tests."""
    return make_tiny_prepared(tmp_path_factory.mktemp("data") / "prepared", n=200, n_test=40)
