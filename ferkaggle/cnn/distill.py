"""Knowledge distillation (`ferkaggle train --teacher`): the student fits on label/teacher mixtures.

Inputs: teacher runs (CNN runs of this split that never fitted or chose anything on the holdout,
`check_teachers`), the student's training faces and labels, and the teachers' weight. Output: soft
targets [n, 7], (1 - weight) * one-hot label + weight * the teachers' mean probabilities with each
teacher's own test-time views (`teacher_targets`), which `fit.fit_trial` trains on in place of the
one-hot labels. The checks keep the student's holdout figure a score nothing was fitted or chosen on.
"""

from __future__ import annotations

import numpy as np

from ferkaggle.cnn.inference import cnn_run_proba
from ferkaggle.cnn.runtime import release_memory
from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.select import refit_on_holdout


def check_teachers(teachers: list, prepared: Prepared, weight: float) -> None:
    """Teachers must be CNN runs on this split that never trained on or chose anything by the holdout, so
    that the student's holdout figure stays a score nothing was fitted or chosen on."""
    if not 0.0 < weight <= 1.0:
        raise FerkaggleError(f"--teacher-weight must be in (0, 1], not {weight}")
    for t in teachers:
        if t.kind != "cnn":
            raise FerkaggleError(
                f"teacher {t.run_id} is a {t.kind or 'unknown'} run; teachers are CNN runs (name each member: "
                "an ensemble's weights were fitted on the holdout, which would then shape the student's targets)")
        if refit_on_holdout(t):
            raise FerkaggleError(f"teacher {t.run_id} was refit on the holdout rows; use its source "
                                 f"{t.info.get('refit_of')} as the teacher")
        if t.selected_on_score:
            raise FerkaggleError(f"teacher {t.run_id} chose its checkpoint on the holdout (an older run); "
                                 "retrain it, or choose another teacher")
        if t.split_fingerprint != prepared.split_fingerprint:
            raise FerkaggleError(f"teacher {t.run_id} was trained on split {t.split_fingerprint[:8]}, the prepared "
                                 f"data {prepared.path} has split {prepared.split_fingerprint[:8]}")


def teacher_targets(teachers: list, x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """Soft targets [n, 7]: (1 - weight) * one-hot(y) + weight * the teachers' mean probabilities on x
    (each teacher with its own test-time views)."""
    mean = np.zeros((len(x), NUM_CLASSES), np.float64)
    for t in teachers:
        mean += cnn_run_proba(t, x) / len(teachers)
        release_memory()
    one_hot = np.eye(NUM_CLASSES)[np.asarray(y, np.int64)]
    return ((1.0 - weight) * one_hot + weight * mean).astype(np.float32)
