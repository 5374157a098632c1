"""`best` and `latest` only ever look at the current prepared split, and stop with one clear line
when there is none; runs on another split are never chosen, however good."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import make_fake_run
from ferkaggle.cli import app
from ferkaggle.errors import FerkaggleError
from ferkaggle.runs import load_run, select_run


def _other_split(in_tmp):
    import numpy as np

    from ferkaggle.data.prepared import write_prepared
    from ferkaggle.data.synthetic import make_faces

    x, y = make_faces(150, seed=9)
    xt, yt = make_faces(20, seed=10)
    fold = (np.arange(150) % 2).astype(np.int8)
    fold[::4] = -1
    return write_prepared(in_tmp / "data" / "prepared", "other", x=x, y=y, fold=fold, x_test=xt,
                          test_ids=np.arange(100, 120, dtype=np.int64), y_test=yt, manifest={"layout": "synthetic"})


@pytest.fixture
def board(tiny_prepared, in_tmp):
    runs = {"strong": make_fake_run(tiny_prepared, "strong", 0.8, seed=1),
            "weak": make_fake_run(tiny_prepared, "weak", 0.2, seed=2)}
    other = _other_split(in_tmp)  # LATEST now points at `other`
    runs["elsewhere"] = make_fake_run(other, "elsewhere", 1.0, seed=3)
    assert runs["elsewhere"].val_accuracy > runs["strong"].val_accuracy > runs["weak"].val_accuracy
    return runs, tiny_prepared, other, in_tmp / "data" / "prepared" / "LATEST"


def test_best_and_latest_stay_on_the_current_split(board):
    runs, tiny, other, latest = board
    latest.write_text("tiny\n")
    assert select_run("best").run_id == runs["strong"].run_id  # not the better run on `other`
    assert select_run("latest").run_id == runs["weak"].run_id  # not the newer run on `other`
    assert load_run("best").run_id == runs["strong"].run_id  # every caller of load_run gets the same rule
    latest.write_text("other\n")
    assert select_run("best").run_id == runs["elsewhere"].run_id
    assert select_run("latest").run_id == runs["elsewhere"].run_id


def test_without_a_current_split_best_and_latest_stop_with_one_line(board):
    runs, *_, latest = board
    latest.unlink()
    for ref in ("best", "latest"):
        with pytest.raises(FerkaggleError, match="current prepared data"):
            select_run(ref)
    result = CliRunner().invoke(app, ["submit", "--run", "best"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "ferkaggle prepare" in lines[0], result.output
    assert not (latest.parent.parent.parent / "submissions").exists()
    # A run named by id needs no current split.
    assert select_run(runs["weak"].run_id).run_id == runs["weak"].run_id


def test_a_split_with_no_runs_is_a_clear_error(board):
    runs, tiny, other, latest = board
    from ferkaggle.runs import remove_run

    latest.write_text("other\n")
    remove_run(runs["elsewhere"])
    with pytest.raises(FerkaggleError, match="no completed run"):
        select_run("best")
