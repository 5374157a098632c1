"""Write and validate Kaggle submission files (`id,emotion`).

`write_submission` turns a run's saved test probabilities into
`submissions/<timestamp>_<run_id>.csv` (header `id,emotion`, one row per test id in
test-file order), validates what it wrote against the prepared test ids, and never
overwrites an existing file. With `copies=True`, a test face that has exact copies among the
prepared labelled rows (train and holdout) takes their majority label (`dedupe.copy_labels`; a
tie keeps the model's label); the run's saved probabilities are only read.
`validate_submission` checks any CSV and lists every defect: wrong header, unreadable rows,
missing / duplicate / unknown ids, labels outside 0-6.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_text
from ferkaggle.core.metrics import accuracy
from ferkaggle.data.dedupe import CopyLabels, copy_labels
from ferkaggle.runs.registry import Run, prepared_for_run

HEADER = ("id", "emotion")
DEFAULT_DIR = Path("submissions")
MAX_EXAMPLES = 5


@dataclass
class Validation:
    """The outcome of checking one submission file."""

    path: Path
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _examples(values) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:MAX_EXAMPLES])
    return shown + (f", ... ({len(values)} in all)" if len(values) > MAX_EXAMPLES else "")


def validate_submission(path: str | Path, test_ids: np.ndarray) -> Validation:
    """Check a submission CSV against the expected test ids; every defect gets its own message."""
    path = Path(path)
    result = Validation(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FerkaggleError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FerkaggleError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        result.problems.append(f"{path}: the file is empty; expected the header 'id,emotion' and one row per test id")
        return result
    header = tuple(cell.strip().lower() for cell in lines[0])
    if header != HEADER:
        result.problems.append(f"{path}, line 1: header is {','.join(lines[0])!r}, expected 'id,emotion'")
    ids: list[int] = []
    bad_rows: list[str] = []
    bad_labels: list[str] = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != 2:
            bad_rows.append(f"line {number} has {len(cells)} fields")
            continue
        try:
            row_id = int(cells[0])
        except ValueError:
            bad_rows.append(f"line {number} id {cells[0]!r} is not an integer")
            continue
        label = cells[1].strip()
        if not label.lstrip("-").isdigit() or not 0 <= int(label) < NUM_CLASSES:
            bad_labels.append(f"line {number} ({label!r})")
        ids.append(row_id)
    result.rows = len(ids)
    if bad_rows:
        result.problems.append(f"{path}: malformed rows (expected 'id,emotion' integers): {_examples(bad_rows)}")
    if bad_labels:
        result.problems.append(f"{path}: labels outside 0-{NUM_CLASSES - 1}: {_examples(bad_labels)}")
    seen = np.asarray(ids, dtype=np.int64)
    unique, counts = np.unique(seen, return_counts=True)
    duplicates = unique[counts > 1]
    if len(duplicates):
        result.problems.append(f"{path}: duplicate ids: {_examples(duplicates.tolist())}")
    expected = np.asarray(test_ids, dtype=np.int64)
    missing = np.setdiff1d(expected, unique)
    unknown = np.setdiff1d(unique, expected)
    if len(missing):
        result.problems.append(f"{path}: {len(missing)} test ids missing: {_examples(missing.tolist())}")
    if len(unknown):
        result.problems.append(f"{path}: {len(unknown)} ids not in the test set: {_examples(unknown.tolist())}")
    return result


@dataclass
class CopiesApplied:
    """What `write_submission(copies=True)` did to the model's labels."""

    with_copies: int  # test rows with at least one exact copy among the labelled rows
    changed: int  # of which rows whose written label differs from the model's
    tied: int  # of which rows whose copies' labels tie, left at the model's label


@dataclass
class SubmissionResult:
    path: Path
    run_id: str
    rows: int
    test_accuracy: float | None
    class_counts: list[int]
    copies: CopiesApplied | None = None  # what --copies did; None when it was off


def apply_copies(labels: np.ndarray, found: CopyLabels) -> tuple[np.ndarray, CopiesApplied]:
    """The model's labels with each face that has a clear majority among its copies given that label, and
    the counts. Ties and faces without copies keep the model's label."""
    labels = np.asarray(labels)
    take = found.label >= 0
    applied = CopiesApplied(with_copies=int((found.copies > 0).sum()),
                            changed=int((take & (found.label != labels)).sum()), tied=int(found.tied.sum()))
    return np.where(take, found.label, labels), applied


def write_submission(run: Run, out_dir: str | Path = DEFAULT_DIR, now: dt.datetime | None = None,
                     copies: bool = False) -> SubmissionResult:
    """Write `<out_dir>/<timestamp>_<run_id>.csv` from the run's test probabilities, then validate it.

    copies: give each test face with exact labelled copies their majority label (ties: the model's).
    """
    prepared = prepared_for_run(run)
    proba = run.proba("test")
    test_ids = np.asarray(prepared.test_ids)
    if proba.shape != (len(test_ids), NUM_CLASSES):
        raise FerkaggleError(f"run {run.run_id}: test probabilities have shape {proba.shape}, "
                             f"expected ({len(test_ids)}, {NUM_CLASSES})")
    labels = proba.argmax(axis=1)
    applied = None
    if copies:
        labels, applied = apply_copies(labels, copy_labels(prepared.x, prepared.y, prepared.x_test))
    body = "id,emotion\n" + "".join(f"{i},{k}\n" for i, k in zip(test_ids.tolist(), labels.tolist()))
    now = now or dt.datetime.now()
    out_dir = Path(out_dir)
    path = out_dir / f"{now:%Y-%m-%d_%H%M%S}_{run.run_id}.csv"
    n = 2
    while path.exists():
        path = out_dir / f"{now:%Y-%m-%d_%H%M%S}_{run.run_id}-{n}.csv"
        n += 1
    atomic_write_text(path, body, overwrite=False)
    check = validate_submission(path, test_ids)
    if not check.ok:
        path.unlink()
        raise FerkaggleError("the written submission failed validation (a bug): " + "; ".join(check.problems))
    # The accuracy of the labels written (one-hot: with --copies they are not all the argmax of proba).
    test_accuracy = None if prepared.y_test is None else accuracy(prepared.y_test, np.eye(NUM_CLASSES)[labels])
    counts = np.bincount(labels, minlength=NUM_CLASSES).tolist()
    return SubmissionResult(path, run.run_id, len(test_ids), test_accuracy, counts, applied)
