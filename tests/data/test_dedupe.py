"""Duplicate groups, conflicting labels, blank images and the leak check, on hand-counted data."""

from __future__ import annotations

import numpy as np
import pytest

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.dedupe import average_hashes, copy_labels, exact_hashes, find_duplicates, leak_check
from ferkaggle.data.synthetic import make_faces
from helpers.copies import PLACED, copies_arrays, truth
from helpers.duplicates import EXPECTED, GROUPS_OF_TWO_OR_MORE, duplicate_arrays


def test_hashes_identify_equal_images():
    x, _ = make_faces(20, seed=0)
    h = exact_hashes(x)
    assert h.dtype == np.uint64 and len(np.unique(h)) == 20
    assert exact_hashes(x[[3, 3]])[0] == h[3]
    touched = x[:1].copy()
    touched[0, 20, 20] ^= 1  # one grey level in one pixel: a re-encoded copy, not the same bytes
    assert exact_hashes(touched)[0] != h[0]
    assert average_hashes(touched)[0] == average_hashes(x[:1])[0]  # a near duplicate


def test_counts_match_the_hand_count():
    x, y, x_test = duplicate_arrays()
    found = find_duplicates(x, y, x_test)
    got = {k: v for k, v in found.report.to_dict().items() if k in EXPECTED}
    assert got == EXPECTED
    assert np.flatnonzero(found.conflicting).tolist() == [2, 43]
    assert np.flatnonzero(found.blank).tolist() == [45, 46]
    # Groups: exactly the hand-placed ones, each id its first row; every other row alone.
    expected = np.arange(len(x))
    for members in GROUPS_OF_TWO_OR_MORE:
        expected[members] = members[0]
    assert found.groups.tolist() == expected.tolist()


def test_leak_check_counts_images_on_two_sides():
    x, y, x_test = duplicate_arrays()
    found = find_duplicates(x, y, x_test)
    fold = (np.arange(len(x)) % 3).astype(np.int8)  # a row-wise split
    fold[::5] = -1
    # By hand (part of each row): 0 and 40 both -1 (same side); 1, 41, 42 in 1, 2, 0; 2, 43 in
    # 2, 1; 3, 44 in 0, 2 (near only); 45, 46 in -1, 1 (near only): 2 exact images, 4 groups.
    assert leak_check(found.exact, found.groups, fold) == (2, 4)
    same_side = fold.copy()
    for members in GROUPS_OF_TWO_OR_MORE:
        same_side[members] = same_side[members[0]]
    assert leak_check(found.exact, found.groups, same_side) == (0, 0)


def test_copy_labels_match_a_brute_force_count():
    x, y, _, x_test, _, _ = copies_arrays()
    found = copy_labels(x, y, x_test)
    majority, copies = truth(x, y, x_test)
    assert found.label.tolist() == majority and found.copies.tolist() == copies
    # The fixture is what it says (no accidental copies), and the cases it places come out as placed:
    assert [c for c in copies if c] == [len(v) for v in PLACED.values()]
    assert found.label[:5].tolist() == [3, -1, 6, 1, 0]  # agree, tie, single copy, majority not first, agree
    assert np.flatnonzero(found.tied).tolist() == [1]


def test_copy_labels_without_labelled_rows_or_with_bad_labels():
    x, y, _, x_test, _, _ = copies_arrays()
    empty = copy_labels(x[:0], y[:0], x_test)
    assert empty.label.tolist() == [-1] * len(x_test) and empty.copies.tolist() == [0] * len(x_test)
    with pytest.raises(FerkaggleError, match="labels must be 0-6"):
        copy_labels(x, np.where(np.arange(len(y)) == 4, 7, y), x_test)
