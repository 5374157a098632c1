"""Duplicate groups, conflicting labels, blank images and the leak check of a split.

Why: FER2013 repeats images (1,222 extra exact copies among its 28,709 labelled rows), some
with conflicting labels, and holds constant (blank) images. Rows showing one image must sit on
one side of every split, or holdout, CV and out-of-fold scores reward memorising.

What:
- exact duplicates: every 48x48 uint8 image is hashed on its bytes (blake2b, 64 bits: with
  tens of thousands of images a false match is ~1e-10 likely);
- near duplicates: a 256-bit average hash (16x16 block means above the image mean): the same
  face after re-encoding, small brightness changes or a pixel or two of noise;
- groups: labelled rows with the same average hash form one duplicate group (exact copies
  always share an average hash, so every exact group is inside one near group). A group's id is
  its first row's index, so data without duplicates has groups 0..N-1 in row order. prepare
  assigns the holdout and the folds by group (splits.make_folds) and saves the ids (groups.npy);
- conflicting labels: rows of an exact-duplicate image whose copies carry more than one label;
- blank images: constant images (every pixel the same grey level);
- train ∩ test: labelled rows whose image is also a test image. They stay in training (the
  test set is never split; seeing a test face with its label is legitimate training data);
  they are only counted;
- labels of copies (`copy_labels`): for each query face (a test face, or a pseudo-holdout row in
  bench/test_copies.py), the labelled rows with the same exact hash and their majority label;
  `ferkaggle submit --copies` gives that label to test faces.

Inputs: x uint8 [N,48,48] labelled rows, y int [N], x_test uint8 [M,48,48]; for the leak check
the int fold array (-1 holdout, 0..k-1 folds).
Outputs: `Duplicates` (the JSON-able `DuplicateReport` of counts, the group ids and the
conflicting / blank row masks) and `leak_check`'s figures for the manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError


@dataclass
class DuplicateReport:
    labelled: int = 0  # labelled rows examined
    exact_extra: int = 0  # labelled rows minus distinct exact images (extra exact copies)
    exact_images_repeated: int = 0  # distinct exact images present more than once among labelled rows
    near_extra: int = 0  # labelled rows minus duplicate groups (exact + near extra copies)
    groups: int = 0  # duplicate groups among labelled rows (what the split draws)
    rows_in_groups: int = 0  # labelled rows in a group of two or more
    largest_group: int = 0  # rows in the biggest group
    conflicting_rows: int = 0  # labelled rows in an exact image whose copies disagree on the label
    conflicting_images: int = 0  # distinct exact images whose copies disagree on the label
    blank: int = 0  # constant (blank) labelled images
    blank_test: int = 0  # constant (blank) test images
    test_extra: int = 0  # test rows minus distinct exact test images
    train_in_test: int = 0  # labelled rows whose exact image is also a test image (kept in training)
    near_train_in_test: int = 0  # labelled rows whose average hash matches a test image's (includes exact)
    dropped: int = 0  # labelled rows dropped by --dedupe: conflicting-label rows and blank rows (no overlap counted twice)
    dropped_conflicting: int = 0  # of which rows of an image whose copies disagree on the label
    dropped_blank: int = 0  # of which blank rows (FER2013's blanks are also conflicting copies of one another)
    joined_holdout: int = 0  # --val-from-usage: Training rows moved to the holdout, their image being in PublicTest
    blank_in_holdout: int = 0  # blank rows left in the holdout after the split
    exact_across_splits: int = 0  # leak check: exact images in two of {holdout, fold 0..k-1} (must be 0)
    near_across_splits: int = 0  # leak check: duplicate groups in two of {holdout, fold 0..k-1} (must be 0)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Duplicates:
    report: DuplicateReport
    groups: np.ndarray  # int64 [N] duplicate group id of each labelled row (its first row's index)
    conflicting: np.ndarray  # bool [N] rows of an exact image whose copies disagree on the label
    blank: np.ndarray  # bool [N] constant images
    exact: np.ndarray  # uint64 [N] exact hash of each labelled row (for the leak check)


def exact_hashes(x: np.ndarray) -> np.ndarray:
    """uint64 [N]: a 64-bit digest of each image's bytes."""
    flat = np.ascontiguousarray(x, np.uint8).reshape(len(x), -1)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in flat)
    return np.frombuffer(digests, dtype="<u8").copy() if digests else np.zeros(0, np.uint64)


def average_hashes(x: np.ndarray, size: int = 16) -> np.ndarray:
    """uint64 [N] perceptual average hash: size x size block means above the image mean, digested.

    16x16 blocks (3x3 pixels each) rather than the classic 8x8: aligned faces of one synthetic or
    real data set share their coarse layout, and 64 bits put many different faces in one bucket.
    """
    n, h, w = x.shape
    blocks = np.asarray(x, np.float32).reshape(n, size, h // size, size, w // size).mean(axis=(2, 4)).reshape(n, -1)
    bits = np.packbits(blocks > blocks.mean(axis=1, keepdims=True), axis=1)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in bits)
    return np.frombuffer(digests, dtype="<u8").copy() if digests else np.zeros(0, np.uint64)


def first_row_ids(keys: np.ndarray) -> np.ndarray:
    """int64 [N]: for each row, the index of the first row with the same key."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


@dataclass
class CopyLabels:
    label: np.ndarray  # int64 [M] majority label of each query face's labelled copies; -1: no copy, or a tie
    copies: np.ndarray  # int64 [M] labelled rows that are exact copies of each query face (0: none)

    @property
    def tied(self) -> np.ndarray:
        """bool [M]: query faces with copies whose copies' labels tie (label -1)."""
        return (self.copies > 0) & (self.label < 0)


def copy_labels(x: np.ndarray, y: np.ndarray, x_query: np.ndarray) -> CopyLabels:
    """For each query face, its exact copies among the labelled rows (x, y) and their majority label.

    Copies are rows with the same `exact_hashes` digest. The label is -1 where a face has no copy or
    where two or more labels share the highest count (a tie decides nothing).
    """
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(x) != len(y):
        raise FerkaggleError(f"{len(x)} labelled faces but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise FerkaggleError(f"labels must be 0-{NUM_CLASSES - 1}, found {int(y.min())}..{int(y.max())}")
    m = len(x_query)
    if len(y) == 0 or m == 0:
        return CopyLabels(np.full(m, -1, np.int64), np.zeros(m, np.int64))
    keys, inverse = np.unique(exact_hashes(x), return_inverse=True)
    votes = np.zeros((len(keys), NUM_CLASSES), np.int64)
    np.add.at(votes, (inverse.reshape(-1), y), 1)
    query = exact_hashes(x_query)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = keys[at] == query
    counts = np.where(found[:, None], votes[at], 0)
    return CopyLabels(majority_labels(counts), counts.sum(axis=1))


def majority_labels(counts: np.ndarray) -> np.ndarray:
    """int64 [M]: for each row of label counts [M, classes], the label with the most votes; -1 where
    there are none or two or more labels share the highest count."""
    top = counts.max(axis=1)
    clear = (top > 0) & ((counts == top[:, None]).sum(axis=1) == 1)
    return np.where(clear, counts.argmax(axis=1), -1).astype(np.int64)


def blank_images(x: np.ndarray) -> np.ndarray:
    """bool [N]: images whose pixels all have one grey level."""
    flat = np.asarray(x).reshape(len(x), -1)
    if len(flat) == 0:
        return np.zeros(0, bool)
    return flat.min(axis=1) == flat.max(axis=1)


def _conflicting_rows(h: np.ndarray, y: np.ndarray) -> np.ndarray:
    """bool [N]: rows of a repeated image whose copies carry more than one label."""
    if len(h) == 0:
        return np.zeros(0, bool)
    _, inverse = np.unique(h, return_inverse=True)
    inverse = inverse.reshape(-1)
    y = np.asarray(y, np.int64)
    lo = np.full(inverse.max() + 1, 127, np.int64)
    hi = np.full(inverse.max() + 1, -1, np.int64)
    np.minimum.at(lo, inverse, y)
    np.maximum.at(hi, inverse, y)
    return (lo != hi)[inverse]


def _extra(keys: np.ndarray) -> int:
    return int(len(keys) - len(np.unique(keys)))


def find_duplicates(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> Duplicates:
    """Group the labelled rows by image and count what the report lists (before any split)."""
    h, h_test = exact_hashes(x), exact_hashes(x_test)
    a, a_test = average_hashes(x), average_hashes(x_test)
    groups = first_row_ids(a)
    sizes = np.bincount(groups, minlength=len(groups)) if len(groups) else np.zeros(0, np.int64)
    conflicting = _conflicting_rows(h, y)
    blank = blank_images(x)
    counts = np.unique(h, return_counts=True)[1]
    report = DuplicateReport(
        labelled=int(len(x)),
        exact_extra=_extra(h),
        exact_images_repeated=int((counts > 1).sum()),
        near_extra=_extra(groups),
        groups=int(len(np.unique(groups))),
        rows_in_groups=int((sizes[groups] > 1).sum()) if len(groups) else 0,
        largest_group=int(sizes.max()) if len(sizes) else 0,
        conflicting_rows=int(conflicting.sum()),
        conflicting_images=int(len(np.unique(h[conflicting]))),
        blank=int(blank.sum()),
        blank_test=int(blank_images(x_test).sum()),
        test_extra=_extra(h_test),
        train_in_test=int(np.isin(h, h_test).sum()),
        near_train_in_test=int(np.isin(a, a_test).sum()),
    )
    return Duplicates(report, groups, conflicting, blank, h)


def parts_sharing(keys: np.ndarray, fold: np.ndarray) -> int:
    """How many distinct keys (images, groups) have rows in two or more split parts.

    The parts are the holdout (fold -1) and each CV fold; rows with another fold value are ignored.
    """
    keys, fold = np.asarray(keys), np.asarray(fold)
    placed = fold >= -1
    pairs = np.unique(np.stack([np.unique(keys[placed], return_inverse=True)[1].reshape(-1),
                                fold[placed].astype(np.int64)]), axis=1) if placed.any() else np.zeros((2, 0))
    if pairs.shape[1] == 0:
        return 0
    per_key = np.bincount(pairs[0].astype(np.int64))
    return int((per_key > 1).sum())


def leak_check(exact: np.ndarray, groups: np.ndarray, fold: np.ndarray) -> tuple[int, int]:
    """(exact images, duplicate groups) found in two of {holdout, fold 0..k-1}: both 0 after prepare."""
    return parts_sharing(exact, fold), parts_sharing(groups, fold)
