"""The demo-data and prepare commands through Typer's CliRunner."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.data import prepare as prepare_stage

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args))


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_demo_data_then_prepare(in_tmp):
    result = _run("demo-data", "--out", "comp", "--train-size", "300", "--test-size", "40", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert (in_tmp / "comp" / "train.csv").is_file()
    result = _run("prepare", "--source", "comp", "--folds", "3", "--out", "prep")
    out = _plain(result.output)
    assert result.exit_code == 0, out
    assert "Kaggle CSV" in out and "happy" in out and "disgust" in out and "prepared" in out
    assert (in_tmp / "prep" / "LATEST").is_file()
    result = _run("prepare", "--source", "comp", "--folds", "3", "--out", "prep")
    assert result.exit_code == 0 and "reused cached prepared data" in _plain(result.output)
    # Existing demo files are not replaced without --force.
    result = _run("demo-data", "--out", "comp", "--train-size", "300", "--test-size", "40")
    assert result.exit_code == 1 and "already exist" in _plain(result.output)


def test_explicit_files_and_dedupe_report(in_tmp):
    from helpers.duplicates import write_duplicate_competition

    write_duplicate_competition(in_tmp / "d")  # hand-counted duplicates: see tests/helpers/duplicates.py
    result = _run("prepare", "--train", "d/train.csv", "--test", "d/test.csv", "--folds", "2", "--val-size", "0.2")
    out = _plain(result.output)
    assert result.exit_code == 0, out
    assert "duplicates among 47 labelled rows: 4 extra exact copies (3 images repeated), 2 more near copies" in out
    assert "41 groups, 11 rows in groups of 2+, largest 3" in out
    assert "leak check after the split: 0 exact images and 0 groups" in out
    assert "conflicting labels: 2 rows in 1 images whose copies disagree: kept" in out
    assert "blank (constant) images: 2 labelled" in out and ", 1 in test" in out
    assert "train ∩ test: 1 labelled rows show an exact test image (4 near): kept in training" in out
    assert (in_tmp / "data" / "prepared" / "LATEST").is_file()
    result = _run("prepare", "--train", "d/train.csv", "--test", "d/test.csv", "--folds", "2", "--val-size", "0.2", "--dedupe")
    out = _plain(result.output)
    assert result.exit_code == 0, out
    assert "--dedupe dropped 4 labelled rows: 2 with conflicting labels, 2 blank (0 both)" in out


def test_bad_input_is_one_line_and_writes_nothing(in_tmp):
    assert _run("demo-data", "--out", "d", "--train-size", "60", "--test-size", "10").exit_code == 0
    with open(in_tmp / "d" / "train.csv", "a") as f:
        f.write("3,not pixels\n")
    result = _run("prepare", "--source", "d", "--out", "prep")
    out = _plain(result.output).strip()
    assert result.exit_code == 1
    assert "Traceback" not in out
    assert out.startswith("error:") and "train.csv" in out and len(out.splitlines()) == 1
    assert not (in_tmp / "prep").exists()


def test_bad_on_bad_row_value_is_refused_before_anything_is_read(in_tmp):
    result = _run("prepare", "--source", "nowhere", "--on-bad-row", "drop", "--out", "prep")
    out = " ".join(_plain(result.output).replace("│", " ").split())
    assert result.exit_code == 2 and "'drop' is not one of 'error', 'skip'" in out, out  # a usage error, as click gives
    assert not (in_tmp / "prep").exists()


def test_missing_source_without_demo_is_an_error(in_tmp):
    result = _run("prepare", "--out", "prep")
    assert result.exit_code == 1 and _plain(result.output).strip() == (
        "error: data: no such file or folder; expected a folder, .zip or fer2013.csv holding the competition "
        "data (train.csv + test.csv, or fer2013.csv)")
    assert not (in_tmp / "prep").exists()


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("source", ["./fer2031", "empty"])
def test_an_explicit_source_is_never_replaced_by_the_demo(in_tmp, source):
    """A mistyped or empty --source is one line and exit 1 even with --demo-if-missing: no demo
    written beside it, no prepared data, the working folder exactly as it was."""
    (in_tmp / "empty").mkdir()
    (in_tmp / "data").mkdir()  # the default source is there too, and empty: still not used
    before = _tree(in_tmp)
    result = _run("prepare", "--source", source, "--demo-if-missing")
    out = _plain(result.output).strip()
    assert result.exit_code == 1 and len(out.splitlines()) == 1 and "Traceback" not in out, out
    assert out.startswith(f"error: {source.removeprefix('./')}: no ") and "competition data" in out, out
    assert "train.csv" in out and "fer2013.csv" in out, out  # what was expected there
    assert _tree(in_tmp) == before
    assert not (in_tmp / "fer2031").exists()


def test_demo_if_missing(in_tmp, monkeypatch):
    # The default demo is sized for `make submit`; a small one keeps this test fast. prepare.py
    # looks the sizes up in its own namespace (it imports them from synthetic.py), so patch there.
    monkeypatch.setattr(prepare_stage, "DEFAULT_DEMO_TRAIN", 300)
    monkeypatch.setattr(prepare_stage, "DEFAULT_DEMO_TEST", 40)
    result = _run("prepare", "--demo-if-missing", "--folds", "3")
    out = _plain(result.output)
    assert result.exit_code == 0, out
    assert "DEMO" in out and "to use real data" in out
    train_csv = in_tmp / "data" / "demo" / "train.csv"
    assert len(train_csv.read_text().splitlines()) == 1 + 300  # the patched size: a header and 300 faces
    result = _run("prepare", "--demo-if-missing", "--folds", "3")
    out = _plain(result.output)
    assert "DEMO" in out and "reused cached prepared data" in out
    # --source naming the default folder is the default folder: the demo is used there too.
    result = _run("prepare", "--source", str(in_tmp / "data"), "--demo-if-missing", "--folds", "3", "-q")
    out = _plain(result.output)
    assert result.exit_code == 0 and "DEMO" in out and "reused cached prepared data" in out, out
    assert "to use real data" not in out and "class counts" not in out  # --quiet: warnings and the result only


@pytest.mark.parametrize("command", ["prepare", "demo-data"])
def test_help_reads_well(command):
    result = _run(command, "--help")
    out = _plain(result.output)
    assert result.exit_code == 0 and "Example:" in out and "Outputs" in out
