"""`best` and `latest` only ever look at the current prepared split, and stop with one clear line
when there is none; runs on another split are never chosen, however good."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import scores
from ferkaggle.data.prepared import write_prepared
from ferkaggle.data.synthetic import make_faces
from ferkaggle.results.ensemble import best_on_halves, halves
from ferkaggle.runs.registry import RunWriter, list_runs, load_run, read_run, remove_run
from ferkaggle.runs.select import best_candidates, select_run
from helpers.fakes import make_fake_run


def _other_split(in_tmp):
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
    with pytest.raises(ValueError, match="select_run"):  # never a run whose id happens to contain "best"
        load_run("best")
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

    latest.write_text("other\n")
    remove_run(runs["elsewhere"])
    with pytest.raises(FerkaggleError, match="no completed run"):
        select_run("best")


def _run_right_on(prepared, name: str, right):
    """A run whose holdout argmax is the label exactly on the rows where `right` is True."""
    y = np.asarray(prepared.y_val)
    val = np.full((len(y), 7), 0.05, np.float32)
    val[np.arange(len(y)), np.where(right, y, (y + 1) % 7)] = 0.7
    test = np.full((len(prepared.x_test), 7), 1 / 7, np.float32)
    with RunWriter("baseline", name, {}, prepared, seed=0, summary=name) as writer:
        writer.save_probas(val=val, test=test)
        s = scores(y, val)
        writer.save_metrics({"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"]})
    return read_run(writer.dir)


def test_best_is_scored_free_of_its_own_choice(tiny_prepared, in_tmp):
    """A run that is perfect on one holdout half and poor on the other tops the holdout; `best`'s
    figure for it is the score it was chosen on. Chosen on one half and scored on the other, the
    choice is worth what the hand count says, well under that figure."""
    y = np.asarray(tiny_prepared.y_val)
    n = len(y)
    half_a, half_b = halves(y, 42)
    lucky_right = np.zeros(n, bool)
    lucky_right[half_a] = True                              # every row of half A
    lucky_right[half_b[: len(half_b) * 2 // 5]] = True      # 40% of half B
    solid_right = np.arange(n) % 5 < 3                      # 60% of the rows, evenly
    lucky = _run_right_on(tiny_prepared, "lucky", lucky_right)
    solid = _run_right_on(tiny_prepared, "solid", solid_right)
    assert select_run("best").run_id == lucky.run_id and lucky.val_accuracy > solid.val_accuracy
    # Half A picks lucky (all right there), scored on B; half B picks solid if it beats lucky's 40% there.
    assert solid_right[half_b].mean() > lucky_right[half_b].mean()
    expected = (lucky_right[half_b].sum() + solid_right[half_a].sum()) / n
    estimate = best_on_halves(best_candidates(list_runs()), y)
    assert estimate["accuracy"] == pytest.approx(expected)
    assert (estimate["picked_on_half_a"], estimate["picked_on_half_b"]) == (lucky.run_id, solid.run_id)
    assert estimate["accuracy"] < lucky.val_accuracy - 0.15
    result = CliRunner().invoke(app, ["submit", "--run", "best"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"holdout accuracy {lucky.val_accuracy:.4f}" in text
    assert f"scored on the other: {expected:.4f} (half A picked {lucky.run_id}, half B {solid.run_id})" in text
    # Naming a run is the user's choice, not `best`'s: no estimate is printed.
    result = CliRunner().invoke(app, ["submit", "--run", solid.run_id])
    assert result.exit_code == 0 and "scored on the other" not in result.output, result.output
