"""The prepare stage: splits, manifest, cache reuse, --dedupe, failures leave nothing behind."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from ferkaggle.data.prepare import PrepareOptions, prepare
from ferkaggle.data.prepared import HOLDOUT, load_prepared
from ferkaggle.data.synthetic import write_demo_competition
from ferkaggle.errors import FerkaggleError


@pytest.fixture
def competition(tmp_path):
    folder = tmp_path / "comp"
    write_demo_competition(folder, n_train=400, n_test=80, seed=0)
    return folder


def test_prepare_writes_a_complete_set(competition, tmp_path):
    out = tmp_path / "prepared"
    prepared, report = prepare(competition, options=PrepareOptions(folds=3, seed=1), out=out)
    assert not report.cached and report.path == out / report.key
    assert (out / "LATEST").read_text().strip() == report.key
    assert len(prepared.x) == 400 and len(prepared.x_test) == 80
    assert prepared.y_test is not None and prepared.test_ids.tolist() == list(range(1, 81))
    assert (prepared.fold == HOLDOUT).sum() == 40 and set(np.unique(prepared.train_folds)) == {0, 1, 2}
    m = json.loads((report.path / "manifest.json").read_text())
    assert {s["path"].rsplit("/", 1)[-1] for s in m["sources"]} == {"train.csv", "test.csv", "test_labels.csv"}
    assert all(len(s["sha256"]) == 64 for s in m["sources"])
    assert sum(m["class_counts"]["train"]) == 360 and sum(m["class_counts"]["val"]) == 40
    assert sum(m["class_counts"]["test"]) == 80
    assert m["options"]["folds"] == 3 and m["seed"] == 1
    assert m["skipped"]["count"] == 0 and "duplicates" in m
    assert load_prepared(root=out).key == report.key


def test_second_prepare_reuses_the_cache(competition, tmp_path):
    out = tmp_path / "prepared"
    opts = PrepareOptions(folds=3)  # the tiny demo has only a handful of disgust rows
    first, _ = prepare(competition, options=opts, out=out)
    started = time.perf_counter()
    again, report = prepare(competition, options=opts, out=out)
    assert report.cached and again.path == first.path
    assert time.perf_counter() - started < 0.5
    assert np.array_equal(again.fold, first.fold)
    # Another option gives another folder; --force rebuilds the same one.
    other, report = prepare(competition, options=replace(opts, seed=7), out=out)
    assert not report.cached and other.path != first.path
    assert (out / "LATEST").read_text().strip() == other.key
    _, report = prepare(competition, options=opts, out=out, force=True)
    assert not report.cached and report.path == first.path
    # Changed inputs are noticed even with the same options.
    write_demo_competition(competition, n_train=400, n_test=80, seed=1, overwrite=True)
    _, report = prepare(competition, options=opts, out=out)
    assert not report.cached and report.path != first.path


def test_dedupe_drops_leaking_training_rows(tmp_path):
    folder = tmp_path / "comp"
    write_demo_competition(folder, n_train=300, n_test=50, seed=2)
    lines = (folder / "train.csv").read_text().splitlines()
    test_pixels = (folder / "test.csv").read_text().splitlines()[1].split(",")[1]
    # Rows 1..5 become copies of one test image: a leak prepare must see.
    for i in range(1, 6):
        lines[i] = lines[i].split(",")[0] + "," + test_pixels
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared"
    plain, report = prepare(folder, options=PrepareOptions(folds=3), out=out)
    assert report.duplicates["train_within"] >= 4
    leaks = report.duplicates["train_in_test"]
    assert leaks >= 4 and report.duplicates["dropped"] == 0
    deduped, report = prepare(folder, options=PrepareOptions(folds=3, dedupe=True), out=out)
    assert report.duplicates["dropped"] == leaks
    assert len(deduped.x) == len(plain.x) - leaks
    # The holdout is chosen before dropping: the same images are held out either way.
    assert np.array_equal(plain.x_val, deduped.x_val) or leaks > 0 and len(deduped.x_val) <= len(plain.x_val)


def test_bad_input_leaves_no_output(tmp_path):
    folder = tmp_path / "comp"
    write_demo_competition(folder, n_train=60, n_test=10, seed=0)
    with open(folder / "train.csv", "a") as f:
        f.write("9,1 2 3\n")
    out = tmp_path / "prepared"
    with pytest.raises(FerkaggleError, match="train.csv"):
        prepare(folder, out=out)
    assert not out.exists()


def test_val_from_usage_needs_a_usage_column(competition, tmp_path):
    with pytest.raises(FerkaggleError, match="Usage"):
        prepare(competition, options=PrepareOptions(val_from_usage=True), out=tmp_path / "p")
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_real_fer2013(shared_fer, tmp_path):
    out = tmp_path / "prepared"
    prepared, report = prepare(train=shared_fer / "train.csv.gz", test=shared_fer / "test.csv.gz", out=out)
    counts = np.asarray(report.class_counts["train"]) + np.asarray(report.class_counts["val"])
    assert counts.tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert len(prepared.x_test) == 7178 and prepared.y_test is None
    started = time.perf_counter()
    _, again = prepare(train=shared_fer / "train.csv.gz", test=shared_fer / "test.csv.gz", out=out)
    assert again.cached and time.perf_counter() - started < 1.0
