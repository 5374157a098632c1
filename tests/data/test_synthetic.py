"""The synthetic face generator and the demo competition writer."""

from __future__ import annotations

import numpy as np
import pytest

from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.synthetic import DEMO_FILES, demo_present, make_faces, write_demo_competition


def test_shapes_dtypes_and_labels():
    x, y = make_faces(300, seed=3)
    assert x.shape == (300, 48, 48) and x.dtype == np.uint8
    assert y.shape == (300,) and y.dtype == np.int8
    assert y.min() >= 0 and y.max() < NUM_CLASSES
    counts = np.bincount(y, minlength=NUM_CLASSES)
    assert counts[3] == counts.max()  # happy is the most common class, as in FER2013
    assert counts[1] < counts[3] / 5  # disgust is rare
    assert x.std() > 20  # not blank: faces, backgrounds and lighting vary


def test_deterministic_in_seed():
    a = make_faces(64, seed=7)
    b = make_faces(64, seed=7)
    c = make_faces(64, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_zero_faces():
    x, y = make_faces(0, seed=0)
    assert x.shape == (0, 48, 48) and y.shape == (0,)


def test_expression_carries_the_label():
    """A small forest on a few hundred faces already beats the majority class: the label is in the pixels."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_faces(1500, seed=1)
    pooled = x.reshape(len(x), 16, 3, 16, 3).mean(axis=(2, 4)).reshape(len(x), -1)  # 3x3 pooling: faster, as informative
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(pooled[:1200], y[:1200])
    accuracy = (model.predict(pooled[1200:]) == y[1200:]).mean()
    majority = np.bincount(y[1200:]).max() / 300  # 0.33 vs 0.25 when written
    assert accuracy > majority + 0.05, (accuracy, majority)


def test_demo_competition_layout(tmp_path):
    written = write_demo_competition(tmp_path / "demo", n_train=50, n_test=20, seed=0)
    assert [p.name for p in written] == ["test_labels.csv", "test.csv", "train.csv"]
    assert demo_present(tmp_path / "demo")
    train = (tmp_path / "demo" / "train.csv").read_text().splitlines()
    test = (tmp_path / "demo" / "test.csv").read_text().splitlines()
    labels = (tmp_path / "demo" / "test_labels.csv").read_text().splitlines()
    assert train[0] == "emotion,pixels" and len(train) == 51
    assert test[0] == "id,pixels" and len(test) == 21
    assert labels[0] == "id,emotion" and len(labels) == 21
    assert len(train[1].split(",")[1].split()) == 48 * 48
    assert [line.split(",")[0] for line in test[1:]] == [line.split(",")[0] for line in labels[1:]]
    # Nothing is overwritten without asking.
    with pytest.raises(FerkaggleError, match="already exist"):
        write_demo_competition(tmp_path / "demo", n_train=50, n_test=20)
    assert set(DEMO_FILES) <= {p.name for p in (tmp_path / "demo").iterdir()}
