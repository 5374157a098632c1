"""Scores shared by every stage: accuracy and macro-F1 from class probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from ferkaggle.core.constants import NUM_CLASSES


def scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of argmax(proba) against y_true."""
    y_true = np.asarray(y_true)
    pred = np.asarray(proba).argmax(axis=1)
    return {
        "accuracy": float((pred == y_true).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, pred, labels=range(NUM_CLASSES), average="macro", zero_division=0)),
    }
