"""Records and names every reader shares: what a read returns, the layouts, and bad-row policy.

- `RawData`: the arrays and facts one read of a competition yields (io.read_source fills it).
- Layout and file names: shown on screen (`LAYOUT_*`) and matched when detecting a layout
  (`TRAIN_NAMES`, ..., case-insensitive, each also as .gz).
- fer2013 Usage codes.
- `BadRows`: where a bad row goes under `--on-bad-row` (`BadRowMode`; `check_on_bad_row`, which
  PrepareOptions calls, is the one check of that option's value): raised at once ("error") or
  listed and dropped ("skip"), except that a test row is never dropped.

Nothing here reads a file; the readers (tables.py, images.py, io.py) import from here, so no
reader imports another to learn a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ferkaggle.core.errors import DataError, FerkaggleError

LAYOUT_KAGGLE = "Kaggle CSV (train.csv + test.csv)"
LAYOUT_FER2013 = "fer2013.csv (emotion,pixels,Usage)"
LAYOUT_ICML = "icml_face_data.csv (emotion, Usage, pixels)"
LAYOUT_IMAGES = "image folders (train/<class>, test/<class>)"

# Names are matched case-insensitively; each may also end in .gz.
TRAIN_NAMES = ("train.csv",)
TEST_NAMES = ("test.csv",)
TEST_LABEL_NAMES = ("test_labels.csv",)
FER2013_NAMES = ("fer2013.csv", "icml_face_data.csv")

USAGE_PUBLIC, USAGE_PRIVATE = 1, 2
USAGE_VALUES = {"training": 0, "publictest": USAGE_PUBLIC, "privatetest": USAGE_PRIVATE}
UNREAD = -1  # a column value that could not be parsed (its row is bad)

BadRowMode = Literal["error", "skip"]
TEST_ROW_NEVER_SKIPPED = ("a test row is never skipped, even with --on-bad-row skip (which applies to labelled "
                          "rows only): every test id needs a prediction, so fix the row")


@dataclass
class RawData:
    layout: str  # shown on screen, e.g. "Kaggle CSV (train.csv + test.csv)"
    sources: list[Path]  # every file actually read (csv / gz / zip paths; folders for image layouts)
    x: np.ndarray  # uint8 [N,48,48] labelled rows in source order
    y: np.ndarray  # int8 [N] labels 0..6
    x_test: np.ndarray  # uint8 [M,48,48]
    test_ids: np.ndarray  # int64 [M]
    y_test: np.ndarray | None = None  # int8 [M] when the source labels its test set
    predefined_val: np.ndarray | None = None  # bool [N]: rows the source marks as validation
    skipped: list[dict] = field(default_factory=list)  # {"file": str, "line": int, "reason": str}
    notes: list[str] = field(default_factory=list)  # things to tell the user
    test_id_source: str = ""  # how the test ids were formed, for the manifest
    test_files: list[str] | None = None  # image layouts: the file of each test row, in x_test order


def check_on_bad_row(value: str) -> BadRowMode:
    """The one check of the --on-bad-row value (error or skip), made by PrepareOptions; returns it."""
    modes = get_args(BadRowMode)
    if value not in modes:
        raise FerkaggleError(f"--on-bad-row must be one of {', '.join(modes)}, not {value!r}")
    return value  # type: ignore[return-value]


class BadRows:
    """Where bad rows go: raised at once (on_bad_row="error") or recorded and dropped ("skip").

    A test row (or a row that may be one: a fer2013 row whose Usage cannot be read) always
    raises, whatever the mode: dropping it would leave its id without a prediction.
    """

    def __init__(self, on_bad_row: BadRowMode = "error", skipped: list[dict] | None = None):
        self.skip = on_bad_row == "skip"
        self.skipped = [] if skipped is None else skipped

    def report(self, file: str, line: int | None, reason: str, test_row: bool = False) -> None:
        """line is None for an image file (it has no line)."""
        if test_row and self.skip:
            raise DataError(file, f"{reason}; {TEST_ROW_NEVER_SKIPPED}", line)
        if not self.skip:
            raise DataError(file, reason, line)
        self.skipped.append({"file": file, "line": None if line is None else int(line), "reason": reason})


def show_value(raw: bytes, limit: int = 20) -> str:
    """A field's bytes as an error message quotes them (shortened)."""
    text = raw.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
