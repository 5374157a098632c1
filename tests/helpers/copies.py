"""A hand-built prepared set whose test faces have exact labelled copies placed by hand, and the
truth about them computed independently of ferkaggle (pixel-by-pixel comparison, a Counter)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

# test row -> labels of its labelled copies (placed in this order), and what it should get
PLACED = {
    0: [3, 3],  # agreeing copies -> 3
    1: [2, 5],  # a tie -> the model's label (which is neither 2 nor 5, nor the smaller one)
    2: [6],  # a single copy -> 6
    3: [4, 1, 1],  # majority 1, not the first copy's 4
    4: [0, 0, 0],  # agree with the model: has copies, label unchanged
}
MODEL = {0: 5, 1: 0, 2: 2, 3: 6, 4: 0}  # the model's argmax on those rows


def copies_arrays(n: int = 120, n_test: int = 30, seed: int = 0):
    """(x, y, fold, x_test, test_ids, model_labels): distinct synthetic faces with PLACED copies."""
    from ferkaggle.data.synthetic import make_faces

    x, y = make_faces(n, seed=seed)
    x_test, _ = make_faces(n_test, seed=seed + 1)
    rows = iter(range(7, n, 9))  # spread over holdout and training rows
    for t, labels in PLACED.items():
        for label in labels:
            r = next(rows)
            x[r], y[r] = x_test[t], label
    fold = (np.arange(n) % 3).astype(np.int8)
    fold[::5] = -1
    model = np.random.default_rng(seed).integers(0, 7, n_test)
    for t, label in MODEL.items():
        model[t] = label
    test_ids = np.arange(1000, 1000 + n_test, dtype=np.int64)[::-1].copy()
    return x, y, fold, x_test, test_ids, model


def truth(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> tuple[list[int], list[int]]:
    """(majority label of each test face's copies or -1 for none or a tie, number of copies), by brute force."""
    majority, copies = [], []
    for face in x_test:
        same = [int(y[r]) for r in range(len(x)) if np.array_equal(x[r], face)]
        ranked = Counter(same).most_common()
        clear = bool(ranked) and (len(ranked) == 1 or ranked[0][1] > ranked[1][1])
        majority.append(ranked[0][0] if clear else -1)
        copies.append(len(same))
    return majority, copies


def copies_prepared(root: Path):
    """The arrays above as a prepared folder (with labelled test rows), and the model labels."""
    from ferkaggle.data.prepared import write_prepared

    x, y, fold, x_test, test_ids, model = copies_arrays()
    y_test = np.random.default_rng(3).integers(0, 7, len(x_test))
    y_test[[0, 2, 3]] = 3, 6, 1  # the copies' label is the truth where the model is wrong: --copies scores higher
    prepared = write_prepared(root, "copies", x=x, y=y, fold=fold, x_test=x_test, test_ids=test_ids,
                              y_test=y_test, manifest={"layout": "synthetic"})
    return prepared, model
