"""Acceptance (issue 8): test rows are never dropped and ids never shift, end to end.

prepare -> a tiny baseline run -> submit, through the CLI, then every id and label of the
submission is checked against truth computed here from the source file itself: the id of each
data row (its id column, or its position), and the argmax of the run's saved test probability
for that row (after checking that the prepared test row is that row's pixels).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.data.prepared import load_prepared
from ferkaggle.data.synthetic import make_faces
from ferkaggle.runs.registry import list_runs

runner = CliRunner()


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _pixels(face: np.ndarray) -> str:
    return " ".join(map(str, face.ravel().tolist()))


def _write_train(path, bad_line: bool = False) -> None:
    x, y = make_faces(140, seed=11)
    rows = [f"{k},{_pixels(f)}" for f, k in zip(x, y)]
    if bad_line:
        rows.insert(20, "3,1 2 3")  # a bad labelled row: --on-bad-row skip drops it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("emotion,pixels\n" + "\n".join(rows) + "\n")


def _source_rows(path) -> list[tuple[int | None, np.ndarray]]:
    """(id or None, pixels) of each data row of a test CSV, parsed plainly."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    out = []
    for line in lines[1:]:
        fields = line.split(",")
        pixels = np.array([int(v) for v in fields[header.index("pixels")].split()], np.uint8).reshape(48, 48)
        out.append((int(fields[header.index("id")]) if "id" in header else None, pixels))
    return out


def _run(*args: str):
    return runner.invoke(app, list(args))


def _prepare_run_submit(source: str) -> tuple[dict[int, int], np.ndarray, np.ndarray]:
    """prepare -> baseline (naive Bayes) -> submit; (submission id -> label, the run's test_proba, prepared x_test)."""
    result = _run("prepare", "--source", source, "--folds", "2", "--on-bad-row", "skip", "--out", f"prep-{source}")
    assert result.exit_code == 0, _plain(result.output)
    folder = Path(f"prep-{source}") / (Path(f"prep-{source}") / "LATEST").read_text().strip()
    result = _run("baseline", "--model", "nb", "--data", str(folder))
    assert result.exit_code == 0, _plain(result.output)
    run = [r for r in list_runs() if r.kind == "baseline"][-1]
    result = _run("submit", "--run", run.run_id, "--out", f"sub-{source}")
    assert result.exit_code == 0, _plain(result.output)
    (csv,) = Path(f"sub-{source}").glob("*.csv")
    lines = csv.read_text().splitlines()
    assert lines[0] == "id,emotion"
    submitted: dict[int, int] = {}
    for line in lines[1:]:
        test_id, label = line.split(",")
        assert int(test_id) not in submitted, f"id {test_id} twice"
        submitted[int(test_id)] = int(label)
    return submitted, np.load(run.dir / "test_proba.npy"), np.asarray(load_prepared(folder).x_test)


def _check_against_source(test_csv, submitted, proba, x_test) -> None:
    rows = _source_rows(test_csv)
    assert len(submitted) == len(rows) == len(proba) == len(x_test)  # every test row, none dropped
    for position, (source_id, pixels) in enumerate(rows):
        expected_id = source_id if source_id is not None else position  # the id column, else the row's position
        np.testing.assert_array_equal(x_test[position], pixels)  # probability row `position` is this row's face
        assert submitted[expected_id] == int(np.argmax(proba[position])), f"id {expected_id}"


def test_bad_test_row_stops_prepare_and_ids_never_shift(in_tmp):
    x_test, _ = make_faces(30, seed=12)
    # 1. An id-less test.csv with a bad middle row, under --on-bad-row skip: one clear error, nothing written.
    _write_train(in_tmp / "a" / "train.csv")
    rows = [_pixels(f) for f in x_test]
    rows[14] = "1 2 3"  # data row 15 = file line 16
    (in_tmp / "a" / "test.csv").write_text("pixels\n" + "\n".join(rows) + "\n")
    result = _run("prepare", "--source", "a", "--folds", "2", "--on-bad-row", "skip", "--out", "prep-a")
    out = _plain(result.output).strip()
    assert result.exit_code == 1 and "Traceback" not in out and len(out.splitlines()) == 1, out
    assert "test.csv, line 16" in out and "never skipped" in out
    assert not (in_tmp / "prep-a").exists()

    # 2. The same id-less file, repaired: ids are the row positions, labels the argmax of those rows.
    rows[14] = _pixels(x_test[14])
    (in_tmp / "a" / "test.csv").write_text("pixels\n" + "\n".join(rows) + "\n")
    submitted, proba, prepared_x_test = _prepare_run_submit("a")
    assert sorted(submitted) == list(range(30))
    _check_against_source(in_tmp / "a" / "test.csv", submitted, proba, prepared_x_test)


def test_shuffled_test_ids_end_to_end_with_skipped_training_rows(in_tmp):
    x_test, _ = make_faces(30, seed=13)
    ids = np.random.default_rng(0).permutation(np.arange(1000, 1000 + 7 * 30, 7))  # unsorted, not consecutive
    _write_train(in_tmp / "b" / "train.csv", bad_line=True)
    test_csv = in_tmp / "b" / "test.csv"
    body = [f"{i},{_pixels(f)}" for i, f in zip(ids.tolist(), x_test)]
    # A bad test row with an id column is an error too (skipping it would leave its id out).
    bad = body.copy()
    bad[9] = f"{ids[9]},1 2 3"
    test_csv.write_text("id,pixels\n" + "\n".join(bad) + "\n")
    result = _run("prepare", "--source", "b", "--folds", "2", "--on-bad-row", "skip", "--out", "prep-b")
    assert result.exit_code == 1 and "test.csv, line 11" in _plain(result.output)
    test_csv.write_text("id,pixels\n" + "\n".join(body) + "\n")
    submitted, proba, prepared_x_test = _prepare_run_submit("b")
    assert sorted(submitted) == sorted(ids.tolist())
    _check_against_source(test_csv, submitted, proba, prepared_x_test)
