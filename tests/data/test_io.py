"""ferkaggle.data.io: every layout reads to identical arrays; every bad input is one DataError."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import DataError, FerkaggleError
from ferkaggle.data.io import read_source
from ferkaggle.data.pixels import parse_pixel_rows
from ferkaggle.data.records import LAYOUT_FER2013, LAYOUT_ICML, LAYOUT_IMAGES, LAYOUT_KAGGLE
from ferkaggle.data.sources import NoDataFound, find_source

N_TRAIN, N_VAL, N_TEST = 14, 6, 7


def _faces(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (count, 48, 48), dtype=np.uint8)
    faces[:, 0, :4] = [0, 7, 99, 255]  # every token length and both extremes
    return faces


@pytest.fixture(scope="module")
def faces():
    """Labelled faces (ordered by class name, as image folders sort them) and test faces."""
    x = _faces(N_TRAIN + N_VAL, 1)
    y = (np.arange(N_TRAIN + N_VAL) % 7).astype(np.int8)
    order = np.argsort([EMOTIONS[k] for k in y], kind="stable")
    x, y = x[order], y[order]
    x_test = _faces(N_TEST, 2)
    y_test = (np.arange(N_TEST) * 3 % 7).astype(np.int8)
    order_test = np.argsort([EMOTIONS[k] for k in y_test], kind="stable")
    return x, y, x_test[order_test], y_test[order_test]


def _pixels(face: np.ndarray) -> str:
    return " ".join(map(str, face.ravel().tolist()))


def _write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    data = text.replace("\n", newline).encode()
    data = (b"\xef\xbb\xbf" if bom else b"") + data
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def kaggle_texts(faces, with_ids=True):
    x, y, x_test, _ = faces
    train = "emotion,pixels\n" + "".join(f"{label},{_pixels(face)}\n" for face, label in zip(x, y))
    if with_ids:
        test = "id,pixels\n" + "".join(f"{i},{_pixels(face)}\n" for i, face in enumerate(x_test))
    else:
        test = "pixels\n" + "".join(f"{_pixels(face)}\n" for face in x_test)
    return train, test


def fer2013_text(faces, icml=False):
    x, y, x_test, y_test = faces
    usage = ["Training"] * N_TRAIN + ["PublicTest"] * N_VAL
    rows = [(label, u, face) for face, label, u in zip(x, y, usage)] + [(label, "PrivateTest", face) for face, label in zip(x_test, y_test)]
    if icml:
        return "emotion, Usage, pixels\n" + "".join(f"{label},{u},{_pixels(face)}\n" for label, u, face in rows)
    return "emotion,pixels,Usage\n" + "".join(f'{label},"{_pixels(face)}",{u}\n' for label, u, face in rows)


def write_images(root: Path, faces, labelled_test=True):
    x, y, x_test, y_test = faces
    for i, (face, label) in enumerate(zip(x, y)):
        (root / "train" / EMOTIONS[label].upper()).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(root / "train" / EMOTIONS[label].upper() / f"{i:03d}.png")
    for i, (face, label) in enumerate(zip(x_test, y_test)):
        folder = root / "test" / EMOTIONS[label] if labelled_test else root / "test"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(folder / f"{i:03d}.png")
    (root / "train" / "HAPPY" / ".DS_Store").write_bytes(b"junk")


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path


# ---------------------------------------------------------------- layouts agree


def _check_kaggle(data, faces):
    x, y, x_test, _ = faces
    assert data.layout == LAYOUT_KAGGLE
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.test_ids, np.arange(N_TEST))
    assert data.x.dtype == np.uint8 and data.y.dtype == np.int8 and data.test_ids.dtype == np.int64


@pytest.mark.parametrize("newline,bom,suffix", [("\n", False, ".csv"), ("\r\n", True, ".csv"), ("\r\n", False, ".csv.gz")])
def test_kaggle_csv_variants(tmp_path, faces, newline, bom, suffix):
    train, test = kaggle_texts(faces)
    _write(tmp_path / f"train{suffix}", train, newline, bom)
    _write(tmp_path / f"test{suffix}", test, newline, bom)
    data = read_source(tmp_path)
    _check_kaggle(data, faces)
    assert data.y_test is None and data.predefined_val is None and data.skipped == []
    assert set(data.sources) == {tmp_path / f"train{suffix}", tmp_path / f"test{suffix}"}
    _check_kaggle(read_source(train=tmp_path / f"train{suffix}", test=tmp_path / f"test{suffix}"), faces)


def test_kaggle_zip_in_subfolder_and_test_labels(tmp_path, faces):
    train, test = kaggle_texts(faces, with_ids=False)
    folder = tmp_path / "raw"
    _write(folder / "comp" / "train.csv", train)
    _write(folder / "comp" / "test.csv", test)
    labels = "id,emotion\n" + "".join(f"{i},{k}\n" for i, k in reversed(list(enumerate(faces[3]))))
    _write(folder / "comp" / "test_labels.csv", labels)
    zip_path = zip_folder(folder, tmp_path / "data" / "competition.zip")
    data = read_source(tmp_path / "data")
    _check_kaggle(data, faces)
    np.testing.assert_array_equal(data.y_test, faces[3])
    assert data.sources == [zip_path]
    assert any("no id column" in note for note in data.notes)


def test_fer2013_and_icml_agree(tmp_path, faces):
    x, y, x_test, y_test = faces
    results = []
    for name, icml in (("fer2013.csv", False), ("icml_face_data.csv", True)):
        folder = tmp_path / name
        _write(folder / name, fer2013_text(faces, icml), "\r\n")
        results.append(read_source(folder))
    gz = _write(tmp_path / "fer2013.csv.gz", fer2013_text(faces))
    results.append(read_source(gz))
    with zipfile.ZipFile(tmp_path / "fer.zip", "w") as archive:
        archive.writestr("fer2013/fer2013.csv", fer2013_text(faces))
    results.append(read_source(tmp_path / "fer.zip"))
    assert results[0].layout == LAYOUT_FER2013 and results[1].layout == LAYOUT_ICML
    for data in results:
        np.testing.assert_array_equal(data.x, x)
        np.testing.assert_array_equal(data.y, y)
        np.testing.assert_array_equal(data.x_test, x_test)
        np.testing.assert_array_equal(data.y_test, y_test)
        np.testing.assert_array_equal(data.test_ids, np.arange(N_TEST))
        np.testing.assert_array_equal(data.predefined_val, np.arange(N_TRAIN + N_VAL) >= N_TRAIN)


def test_image_folders_and_zip_agree_with_csv(tmp_path, faces):
    x, y, x_test, y_test = faces
    write_images(tmp_path / "imgs", faces)
    data = read_source(tmp_path / "imgs")
    assert data.layout == LAYOUT_IMAGES
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    zip_path = zip_folder(tmp_path / "imgs", tmp_path / "imgs.zip", prefix="images/")
    zipped = read_source(zip_path)
    np.testing.assert_array_equal(zipped.x, x)
    np.testing.assert_array_equal(zipped.x_test, x_test)
    assert zipped.sources == [zip_path]


def test_image_flat_test_any_size_and_colour(tmp_path, faces):
    write_images(tmp_path, faces, labelled_test=False)
    Image.new("RGB", (96, 80), (200, 10, 10)).save(tmp_path / "train" / "HAPPY" / "big.jpg")
    data = read_source(tmp_path)
    assert data.y_test is None and len(data.x_test) == N_TEST
    assert data.x.shape == (N_TRAIN + N_VAL + 1, 48, 48)
    assert data.test_ids.tolist() == list(range(N_TEST))  # 000.png .. 006.png: the stems
    assert any("file name" in note for note in data.notes)


# ---------------------------------------------------------------- errors name file and line


def _kaggle_with(tmp_path, faces, train_rows=None, test_text=None, suffix=".csv"):
    train, test = kaggle_texts(faces)
    if train_rows is not None:
        lines = train.splitlines()
        for index, replacement in train_rows.items():
            lines[index] = replacement
        train = "\n".join(lines) + "\n"
    _write(tmp_path / f"train{suffix}", train)
    _write(tmp_path / f"test{suffix}", test_text if test_text is not None else test)
    return tmp_path / f"train{suffix}", tmp_path / f"test{suffix}"


def _error(tmp_path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        read_source(tmp_path, **kwargs)
    return info.value


@pytest.mark.parametrize("row,expect", [
    ("3," + " ".join(["1"] * 2303), "found 2,303"),
    ("3," + " ".join(["1"] * 2305), "found 2,305"),
    ("3," + " ".join(["1"] * 10 + ["256"] + ["1"] * 2293), "pixel 11 is '256'"),
    ("3," + " ".join(["1"] * 10 + ["-4"] + ["1"] * 2293), "pixel 11 is '-4'"),
    ("3," + " ".join(["1"] * 10 + ["1234"] + ["1"] * 2293), "pixel 11 is '1234'"),
    ("3," + " ".join(["1"] * 10 + ["1.5"] + ["1"] * 2293), "pixel 11 is '1.5'"),
    ("9," + " ".join(["1"] * 2304), "emotion is '9'"),
    ("x," + " ".join(["1"] * 2304), "emotion is 'x'"),
    ("3", "expected 2 fields"),
])
def test_bad_row_names_file_and_line(tmp_path, faces, row, expect):
    train, _ = _kaggle_with(tmp_path, faces, {5: row})
    error = _error(tmp_path)
    assert error.file == str(train) and error.line == 6 and expect in error.detail, str(error)
    assert str(train) in str(error) and "line 6" in str(error)


def test_odd_whitespace_is_accepted(tmp_path, faces):
    row = "3, " + "  ".join(["1"] * 2304) + "  "
    _kaggle_with(tmp_path, faces, {5: row})
    data = read_source(tmp_path)
    assert (data.x[4] == 1).all() and data.y[4] == 3


def test_vectorised_and_general_row_paths_agree(tmp_path, faces):
    """Regular blocks are split with vectorised code, irregular ones (here: a blank line) with
    the per-line loop: both keep the same rows and report the same reasons and lines."""
    ones = ["1"] * 2304
    rows = {
        2: "3," + " ".join(ones).replace(" ", ",", 1),  # a comma inside the pixels
        3: "3," + " ".join(ones) + ",",  # a trailing comma
        4: "3,," + " ".join(ones),  # an empty field
        5: "03," + " ".join(ones),  # accepted: label 3
        6: " 4 ," + " ".join(ones),  # accepted: label 4
        7: "3," + " ".join(ones[:5] + ["1\x002"] + ones[6:]),  # a NUL byte in a token
        8: "3," + " ".join(ones[:5] + [""] + ones[6:]),  # an empty token (two spaces)
        9: "3," + "  ".join(ones),  # accepted: odd whitespace
        10: "3," + " ".join(ones[:-1] + ["0255"]),  # accepted by the exact path: 255
        11: "7," + " ".join(ones),
        12: "3," + " ".join(ones[:-1] + ["25 6"]),
    }
    results = []
    for blank in ("", "\n"):
        train, _ = _kaggle_with(tmp_path, faces, rows)
        train.write_text(train.read_text() + blank)
        data = read_source(tmp_path, on_bad_row="skip")
        results.append(data)
    fast, general = results
    assert fast.skipped == general.skipped
    expected = [(3, "expected 2 fields (emotion,pixels), found 3"), (4, "found 3"), (5, "found 3"),
                (8, "pixel 6 is '1\\x002'"), (9, "found 2,303"), (12, "emotion is '7'"),
                (13, "expected 2,304 pixel values, found 2,305")]
    assert len(fast.skipped) == len(expected)
    for entry, (line, reason) in zip(fast.skipped, expected):
        assert entry["line"] == line and reason in entry["reason"], entry
    np.testing.assert_array_equal(fast.x, general.x)
    np.testing.assert_array_equal(fast.y, general.y)
    assert fast.y[1:4].tolist() == [3, 4, 3] and (fast.x[1:4] == 1).all()  # lines 6, 7, 10
    assert fast.x[4].ravel()[-1] == 255 and (fast.x[4].ravel()[:-1] == 1).all()  # line 11


def test_skip_mode_drops_and_lists(tmp_path, faces):
    train, _ = _kaggle_with(tmp_path, faces, {3: "9," + _pixels(faces[0][0]), 7: "1,1 2 3"})
    data = read_source(tmp_path, on_bad_row="skip")
    assert len(data.x) == N_TRAIN + N_VAL - 2
    assert [(s["file"], s["line"]) for s in data.skipped] == [(str(train), 4), (str(train), 8)]
    kept = np.delete(np.arange(N_TRAIN + N_VAL), [2, 6])
    np.testing.assert_array_equal(data.x, faces[0][kept])


def test_missing_column(tmp_path, faces):
    _, test = kaggle_texts(faces)
    test_path = tmp_path / "test.csv"
    _write(tmp_path / "train.csv", "label,image\n1,2\n")
    _write(test_path, test)
    error = _error(tmp_path, on_bad_row="skip")
    assert error.line == 1 and "missing column emotion, pixels" in error.detail and "'label'" in error.detail


@pytest.mark.parametrize("content,expect", [(b"", "empty"), (b"emotion,pixels\r\n", "no rows")])
def test_empty_files(tmp_path, faces, content, expect):
    _kaggle_with(tmp_path, faces)
    (tmp_path / "train.csv").write_bytes(content)
    assert expect in _error(tmp_path).detail


def test_duplicate_test_ids(tmp_path, faces):
    x_test = faces[2]
    text = "id,pixels\n" + "".join(f"{i % 5},{_pixels(face)}\n" for i, face in enumerate(x_test))
    _, test = _kaggle_with(tmp_path, faces, test_text=text)
    error = _error(tmp_path)
    assert error.file == str(test) and error.line == 7 and "duplicate test id 0 (first seen at line 2)" in error.detail


def test_test_labels_must_cover_every_id(tmp_path, faces):
    _kaggle_with(tmp_path, faces)
    _write(tmp_path / "test_labels.csv", "id,emotion\n0,1\n1,2\n")
    assert "no label for 5 test id(s)" in _error(tmp_path).detail


def test_truncated_and_corrupt_gzip(tmp_path, faces):
    train, _ = _kaggle_with(tmp_path, faces, suffix=".csv.gz")
    whole = train.read_bytes()
    train.write_bytes(whole[: len(whole) // 2])
    error = _error(tmp_path, on_bad_row="skip")
    assert error.file == str(train) and "truncated" in error.detail
    train.write_bytes(whole[:30] + bytes(200) + whole[230:])
    assert _error(tmp_path).file == str(train)


def test_bad_zip_and_bad_image(tmp_path, faces):
    (tmp_path / "data.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        read_source(tmp_path / "data.zip")
    write_images(tmp_path / "imgs", faces)
    bad = tmp_path / "imgs" / "train" / "FEAR" / "broken.png"
    bad.write_bytes(b"\x89PNG nope")
    with pytest.raises(DataError) as info:
        read_source(tmp_path / "imgs")
    assert info.value.file == str(bad) and "unreadable image" in info.value.detail
    data = read_source(tmp_path / "imgs", on_bad_row="skip")
    assert len(data.x) == N_TRAIN + N_VAL and data.skipped[0]["file"] == str(bad)


def test_unreadable_file(tmp_path, faces):
    with pytest.raises(FerkaggleError, match="no such file"):
        read_source(train=tmp_path / "nope.csv", test=tmp_path / "nope2.csv")
    (tmp_path / "train.csv").mkdir()
    _write(tmp_path / "test.csv", "pixels\n1\n")
    with pytest.raises(FerkaggleError, match="folder"):
        read_source(train=tmp_path / "train.csv", test=tmp_path / "test.csv")


def test_find_source_says_what_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FerkaggleError, match="train.csv \\+ test.csv, fer2013.csv"):
        find_source(tmp_path)


def test_real_data_in_a_subfolder_wins_over_the_generated_demo(tmp_path, faces):
    train, test = kaggle_texts(faces)
    for sub in ("demo", "competition"):
        _write(tmp_path / sub / "train.csv", train)
        _write(tmp_path / sub / "test.csv", test)
    assert find_source(tmp_path).location == tmp_path / "competition"
    _write(tmp_path / "other" / "fer2013.csv", fer2013_text(faces))
    with pytest.raises(FerkaggleError, match="several data sets found"):
        find_source(tmp_path)


def test_nothing_found_is_its_own_error_type(tmp_path):
    with pytest.raises(NoDataFound):
        find_source(tmp_path)


def test_default_folder_is_data(tmp_path, faces, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, test = kaggle_texts(faces)
    _write(tmp_path / "data" / "train.csv", train)
    _write(tmp_path / "data" / "test.csv", test)
    (tmp_path / "data" / "prepared").mkdir()
    _check_kaggle(read_source(), faces)


def test_fast_path_matches_slow_path_on_many_rows():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (300, 2304))
    fields = [" ".join(map(str, row)).encode() for row in x]
    parsed, problems = parse_pixel_rows(fields)
    assert problems == {}
    np.testing.assert_array_equal(parsed, x)


@pytest.mark.slow
def test_real_fer2013(shared_fer):
    data = read_source(train=shared_fer / "train.csv.gz", test=shared_fer / "test.csv.gz")
    assert data.x.shape == (28709, 48, 48) and data.x_test.shape == (7178, 48, 48)
    assert np.bincount(data.y).tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]


def test_skip_never_drops_a_test_row(tmp_path, faces):
    """--on-bad-row skip drops bad labelled rows only: a bad test row (Kaggle test.csv, a fer2013
    PrivateTest row or one whose Usage is unreadable) is an error naming file and line."""
    x, y, x_test, y_test = faces
    _, test = _kaggle_with(tmp_path / "k", faces)
    lines = test.read_text().splitlines()
    lines[4] = "3,1 2 3"  # data row 4 (id 3), file line 5
    test.write_text("\n".join(lines) + "\n")
    error = _error(tmp_path / "k", on_bad_row="skip")
    assert error.file == str(test) and error.line == 5 and "never skipped" in error.detail
    for icml in (False, True):  # quoted pixels take the per-line reader, unquoted ones the vectorised one
        name = "icml_face_data.csv" if icml else "fer2013.csv"
        fer = tmp_path / name / name

        def row(label, usage, pixels, extra=""):
            return f"{label},{usage},{extra}{pixels}" if icml else f'{label},{extra}"{pixels}",{usage}'

        base = fer2013_text(faces, icml).splitlines()
        private_line = N_TRAIN + N_VAL + 3  # the 2nd PrivateTest row (line 1 is the header)
        for bad, what in ((row(y_test[1], "PrivateTest", "1 2 3"), "expected 2,304"),
                          (row(y_test[1], "Private", _pixels(x_test[1])), "Usage is 'Private'"),
                          (row(y_test[1], "PrivateTest", _pixels(x_test[1]), extra=","), "fields")):
            rows = list(base)
            rows[private_line - 1] = bad
            _write(fer, "\n".join(rows) + "\n")
            with pytest.raises(DataError) as info:
                read_source(fer, on_bad_row="skip")
            assert info.value.line == private_line and what in info.value.detail, (icml, info.value)
            assert "never skipped" in info.value.detail
        # A bad Training row is still skipped, and the PrivateTest ids stay 0..M-1.
        rows = list(base)
        rows[2] = row(y[1], "Training", "1 2 3")
        _write(fer, "\n".join(rows) + "\n")
        data = read_source(fer, on_bad_row="skip")
        assert [s["line"] for s in data.skipped] == [3] and len(data.x) == N_TRAIN + N_VAL - 1
        np.testing.assert_array_equal(data.test_ids, np.arange(N_TEST))
        np.testing.assert_array_equal(data.x_test, x_test)
