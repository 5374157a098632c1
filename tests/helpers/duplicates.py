"""A small competition with hand-placed duplicates, and the counts a reader gets by hand.

Labelled rows 0..39 are distinct random images (label i % 7); then:
  40 = copy of 0 (same label)                   exact
  41, 42 = copies of 1 (same label)             exact
  43 = copy of 2 with another label             exact, conflicting (rows 2 and 43)
  44 = 3 with one pixel changed by one level    near (same average hash, other bytes)
  45 = all 0, 46 = all 200                      blank; they share an average hash: a near group
Test rows 0..9 are distinct random images; then:
  test 0 = copy of labelled 5                   train ∩ test (exact)
  test 1 = 6 with one pixel changed             train ∩ test (near)
  test 2 = all 77                               blank test image (near to labelled 45 and 46)
  test 3 = copy of test 4                       an extra copy within test
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_DISTINCT = 40

EXPECTED = {
    "labelled": 47,
    "exact_extra": 4,  # rows 40, 41, 42, 43
    "exact_images_repeated": 3,  # images of rows 0, 1, 2
    "near_extra": 6,  # the 4 exact + row 44 + one of the two blanks
    "groups": 41,  # 47 rows - 6 extra
    "rows_in_groups": 11,  # {0,40} {1,41,42} {2,43} {3,44} {45,46}
    "largest_group": 3,
    "conflicting_rows": 2,
    "conflicting_images": 1,
    "blank": 2,
    "blank_test": 1,
    "test_extra": 1,
    "train_in_test": 1,  # row 5
    "near_train_in_test": 4,  # rows 5, 6 and the blanks 45, 46 (same average hash as test 2)
}
GROUPS_OF_TWO_OR_MORE = [[0, 40], [1, 41, 42], [2, 43], [3, 44], [45, 46]]


def _nudge(face: np.ndarray) -> np.ndarray:
    out = face.copy()
    out[10, 10] = out[10, 10] + 1 if out[10, 10] < 255 else 254
    return out


def duplicate_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (N_DISTINCT, 48, 48), dtype=np.uint8)
    y = (np.arange(N_DISTINCT) % 7).astype(np.int8)
    extra_x = [x[0], x[1], x[1], x[2], _nudge(x[3]), np.zeros((48, 48), np.uint8), np.full((48, 48), 200, np.uint8)]
    extra_y = [y[0], y[1], y[1], (y[2] + 1) % 7, y[3], 3, 3]
    x = np.concatenate([x, np.stack(extra_x)])
    y = np.concatenate([y, np.asarray(extra_y, np.int8)])
    x_test = rng.integers(0, 256, (10, 48, 48), dtype=np.uint8)
    x_test[0] = x[5]
    x_test[1] = _nudge(x[6])
    x_test[2] = 77
    x_test[3] = x_test[4]
    return x, y, x_test


def _pixels(face: np.ndarray) -> str:
    return " ".join(map(str, face.ravel().tolist()))


def write_duplicate_competition(folder: Path, seed: int = 0) -> Path:
    """train.csv + test.csv (shuffled ids) of duplicate_arrays; returns the folder."""
    x, y, x_test = duplicate_arrays(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("emotion,pixels\n" + "".join(f"{k},{_pixels(f)}\n" for f, k in zip(x, y)))
    ids = [100 + 7 * i for i in range(len(x_test))][::-1]
    (folder / "test.csv").write_text("id,pixels\n" + "".join(f"{i},{_pixels(f)}\n" for i, f in zip(ids, x_test)))
    return folder


def parts_of_each_image(x: np.ndarray, fold: np.ndarray) -> dict[bytes, set[int]]:
    """image bytes -> the split parts (holdout -1, folds 0..k-1) holding a copy: computed plainly."""
    parts: dict[bytes, set[int]] = {}
    for face, f in zip(x, fold):
        parts.setdefault(np.asarray(face).tobytes(), set()).add(int(f))
    return parts
