"""The split function prepare uses (make_folds): holdout-val and stratified k folds, by duplicate group."""

from __future__ import annotations

import numpy as np
import pytest

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.splits import HOLDOUT, UNASSIGNED, assign_folds, holdout_mask, make_folds, stopping_mask


def _labels(n=2000, seed=0):
    probs = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], float)
    return np.random.default_rng(seed).choice(7, size=n, p=probs / probs.sum()).astype(np.int8)


def test_holdout_is_stratified_and_sized():
    y = _labels()
    val = holdout_mask(y, 0.1, seed=1)
    assert val.sum() == 200
    share = np.bincount(y[val], minlength=7) / np.bincount(y, minlength=7)
    assert np.allclose(share, 0.1, atol=0.03)


def test_holdout_row_count():
    y = _labels(500)
    assert holdout_mask(y, 50.0, seed=0).sum() == 50


def test_folds_disjoint_covering_stratified():
    y = _labels()
    fold = make_folds(y, val_size=0.1, folds=5, seed=3)
    assert fold.dtype == np.int8
    assert set(np.unique(fold)) == {HOLDOUT, 0, 1, 2, 3, 4}  # every row has exactly one place
    train = fold >= 0
    assert train.sum() == len(y) - 200
    totals = np.bincount(y[train], minlength=7)
    for k in range(5):
        per_class = np.bincount(y[fold == k], minlength=7)
        assert np.all(np.abs(per_class - totals / 5) <= 1)  # stratified to within one row


def test_deterministic_in_seed():
    y = _labels()
    a = make_folds(y, seed=5)
    assert np.array_equal(a, make_folds(y, seed=5))
    assert not np.array_equal(a, make_folds(y, seed=6))


def test_drop_keeps_holdout_and_leaves_rows_unassigned():
    y = _labels()
    plain = make_folds(y, seed=2)
    drop = np.zeros(len(y), bool)
    drop[np.flatnonzero(plain >= 0)[:30]] = True
    dropped = make_folds(y, seed=2, drop=drop)
    assert np.array_equal(plain == HOLDOUT, dropped == HOLDOUT)
    assert (dropped == UNASSIGNED).sum() == 30


def test_groups_never_straddle_a_split_and_stay_stratified():
    y = _labels(1500, seed=4)
    groups = np.arange(len(y))
    # 200 images appear three times each (rows 3k, 3k+1, 3k+2 for k < 200), with the first copy's label.
    for k in range(200):
        groups[3 * k:3 * k + 3] = 3 * k
        y[3 * k:3 * k + 3] = y[3 * k]
    fold = make_folds(y, groups, val_size=0.1, folds=5, seed=7)
    for k in range(200):
        assert len(set(fold[3 * k:3 * k + 3].tolist())) == 1, f"image {k} is on two sides: {fold[3 * k:3 * k + 3]}"
    assert abs((fold == HOLDOUT).sum() - 150) <= 6  # about 10% of the rows
    first = np.unique(groups, return_index=True)[1]  # one row per image: stratified by image
    totals = np.bincount(y[first][fold[first] >= 0], minlength=7)
    for k in range(5):
        per_class = np.bincount(y[first][fold[first] == k], minlength=7)
        assert np.all(np.abs(per_class - totals / 5) <= 1)
    # Without the groups the same data is split by row, and copies do land on two sides.
    plain = make_folds(y, val_size=0.1, folds=5, seed=7)
    assert any(len(set(plain[3 * k:3 * k + 3].tolist())) > 1 for k in range(200))


def test_predefined_validation_takes_the_training_copies_of_its_images():
    y = _labels(300)
    mask = np.zeros(300, bool)
    mask[-40:] = True
    groups = np.arange(300)
    groups[[0, 1]] = 299  # rows 0 and 1 (Training) show the image of row 299 (PublicTest)
    fold = make_folds(y, groups, folds=3, predefined_val=mask, val_from_usage=True)
    assert np.array_equal(fold == HOLDOUT, mask | (np.arange(300) < 2))


def test_predefined_validation():
    y = _labels(300)
    mask = np.zeros(300, bool)
    mask[-40:] = True
    fold = make_folds(y, folds=3, predefined_val=mask, val_from_usage=True)
    assert np.array_equal(fold == HOLDOUT, mask)
    with pytest.raises(FerkaggleError, match="Usage"):
        make_folds(y, val_from_usage=True)


def test_tiny_class_is_a_clear_error():
    y = np.array([0] * 50 + [1] * 3 + [2] * 50, np.int8)
    with pytest.raises(FerkaggleError, match="1 disgust .*fewer training rows than --folds 5"):
        assign_folds(y, np.arange(len(y)), folds=5)
    assert set(assign_folds(y, np.arange(len(y)), folds=3)) == {0, 1, 2}


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.5])
def test_bad_val_size(bad):
    with pytest.raises(FerkaggleError, match="--val-size"):
        holdout_mask(_labels(100), bad)


def test_stopping_mask_keeps_duplicate_groups_together_and_is_stratified():
    y = np.repeat(np.arange(7), 60)
    groups = np.arange(len(y))
    groups[1::3] = groups[0::3][: len(groups[1::3])]  # every third pair shares an image
    stop = stopping_mask(y, groups, fraction=0.2, seed=1)
    for g in np.unique(groups):
        members = stop[groups == g]
        assert members.all() or not members.any(), f"group {g} is split across fit and stop"
    # 20% of the groups, per class within one group of rounding
    n_groups = len(np.unique(groups))
    assert abs(len(np.unique(groups[stop])) - round(0.2 * n_groups)) <= 1
    per_class = np.bincount(y[stop], minlength=7)
    assert per_class.min() > 0 and per_class.max() - per_class.min() <= 3
    assert np.array_equal(stop, stopping_mask(y, groups, fraction=0.2, seed=1))
    assert not np.array_equal(stop, stopping_mask(y, groups, fraction=0.2, seed=2))


def test_prepared_stopping_split_is_inside_the_training_rows(tiny_prepared):
    fit, stop = tiny_prepared.stopping_split(seed=0)
    train = set(tiny_prepared.train_idx.tolist())
    assert set(fit.tolist()) | set(stop.tolist()) == train
    assert not set(fit.tolist()) & set(stop.tolist())
    assert not set(stop.tolist()) & set(tiny_prepared.val_idx.tolist())
