"""The prepare stage: splits, manifest, cache reuse, --dedupe, failures leave nothing behind."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.prepare import PrepareOptions, prepare
from ferkaggle.data.prepared import load_prepared
from ferkaggle.data.splits import HOLDOUT
from ferkaggle.data.synthetic import write_demo_competition
from helpers.duplicates import (
    EXPECTED,
    GROUPS_OF_TWO_OR_MORE,
    duplicate_arrays,
    parts_of_each_image,
    write_duplicate_competition,
)


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


def test_duplicate_counts_groups_and_no_image_across_splits(tmp_path):
    folder = write_duplicate_competition(tmp_path / "comp")
    prepared, report = prepare(folder, options=PrepareOptions(folds=2, val_size=0.2, seed=3), out=tmp_path / "p")
    d = report.duplicates
    assert {k: d[k] for k in EXPECTED} == EXPECTED
    assert d["dropped"] == 0 and len(prepared.x) == 47
    # The property, checked plainly on the written arrays: no image in two of {holdout, fold 0, fold 1}.
    crossing = [parts for parts in parts_of_each_image(prepared.x, prepared.fold).values() if len(parts) > 1]
    assert crossing == []
    assert d["exact_across_splits"] == 0 and d["near_across_splits"] == 0
    m = json.loads((report.path / "manifest.json").read_text())
    assert m["duplicates"]["exact_across_splits"] == 0 and m["duplicates"]["train_in_test"] == 1
    # groups.npy holds the hand-placed groups, and the near copy (44) sits with its original (3).
    groups = np.load(report.path / "groups.npy")
    for members in GROUPS_OF_TWO_OR_MORE:
        assert len(set(groups[members].tolist())) == 1 and len(set(prepared.fold[members].tolist())) == 1
    assert len(np.unique(groups)) == EXPECTED["groups"] and np.array_equal(prepared.groups, groups)


def test_dedupe_drops_conflicting_and_blank_rows_and_keeps_train_test_matches(tmp_path):
    folder = write_duplicate_competition(tmp_path / "comp")
    out = tmp_path / "prepared"
    plain, _ = prepare(folder, options=PrepareOptions(folds=2, val_size=0.2), out=out)
    deduped, report = prepare(folder, options=PrepareOptions(folds=2, val_size=0.2, dedupe=True), out=out)
    assert report.duplicates["dropped_conflicting"] == 2 and report.duplicates["dropped_blank"] == 2
    assert report.duplicates["dropped"] == 4
    m = json.loads((report.path / "manifest.json").read_text())
    assert m["dropped_source_rows"] == [2, 43, 45, 46]
    x, _, x_test = duplicate_arrays()
    kept = np.setdiff1d(np.arange(47), [2, 43, 45, 46])
    np.testing.assert_array_equal(deduped.x, x[kept])
    assert any(np.array_equal(face, x_test[0]) for face in deduped.x)  # the train ∩ test row stays
    # The holdout is drawn before dropping: the kept rows are held out exactly as without --dedupe.
    np.testing.assert_array_equal(deduped.fold == HOLDOUT, plain.fold[kept] == HOLDOUT)


def test_image_folder_test_ids_come_from_file_names(tmp_path):
    from PIL import Image

    x, y, x_test = duplicate_arrays()
    root = tmp_path / "imgs"
    for i, (face, label) in enumerate(zip(x[:40], y[:40])):
        (root / "train" / EMOTIONS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(root / "train" / EMOTIONS[label] / f"{i}.png")
    (root / "test").mkdir()
    names = ["17", "250", "3", "40", "9"]  # sorted as paths: 17, 250, 3, 40, 9
    for name, face in zip(names, x_test):
        Image.fromarray(face).save(root / "test" / f"{name}.png")
    prepared, report = prepare(root, options=PrepareOptions(folds=2, val_size=0.2), out=tmp_path / "p")
    assert prepared.test_ids.tolist() == [17, 250, 3, 40, 9]
    np.testing.assert_array_equal(prepared.x_test, x_test[:5])
    # A name that is no number: ids are the sorted positions, and the manifest lists each file's id.
    Image.fromarray(x_test[5]).save(root / "test" / "extra.png")
    prepared, report = prepare(root, options=PrepareOptions(folds=2, val_size=0.2), out=tmp_path / "p")
    assert prepared.test_ids.tolist() == [0, 1, 2, 3, 4, 5]
    listed = json.loads((report.path / "manifest.json").read_text())["test_ids"]["files"]
    assert [(e["id"], e["file"].rsplit("/", 1)[-1]) for e in listed] == [
        (0, "17.png"), (1, "250.png"), (2, "3.png"), (3, "40.png"), (4, "9.png"), (5, "extra.png")]
    # An unreadable test image stops prepare even with --on-bad-row skip, naming the file.
    (root / "test" / "41.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(FerkaggleError, match=r"41\.png: unreadable image.*never skipped"):
        prepare(root, options=PrepareOptions(folds=2, val_size=0.2, on_bad_row="skip"), out=tmp_path / "q")
    assert not (tmp_path / "q").exists()


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
    # No image on two sides of the split; the counts pin what prepare measured on FER2013 (README).
    assert [p for p in parts_of_each_image(prepared.x, prepared.fold).values() if len(p) > 1] == []
    assert report.duplicates["exact_extra"] == 1222 and report.duplicates["conflicting_rows"] == 100
    started = time.perf_counter()
    _, again = prepare(train=shared_fer / "train.csv.gz", test=shared_fer / "test.csv.gz", out=out)
    assert again.cached and time.perf_counter() - started < 1.0
