"""Knowledge distillation and pseudo-labels (`ferkaggle train --teacher [--pseudo-labels T]`).

Inputs: teacher runs (CNN runs of this split that never fitted or chose anything on the holdout,
`check_teachers`), the student's training faces and labels, the teachers' weight, and for
pseudo-labels the unlabelled test faces and a confidence threshold. Outputs: soft targets [n, 7],
(1 - weight) * one-hot label + weight * the teachers' mean probabilities with each teacher's own
test-time views (`teacher_targets`), which `fit.fit_trial` trains on in place of the one-hot labels;
and `pseudo_labels`: the test faces whose teachers' mean probability of one class reaches the
threshold, with that class, to train on beside the labelled rows (self-training, "pseudo-labels").
The checks keep the student's holdout figure a score nothing was fitted or chosen on: teachers never
saw the holdout, the threshold is the user's, and a test face that is a copy or near copy of a
holdout face (the same 256-bit average hash) is never a pseudo-labelled row.
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from ferkaggle.cnn.inference import cnn_run_proba
from ferkaggle.cnn.runtime import release_memory
from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.dedupe import average_hashes
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.select import refit_on_holdout


def teacher_weight_or_default(weight: float | None, pseudo_threshold: float | None) -> float:
    """The teachers' share of each labelled row's target: `weight` if given, else 0.5 for distillation and 0
    with pseudo-labels (the labelled rows keep their labels)."""
    if weight is not None:
        return weight
    return 0.0 if pseudo_threshold is not None else 0.5


def check_distillation(teachers: list | None, prepared: Prepared, weight: float, pseudo_threshold: float | None,
                       folds: bool = False) -> None:
    """`train_config`'s teachers, weight and threshold, checked before anything is trained or written (the CLI
    calls it too, before TensorFlow loads)."""
    if pseudo_threshold is not None and not teachers:
        raise FerkaggleError("--pseudo-labels needs at least one --teacher: the runs whose predictions label the test faces")
    if teachers:
        if folds:
            raise FerkaggleError("distillation (--teacher) trains one model; it does not combine with --folds")
        check_teachers(teachers, prepared, weight, pseudo_threshold)


def check_teachers(teachers: list, prepared: Prepared, weight: float, pseudo_threshold: float | None = None) -> None:
    """Teachers must be CNN runs on this split that never trained on or chose anything by the holdout, so
    that the student's holdout figure stays a score nothing was fitted or chosen on. The weight may be 0
    (labelled rows keep their one-hot labels) only with pseudo-labels."""
    if pseudo_threshold is not None and not 0.0 < pseudo_threshold < 1.0:
        raise FerkaggleError(f"--pseudo-labels must be a confidence in (0, 1), not {pseudo_threshold}")
    if pseudo_threshold is not None and not 0.0 <= weight <= 1.0:
        raise FerkaggleError(f"--teacher-weight must be in [0, 1] with --pseudo-labels, not {weight}")
    if pseudo_threshold is None and not 0.0 < weight <= 1.0:
        raise FerkaggleError(f"--teacher-weight must be in (0, 1], not {weight}")
    if pseudo_threshold is not None and len(prepared.x_test) == 0:
        raise FerkaggleError(f"{prepared.path}: --pseudo-labels needs test faces; the prepared data has none")
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


def teachers_mean(teachers: list, x: np.ndarray) -> np.ndarray:
    """The teachers' mean probabilities [n, 7] on faces x, each teacher with its own test-time views."""
    mean = np.zeros((len(x), NUM_CLASSES), np.float64)
    for t in teachers:
        mean += cnn_run_proba(t, x) / len(teachers)
        release_memory()
    return mean


def teacher_targets(teachers: list, x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """Soft targets [n, 7]: (1 - weight) * one-hot(y) + weight * the teachers' mean probabilities on x
    (each teacher with its own test-time views)."""
    one_hot = np.eye(NUM_CLASSES)[np.asarray(y, np.int64)]
    if weight == 0.0:
        return one_hot.astype(np.float32)
    return ((1.0 - weight) * one_hot + weight * teachers_mean(teachers, x)).astype(np.float32)


@dataclass(frozen=True)
class PseudoLabels:
    """The test faces a student trains on as if labelled: rows of x_test, their class, and the count."""
    rows: np.ndarray            # indices into x_test, ascending
    labels: np.ndarray          # the teachers' most probable class of each
    threshold: float
    confident: int              # test faces at or above the threshold, before the holdout's copies are left out
    near_holdout: int           # of those, left out: a copy or near copy of a holdout face

    def report(self) -> dict:
        return {"threshold": self.threshold, "rows": int(len(self.rows)), "confident": self.confident,
                "left_out_near_holdout": self.near_holdout,
                "classes": np.bincount(self.labels, minlength=NUM_CLASSES).tolist()}


def pseudo_labels(teachers: list, prepared: Prepared, threshold: float) -> PseudoLabels:
    """The test faces whose teachers' mean probability of one class is at least `threshold`, with that class,
    less every test face whose average hash is a holdout face's: a copy of a holdout face trained on under
    the teachers' label would lift the student's holdout score by memory, not skill."""
    mean = teachers_mean(teachers, prepared.x_test)
    confident = mean.max(axis=1) >= threshold
    near = np.zeros(len(mean), bool)
    if len(prepared.val_idx):
        holdout = average_hashes(np.asarray(prepared.x_val))
        near = np.isin(average_hashes(np.asarray(prepared.x_test)), holdout)
    rows = np.flatnonzero(confident & ~near)
    return PseudoLabels(rows=rows, labels=mean[rows].argmax(axis=1).astype(np.int64), threshold=float(threshold),
                        confident=int(confident.sum()), near_holdout=int((confident & near).sum()))
