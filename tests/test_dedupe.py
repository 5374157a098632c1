"""Exact and near duplicate detection across train / val / test."""

from __future__ import annotations

import numpy as np

from ferkaggle.data.dedupe import average_hashes, exact_hashes, find_duplicates
from ferkaggle.data.synthetic import make_faces


def test_hashes_identify_equal_images():
    x, _ = make_faces(20, seed=0)
    h = exact_hashes(x)
    assert h.dtype == np.uint64 and len(np.unique(h)) == 20
    assert exact_hashes(x[[3, 3]])[0] == h[3]
    touched = x[:1].copy()
    touched[0, 20, 20] ^= 1  # one grey level in one pixel: a re-encoded copy, not the same bytes
    assert exact_hashes(touched)[0] != h[0]
    assert average_hashes(touched)[0] == average_hashes(x[:1])[0]  # a near duplicate


def test_find_duplicates_counts_and_leak_mask():
    x, y = make_faces(60, seed=1)
    x_test, _ = make_faces(10, seed=2)
    x = x.copy()
    val = np.zeros(60, bool)
    val[50:] = True
    x[0] = x[1]          # a copy within train (same label or not)
    y = y.copy()
    y[0] = (y[1] + 1) % 7  # ... with conflicting labels
    x[2] = x[55]         # train row leaking into val
    x[3] = x_test[4]     # train row leaking into test
    x[56] = x_test[5]    # val row also in test
    report, leaking = find_duplicates(x, y, val, x_test)
    assert report.train_within == 1
    assert report.train_within_conflicting == 2
    assert report.train_in_val == 1 and report.train_in_test == 1 and report.val_in_test == 1
    assert report.near_train_in_val >= 1 and report.near_train_in_test >= 1
    assert np.flatnonzero(leaking).tolist() == [2, 3]
    assert report.to_dict()["dropped"] == 0
