"""Read every competition layout into validated uint8 arrays, fast: the readers' front door.

Inputs: a folder, a zip or a single file holding one of these layouts (column names match
ignoring case and surrounding spaces; each file may be plain, `.csv.gz`, or inside a zip, with
LF or CRLF line ends and an optional UTF-8 byte-order mark):

- Kaggle competition: `train.csv` (emotion,pixels) + `test.csv` (id,pixels or pixels alone),
  optionally `test_labels.csv` (id,emotion) beside test.csv;
- `fer2013.csv` (emotion,pixels,Usage) or its twin `icml_face_data.csv` (emotion, Usage, pixels):
  Training + PublicTest rows are the labelled set (PublicTest marked as predefined validation),
  PrivateTest rows are the (labelled) test set;
- image folders `train/<class>/*` and `test/<class>/*` or a flat `test/*` (see images.py).

Output: a `RawData` with x uint8 [N,48,48], y int8 [N], x_test uint8 [M,48,48], test_ids int64 [M]
and the optional test labels / predefined validation mask, plus what was skipped and notes.

Test ids come from the source, never from a counter after filtering: the id column; without one,
the row's position among the test file's data rows; fer2013: the position among the PrivateTest
rows; images: the file names (images.py). No test row is ever dropped, so positions are the file's.

Every problem a user can cause raises `DataError(file, message, line)` with the 1-based line an
editor shows (header = line 1). With `on_bad_row="skip"` bad labelled rows are dropped and listed
instead; a bad test row and structural problems (missing column, empty file, corrupt archive)
always raise.

The work is split by job: records.py (RawData, names, bad-row policy), streams.py (files, gzip,
zips, the threaded block reader), pixels.py (the vectorised pixel decoder), tables.py (CSV
tables), sources.py (layout detection), images.py (image folders). This module reads a detected
layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkaggle.core.errors import DataError
from ferkaggle.data import images
from ferkaggle.data.records import (
    LAYOUT_FER2013,
    LAYOUT_ICML,
    LAYOUT_KAGGLE,
    USAGE_PRIVATE,
    USAGE_PUBLIC,
    BadRowMode,
    BadRows,
    RawData,
)
from ferkaggle.data.sources import Source, resolve_source
from ferkaggle.data.streams import FileRef
from ferkaggle.data.tables import check_unique_ids, read_label_table, read_table


def _read_kaggle(source: Source, bad_rows: BadRows, notes: list[str]) -> RawData:
    assert source.train is not None and source.test is not None
    train = read_table(source.train, ("emotion", "pixels"), bad_rows=bad_rows)
    test = read_table(source.test, ("pixels",), ("id", "emotion"), bad_rows=bad_rows, test_rows=True)
    test_file = source.test.display
    if test.ids is None:
        # Every test row was kept (a bad one raises), so position k is the k-th data row of the file.
        test_ids = np.arange(len(test.pixels), dtype=np.int64)
        id_source = f"{source.test.name} has no id column: the id is the row's position among its data rows, from 0"
        notes.append(id_source)
    else:
        test_ids = test.ids
        id_source = f"the id column of {source.test.name}"
        check_unique_ids(test_ids, test.lines, test_file)
    y_test = test.emotion
    labels_ref = source.test_labels
    if labels_ref is not None:
        if y_test is not None:
            notes.append(f"{source.test.name} has an emotion column; ignoring {labels_ref.display}")
        else:
            y_test = _align_test_labels(labels_ref, test_ids, bad_rows, notes)
    refs = [source.train, source.test] + ([labels_ref] if labels_ref is not None and test.emotion is None else [])
    return RawData(
        layout=LAYOUT_KAGGLE,
        sources=_unique_paths(refs),
        x=train.pixels,
        y=train.emotion,
        x_test=test.pixels,
        test_ids=test_ids,
        y_test=y_test,
        predefined_val=None,
        test_id_source=id_source,
    )


def _align_test_labels(ref: FileRef, test_ids: np.ndarray, bad_rows: BadRows, notes: list[str]) -> np.ndarray:
    """Labels from an id,emotion file, in test_ids order; every test id needs exactly one."""
    ids, labels, lines = read_label_table(ref, bad_rows)
    check_unique_ids(ids, lines, ref.display)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    where = np.searchsorted(sorted_ids, test_ids)
    where_clipped = np.minimum(where, max(len(sorted_ids) - 1, 0))
    found = (where < len(sorted_ids)) & (sorted_ids[where_clipped] == test_ids) if len(sorted_ids) else np.zeros(len(test_ids), bool)
    if not found.all():
        missing = test_ids[~found]
        shown = ", ".join(str(int(i)) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(ref.display, f"no label for {len(missing):,} test id(s): {shown}; every test id needs exactly one label")
    extra = len(ids) - len(test_ids)
    if extra > 0:
        notes.append(f"{ref.display} labels {extra:,} id(s) that are not in the test file; they are ignored")
    return labels[order[where]]


def _read_fer2013(source: Source, bad_rows: BadRows, notes: list[str]) -> RawData:
    assert source.table is not None
    ref = source.table
    table = read_table(ref, ("emotion", "pixels", "usage"), bad_rows=bad_rows)
    names = [h.lower() for h in table.header]
    layout = LAYOUT_ICML if names.index("usage") < names.index("pixels") else LAYOUT_FER2013
    labelled = table.usage != USAGE_PRIVATE
    test = ~labelled
    if not test.any():
        raise DataError(ref.display, "has no PrivateTest rows: nothing to use as the test set")
    if not labelled.any():
        raise DataError(ref.display, "has no Training or PublicTest rows: nothing to train on")
    return RawData(
        layout=layout,
        sources=_unique_paths([ref]),
        x=table.pixels[labelled],
        y=table.emotion[labelled],
        x_test=table.pixels[test],
        # PrivateTest rows are never dropped (a bad one raises), so these positions are the file's.
        test_ids=np.arange(int(test.sum()), dtype=np.int64),
        y_test=table.emotion[test],
        predefined_val=table.usage[labelled] == USAGE_PUBLIC,
        test_id_source=f"the row's position among the PrivateTest rows of {ref.name}, from 0",
    )


def _unique_paths(refs: list[FileRef]) -> list[Path]:
    paths: list[Path] = []
    for ref in refs:
        if ref.path not in paths:
            paths.append(ref.path)
    return paths


def read_source(source: Path | None = None, *, train: Path | None = None, test: Path | None = None,
                test_labels: Path | None = None, on_bad_row: BadRowMode = "error") -> RawData:
    """Read a competition's data into validated arrays.

    `source` is a fer2013-style file, a zip or a folder (searched with find_source); `train`
    and `test` are explicit Kaggle-layout files. With neither, the folder `data/` is searched
    (sources.resolve_source). `test_labels` (an id,emotion file) labels the test set; by default
    a test_labels.csv beside test.csv is used. `on_bad_row` is "error" (raise on the first bad
    row) or "skip" (drop bad labelled rows and list them in RawData.skipped; a bad test row
    still raises).
    """
    skipped: list[dict] = []
    bad_rows = BadRows(on_bad_row, skipped)
    found = resolve_source(source, train=train, test=test, test_labels=test_labels)
    notes = list(found.notes)
    if found.kind == "kaggle":
        data = _read_kaggle(found, bad_rows, notes)
    elif found.kind == "fer2013":
        data = _read_fer2013(found, bad_rows, notes)
    else:
        data = images.read_image_set(found.images, bad_rows, notes)
    if len(data.x) == 0:
        raise DataError(data.sources[0] if data.sources else found.location, "no usable labelled rows")
    data.skipped = skipped
    data.notes = notes
    if skipped:
        notes.append(f"skipped {len(skipped):,} bad row(s); see RawData.skipped")
    return data
