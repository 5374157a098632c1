"""Submission writing and validation: every defect gets its own message."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.data.prepared import write_prepared
from ferkaggle.data.synthetic import make_faces
from ferkaggle.results.submission import validate_submission, write_submission
from helpers.copies import MODEL, copies_prepared, truth
from helpers.fakes import make_fake_run

runner = CliRunner()


def _write(path, text):
    path.write_text(text)
    return path


def _shuffled_ids_prepared(root, n_test=60):
    """Prepared data whose test ids are large, non-sequential and in no sorted order."""
    x, y = make_faces(200, seed=0)
    x_test, y_test = make_faces(n_test, seed=1)
    fold = (np.arange(200) % 3).astype(np.int8)
    fold[::5] = -1
    ids = np.random.default_rng(7).choice(10**6, size=n_test, replace=False).astype(np.int64)
    assert not (np.diff(ids) > 0).all()
    return write_prepared(root, "shuffled", x=x, y=y, fold=fold, x_test=x_test, test_ids=ids, y_test=y_test,
                          manifest={"layout": "synthetic"})


def _labels_by_id(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "id,emotion"
    pairs = [tuple(int(v) for v in line.split(",")) for line in lines[1:]]
    return pairs


def test_written_labels_are_the_argmax_for_each_id(in_tmp):
    prepared = _shuffled_ids_prepared(in_tmp / "data" / "prepared")
    run = make_fake_run(prepared, "rf", skill=0.6)
    proba = np.load(run.dir / "test_proba.npy")  # what the run saved, read directly
    ids = np.load(prepared.path / "test_ids.npy")  # the source ids, in test-file order
    first = write_submission(run, in_tmp / "submissions")
    second = write_submission(run, in_tmp / "submissions", now=None)
    assert first.path != second.path and first.path.exists() and second.path.exists()
    pairs = _labels_by_id(first.path)
    assert [i for i, _ in pairs] == ids.tolist()  # test-file order, the source's own ids
    expected = {int(i): int(np.argmax(p)) for i, p in zip(ids, proba)}
    assert dict(pairs) == expected and len(pairs) == len(expected)
    assert validate_submission(first.path, ids).ok
    assert first.test_accuracy == pytest.approx(float(np.mean([expected[i] == t for i, t in zip(ids, prepared.y_test)])))


def test_write_submission_keeps_an_existing_file(tiny_prepared, in_tmp):
    import datetime as dt

    run = make_fake_run(tiny_prepared, "rf", skill=0.8)
    now = dt.datetime(2026, 11, 23, 10, 15, 0)
    target = in_tmp / "submissions" / f"2026-11-23_101500_{run.run_id}.csv"
    target.parent.mkdir()
    target.write_text("precious\n")
    result = write_submission(run, in_tmp / "submissions", now=now)
    assert target.read_text() == "precious\n" and result.path != target


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "empty"),
        ("ID,label\n0,1\n", "header"),
        ("id,emotion\n0,1\n1,2\n", "missing"),  # too few ids
        ("id,emotion\n{all}\n0,3\n", "duplicate"),
        ("id,emotion\n{all}\n999,3\n", "not in the test set"),
        ("id,emotion\n{all_bad_label}\n", "outside 0-6"),
        ("id,emotion\n{all}\nx,3\n", "not an integer"),
        ("id,emotion\n{all}\n5,3,1\n", "fields"),
    ],
)
def test_validate_names_each_defect(tmp_path, body, needle):
    ids = np.arange(10, dtype=np.int64)
    rows = "\n".join(f"{i},{i % 7}" for i in ids)
    bad_label = "\n".join(f"{i},{9 if i == 4 else 1}" for i in ids)
    path = _write(tmp_path / "s.csv", body.format(all=rows, all_bad_label=bad_label))
    result = validate_submission(path, ids)
    assert not result.ok
    assert any(needle in p for p in result.problems), result.problems
    assert all(str(path) in p for p in result.problems)


def test_validate_accepts_crlf_and_bom(tmp_path):
    ids = np.arange(3, dtype=np.int64)
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffid,emotion\r\n0,1\r\n2,6\r\n1,0\r\n".encode("utf-8"))
    assert validate_submission(path, ids).ok


def test_validate_cli_exit_codes(tiny_prepared, in_tmp):
    good = in_tmp / "good.csv"
    good.write_text("id,emotion\n" + "".join(f"{i},1\n" for i in tiny_prepared.test_ids))
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid: ") and "invalid" not in result.output
    assert f"has {len(tiny_prepared.test_ids)} rows, one per test id" in result.output
    bad = in_tmp / "bad.csv"
    bad.write_text("id,emotion\n0,8\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "outside 0-6" in result.output and "missing" in result.output
    result = runner.invoke(app, ["validate", str(in_tmp / "nope.csv")])
    assert result.exit_code == 1 and "no such file" in result.output and "Traceback" not in result.output


def test_submit_cli_best_run(in_tmp):
    prepared = _shuffled_ids_prepared(in_tmp / "data" / "prepared")
    make_fake_run(prepared, "weak", skill=0.2, seed=1)
    strong = make_fake_run(prepared, "strong", skill=0.9, seed=2)
    result = runner.invoke(app, ["submit", "--run", "best"])
    assert result.exit_code == 0, result.output
    written = list((in_tmp / "submissions").glob("*.csv"))
    assert len(written) == 1 and strong.run_id in written[0].name
    assert "local test accuracy" in result.output
    ids, proba = np.load(prepared.path / "test_ids.npy"), np.load(strong.dir / "test_proba.npy")
    assert dict(_labels_by_id(written[0])) == {int(i): int(np.argmax(p)) for i, p in zip(ids, proba)}


def test_submit_without_runs_is_one_clear_line(tiny_prepared, in_tmp):
    result = runner.invoke(app, ["submit"])
    assert result.exit_code == 1
    assert "no completed run" in result.output and "Traceback" not in result.output
    assert not (in_tmp / "submissions").exists()


def test_kaggle_without_credentials_is_one_clear_line(tiny_prepared, in_tmp, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(in_tmp / "no-kaggle"))
    make_fake_run(tiny_prepared, "rf", skill=0.8)
    for args in (["submit", "--kaggle", "some-competition", "--message", "hi"], ["download", "some-competition"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and ("kaggle package is not installed" in lines[0] or "no Kaggle credentials" in lines[0])
    assert not (in_tmp / "submissions").exists()  # nothing written when the upload cannot happen


def _copies_run(in_tmp):
    """A run on the hand-built copies set whose saved test probabilities argmax to `model`."""
    prepared, model = copies_prepared(in_tmp / "data" / "prepared")
    run = make_fake_run(prepared, "rf", skill=0.5)
    proba = np.full((len(model), 7), 0.05, np.float32)
    proba[np.arange(len(model)), model] = 0.7
    np.save(run.dir / "test_proba.npy", proba)
    return prepared, run, model


def test_submit_copies_writes_the_copies_majority_and_counts_it(in_tmp):
    prepared, run, model = _copies_run(in_tmp)
    saved = (run.dir / "test_proba.npy").read_bytes()
    result = runner.invoke(app, ["submit", "--run", run.run_id, "--copies"])
    assert result.exit_code == 0, result.output
    (path,) = (in_tmp / "submissions").glob("*.csv")
    majority, copies = truth(np.load(prepared.path / "x.npy"), np.load(prepared.path / "y.npy"),
                             np.load(prepared.path / "x_test.npy"))
    expected = [m if m >= 0 else int(k) for m, k in zip(majority, model)]
    ids = np.load(prepared.path / "test_ids.npy").tolist()
    assert _labels_by_id(path) == list(zip(ids, expected))
    assert [label for _, label in _labels_by_id(path)][:5] == [3, MODEL[1], 6, 1, 0]
    with_copies = sum(c > 0 for c in copies)
    changed = sum(m >= 0 and m != k for m, k in zip(majority, model))
    ties = sum(c > 0 and m < 0 for m, c in zip(majority, copies))
    assert (with_copies, changed, ties) == (5, 3, 1)  # rows 0, 2, 3 change; row 4 agrees; row 1 ties
    assert (f"--copies: {with_copies} test rows have exact copies among the labelled faces; "
            f"{changed} labels changed from the model's, {ties} ties kept the model's label") in " ".join(result.output.split())
    y_test = np.load(prepared.path / "y_test.npy")
    assert f"local test accuracy (the test set has labels): {np.mean(np.asarray(expected) == y_test):.4f}" in result.output
    assert np.mean(np.asarray(expected) == y_test) > np.mean(model == y_test)  # the file's accuracy, not the model's
    assert validate_submission(path, ids).ok
    assert (run.dir / "test_proba.npy").read_bytes() == saved  # the run's probabilities are untouched


def test_submit_without_copies_is_unchanged(in_tmp):
    prepared, run, model = _copies_run(in_tmp)
    result = runner.invoke(app, ["submit", "--run", run.run_id])
    assert result.exit_code == 0, result.output
    assert "--copies" not in result.output
    (path,) = (in_tmp / "submissions").glob("*.csv")
    assert _labels_by_id(path) == list(zip(np.load(prepared.path / "test_ids.npy").tolist(), model.tolist()))
    assert write_submission(run, in_tmp / "submissions").copies is None


def test_submit_copies_without_the_prepared_data_is_one_clear_line(in_tmp):
    prepared, run, _ = _copies_run(in_tmp)
    shutil.rmtree(prepared.path)
    result = runner.invoke(app, ["submit", "--run", run.run_id, "--copies"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "which is gone" in lines[0] and "Traceback" not in result.output
    assert not (in_tmp / "submissions").exists()
