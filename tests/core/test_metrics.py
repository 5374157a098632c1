"""The one accuracy / macro-F1 and the one test-figures helper, against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from ferkaggle.core.metrics import accuracy, labelled_test_scores, scores


def _proba(pred: list[int]) -> np.ndarray:
    proba = np.full((len(pred), 7), 0.01, np.float32)
    proba[np.arange(len(pred)), pred] = 0.9
    return proba


def test_scores_are_the_hand_counted_accuracy_and_macro_f1_over_all_seven_classes():
    # truth 0 0 1 1 2, predicted 0 1 1 1 0: 3 of 5 right. F1 by class: 0 -> P 1/2, R 1/2 = 0.5;
    # 1 -> P 2/3, R 1 = 0.8; 2 -> 0; classes 3..6 have neither rows nor predictions -> 0.
    s = scores(np.array([0, 0, 1, 1, 2]), _proba([0, 1, 1, 1, 0]))
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8) / 7)


def test_accuracy_is_the_hand_counted_share_of_argmax_hits_and_nan_for_no_rows():
    # truth 4 4 2 0, predicted 4 2 2 6: rows 0 and 2 right, 2 of 4.
    assert accuracy(np.array([4, 4, 2, 0]), _proba([4, 2, 2, 6])) == 0.5
    assert accuracy([6], _proba([6])) == 1.0  # plain lists too
    assert np.isnan(accuracy(np.zeros(0, np.int64), np.zeros((0, 7))))


def test_labelled_test_scores_where_the_test_set_has_labels_and_nothing_where_it_has_none():
    figures = labelled_test_scores(np.array([3, 3, 5, 6]), _proba([3, 5, 5, 6]))
    assert figures == {"test_accuracy": pytest.approx(0.75), "test_macro_f1": pytest.approx((2 / 3 + 2 / 3 + 1) / 7)}
    assert labelled_test_scores(None, _proba([3])) == {}
    assert labelled_test_scores(np.zeros(0, np.int8), np.zeros((0, 7))) == {}
