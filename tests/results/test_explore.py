"""The data report on a hand-made prepared set: counts, mean faces, PCA and duplicates against
numbers worked out by hand or with plain numpy, and every figure a PNG of its fixed size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferkaggle.data.prepared import write_prepared
from ferkaggle.results import explore
from ferkaggle.results.explore import write_data_report

# 18 training rows (folds 0-2) then 6 holdout rows; counted by hand below.
Y = [0, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 5, 6, 6, 0, 2, 3, 3, 4, 6]
FOLD = [0, 1, 2, 0, 1, 0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, -1, -1, -1, -1, -1, -1]
Y_TEST = [3, 3, 5, 1]
TRAIN_COUNTS = [4, 1, 3, 5, 2, 1, 2]
HOLDOUT_COUNTS = [1, 0, 1, 2, 1, 0, 1]
TEST_COUNTS = [0, 1, 0, 2, 0, 1, 0]
# Duplicates: row 3 copies row 0 (same label), row 12 copies row 9 (same label),
# row 15 (surprise) copies row 6 (fear): one conflicting image of 2 rows.
COPIES = {3: 0, 12: 9, 15: 6}
PNG_SIZES = {"class_counts.png": (800, 450), "samples.png": (720, 660), "mean_faces.png": (1050, 200),
             "duplicates.png": (720, 1000), "pca_variance.png": (700, 450), "eigenfaces.png": (800, 240)}


def faces(n: int, seed: int = 0) -> np.ndarray:
    """Faces of rank ~3 around grey 128 plus a little noise, so 95 % of the variance takes a few components."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(3, 48 * 48))
    weights = rng.normal(size=(n, 3)) * np.array([30.0, 15.0, 8.0])
    x = 128 + weights @ patterns + rng.normal(scale=2.0, size=(n, 48 * 48))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(n, 48, 48)


def hand_made(root, duplicates: bool = True):
    x = faces(len(Y))
    groups = np.arange(len(Y))
    if duplicates:
        for row, original in COPIES.items():
            x[row] = x[original]
            groups[row] = original
    return write_prepared(root, "hand", x=x, y=np.array(Y), fold=np.array(FOLD), x_test=faces(4, seed=1),
                          test_ids=np.arange(4), y_test=np.array(Y_TEST), manifest={"layout": "hand-made"}, groups=groups)


def table_row(markdown: str, first_cell: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_counts_mean_faces_pca_and_figures(in_tmp):
    prepared = hand_made(in_tmp / "prepared")
    result = write_data_report(prepared, in_tmp / "reports")
    assert result.folder == in_tmp / "reports" / "hand"
    index = (result.folder / "index.md").read_text()
    for k, name in enumerate(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")):
        cells = table_row(index, f"{k} {name}")
        assert cells[:3] == [str(TRAIN_COUNTS[k]), str(HOLDOUT_COUNTS[k]), str(TEST_COUNTS[k])], name
    assert table_row(index, "total")[:3] == ["18", "6", "4"]

    x = np.asarray(prepared.x, np.float64)
    np.testing.assert_allclose(result.mean_faces[0], x[[0, 1, 2, 3, 18]].mean(axis=0))
    np.testing.assert_allclose(result.mean_faces[5], x[15])

    # Components for 95 %: an independent SVD of the centred pixels (all 24 rows: under the cap).
    flat = x.reshape(len(x), -1) / 255.0
    singular = np.linalg.svd(flat - flat.mean(axis=0), compute_uv=False)
    share = np.cumsum(singular**2) / np.sum(singular**2)
    expected = int(np.flatnonzero(share >= 0.95)[0]) + 1
    assert 2 <= expected <= 5  # the faces are built to need a few
    assert result.pca.components_for[0.95] == expected
    assert table_row(index, "95%") == [str(expected)]
    assert result.pca.rows == 24

    for name, size in PNG_SIZES.items():
        with Image.open(result.folder / name) as image:
            image.load()
            assert image.size == size, name
        assert f"]({name})" in index
    assert sorted(result.files) == sorted([*PNG_SIZES, "index.md"])


def _covered(png) -> float:
    """Share of non-white pixels in rows 2-4 of the duplicates grid (20-40 % of the height)."""
    with Image.open(png) as image:
        grey = np.asarray(image.convert("L"))
    h = grey.shape[0]
    return float((grey[int(0.2 * h):int(0.4 * h), int(0.15 * grey.shape[1]):] < 250).mean())


def test_duplicate_groups_and_conflicting_labels_are_shown(in_tmp):
    result = write_data_report(hand_made(in_tmp / "prepared"), in_tmp / "reports")
    d = result.duplicates
    assert (d.groups, d.rows_in_groups, d.largest, d.conflicting_images, d.conflicting_rows) == (3, 6, 2, 1, 2)
    assert [rows.tolist() for rows in d.shown] == [[6, 15], [0, 3], [9, 12]]  # the conflicting group first
    assert d.shown_conflicting == [True, False, False]
    index = (result.folder / "index.md").read_text()
    assert "3 duplicate groups of two or more rows hold 6 labelled rows" in index
    assert "up to 5 groups with conflicting labels (red) first" in index and "{" not in index
    assert "1 images whose 2 copies disagree" in index
    assert _covered(result.folder / "duplicates.png") > 0.05


def test_no_duplicates_says_so(in_tmp):
    result = write_data_report(hand_made(in_tmp / "prepared", duplicates=False), in_tmp / "reports")
    assert result.duplicates.groups == 0 and result.duplicates.shown == []
    index = (result.folder / "index.md").read_text()
    assert "No duplicate groups: every labelled image is distinct." in index and "No conflicting labels." in index
    assert _covered(result.folder / "duplicates.png") == 0.0


def test_pca_subsample_is_seeded_and_capped(in_tmp):
    prepared = hand_made(in_tmp / "prepared")
    first = explore.pca_summary(np.asarray(prepared.x), seed=3, max_rows=10)
    again = explore.pca_summary(np.asarray(prepared.x), seed=3, max_rows=10)
    other = explore.pca_summary(np.asarray(prepared.x), seed=4, max_rows=10)
    assert first.rows == 10 and len(first.cumulative) == 10
    np.testing.assert_array_equal(first.cumulative, again.cumulative)
    assert not np.array_equal(first.cumulative, other.cumulative)


def test_a_failure_leaves_no_half_report(in_tmp, monkeypatch):
    prepared = hand_made(in_tmp / "prepared")
    earlier = write_data_report(prepared, in_tmp / "reports")
    before = {p.name: p.read_bytes() for p in earlier.folder.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(explore, "_plot_eigenfaces", broken)
    with pytest.raises(RuntimeError):
        write_data_report(prepared, in_tmp / "fresh")
    assert not (in_tmp / "fresh" / "hand").exists()  # not the figures drawn before the failure either
    with pytest.raises(RuntimeError):
        write_data_report(prepared, in_tmp / "reports")
    assert {p.name: p.read_bytes() for p in earlier.folder.iterdir()} == before
    assert [p.name for p in (in_tmp / "reports").iterdir()] == ["hand"]  # no temporary folder left
