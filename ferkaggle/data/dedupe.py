"""Exact and near-duplicate faces within the training rows and across train / holdout-val / test.

Why: FER2013 holds repeated images. A training row whose face is also in the holdout-val or
test set inflates validation scores (the model has seen the answer), so prepare reports these
leaks and, with --dedupe, drops such training rows.

What: every 48x48 uint8 image is hashed on its bytes (blake2b, 64 bits: with tens of thousands
of images a false match is ~1e-10 likely) for exact duplicates, and on a 256-bit average hash
(16x16 block means above the image mean) for near duplicates: the same face after re-encoding,
small brightness changes or a pixel or two of noise. The near count is reported only.

Inputs: x uint8 [N,48,48] labelled rows, y int [N], val bool [N] (holdout rows), x_test.
Outputs: a DuplicateReport (counts, JSON-able) and a bool [N] mask of training rows whose exact
image appears in val or test (the rows --dedupe drops).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class DuplicateReport:
    train_within: int = 0  # extra copies among training rows (rows minus distinct images)
    train_within_conflicting: int = 0  # training rows in a repeated image whose copies disagree on the label
    val_within: int = 0  # extra copies among holdout-val rows
    test_within: int = 0  # extra copies among test rows
    train_in_val: int = 0  # training rows whose image is also a holdout-val row (leak)
    train_in_test: int = 0  # training rows whose image is also a test row
    val_in_test: int = 0  # holdout-val rows whose image is also a test row
    near_train_in_val: int = 0  # training rows with the same average hash as a val row (includes exact)
    near_train_in_test: int = 0  # training rows with the same average hash as a test row (includes exact)
    dropped: int = 0  # training rows removed by --dedupe (exact image in val or test)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def leaks(self) -> int:
        return self.train_in_val + self.train_in_test


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


def _extra_copies(h: np.ndarray) -> int:
    return int(len(h) - len(np.unique(h)))


def _conflicting(h: np.ndarray, y: np.ndarray) -> int:
    """Rows belonging to a repeated image whose copies carry more than one label."""
    if len(h) == 0:
        return 0
    order = np.lexsort((y, h))
    hs, ys = h[order], np.asarray(y)[order]
    starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
    sizes = np.diff(np.r_[starts, len(hs)])
    lo, hi = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    return int(sizes[(sizes > 1) & (lo != hi)].sum())


def find_duplicates(x: np.ndarray, y: np.ndarray, val: np.ndarray, x_test: np.ndarray) -> tuple[DuplicateReport, np.ndarray]:
    """Count duplicates; return the report and the bool [N] mask of training rows leaking into val/test."""
    val = np.asarray(val, bool)
    train = ~val
    h, h_test = exact_hashes(x), exact_hashes(x_test)
    a, a_test = average_hashes(x), average_hashes(x_test)
    h_train, h_val = h[train], h[val]
    in_val = np.isin(h, h_val) & train
    in_test = np.isin(h, h_test) & train
    report = DuplicateReport(
        train_within=_extra_copies(h_train),
        train_within_conflicting=_conflicting(h_train, np.asarray(y)[train]),
        val_within=_extra_copies(h_val),
        test_within=_extra_copies(h_test),
        train_in_val=int(in_val.sum()),
        train_in_test=int(in_test.sum()),
        val_in_test=int(np.isin(h_val, h_test).sum()),
        near_train_in_val=int((np.isin(a, a[val]) & train).sum()),
        near_train_in_test=int((np.isin(a, a_test) & train).sum()),
    )
    return report, in_val | in_test
