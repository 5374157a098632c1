"""Scores shared by every stage: accuracy and macro-F1 from class probabilities.

Every accuracy and macro-F1 the package records or prints is computed here: `accuracy` (cheap,
for loops such as the greedy ensemble's), `scores` (both figures) and `labelled_test_scores`
(a run's test figures).
"""

from __future__ import annotations

import numpy as np

from ferkaggle.core.constants import NUM_CLASSES


def accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The share of rows whose argmax(proba) is y_true; nan for no rows."""
    y_true = np.asarray(y_true)
    if not len(y_true):
        return float("nan")
    return float((np.asarray(proba).argmax(axis=1) == y_true).mean())


def scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (over all seven classes) of argmax(proba) against y_true."""
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true)
    pred = np.asarray(proba).argmax(axis=1)
    return {
        "accuracy": accuracy(y_true, proba),
        "macro_f1": float(f1_score(y_true, pred, labels=range(NUM_CLASSES), average="macro", zero_division=0)),
    }


def labelled_test_scores(y_test: np.ndarray | None, test_proba: np.ndarray | None) -> dict[str, float]:
    """`test_accuracy` and `test_macro_f1` of a run's test probabilities where the prepared test set has
    labels (fer2013.csv's PrivateTest rows, a test_labels.csv, the demo); {} where it has none. Every
    run kind (forest, CNN, ensemble) records its test figures through this."""
    if y_test is None or test_proba is None or not len(y_test):
        return {}
    s = scores(y_test, test_proba)
    return {"test_accuracy": s["accuracy"], "test_macro_f1": s["macro_f1"]}
