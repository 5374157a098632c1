"""The run registry: statuses, lookup by id or name, what run.json records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.runs.registry import RunWriter, list_runs, load_run


def test_run_registry_statuses_and_lookup(tiny_prepared, in_tmp):
    with RunWriter("baseline", "rf pixels", {"a": 1}, tiny_prepared, seed=1) as ok:
        ok.save_metrics({"val_accuracy": 0.5})
    with pytest.raises(KeyboardInterrupt):
        with RunWriter("cnn", "simple", {}, tiny_prepared, seed=1):
            raise KeyboardInterrupt
    with pytest.raises(ValueError):
        with RunWriter("cnn", "simple", {}, tiny_prepared, seed=1) as bad:
            bad.save_probas(val=np.zeros((3, 7)))  # wrong number of rows
    everything = list_runs(include_incomplete=True)
    assert [r.status for r in everything] == ["completed", "interrupted", "failed"]
    assert [r.run_id for r in list_runs()] == [ok.run_id]
    assert ok.run_id.endswith("_rf-pixels")
    assert sorted(r.run_id for r in everything) == [r.run_id for r in everything]  # ids sort by time
    assert load_run("rf-pixels").run_id == ok.run_id
    with pytest.raises(FerkaggleError, match="matches 2 runs"):
        load_run("simple")
    info = json.loads((ok.dir / "run.json").read_text())
    assert info["data"]["split_fingerprint"] == tiny_prepared.split_fingerprint
    assert info["duration_s"] is not None and "numpy" in info["versions"]
