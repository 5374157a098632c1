"""One `best` and one `latest` for every command: predict, serve, export and submit choose the same
run for the same argument, each through the code its CLI command runs.

The board is built so that every other plausible rule picks another run, and which run each rule
picks is known by construction (the figures are written here, not computed by the code under test):

    run          holdout acc / F1   model  test proba  split    made
    early        0.90 / 0.70        yes    yes         current  1st   accuracy alone (oldest first) picks it
    source       0.90 / 0.80        yes    yes         current  2nd   F1 without the refit rule picks it
    refit        0.90 / 0.80        yes    yes         current  3rd   refit of source: rank_key's `best`
    no-test      0.97 / 0.90        yes    no          current  4th   a rule not needing test probabilities
    weak-a/b     fake (< 0.5)       no     yes         current  5-6th
    late         0.40 / 0.30        yes    yes         current  7th   `latest`
    elsewhere    0.99 / 0.95        yes    yes         other    8th   any rule that ignores the split
"""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.runs.registry import prepared_for_run, read_run, remove_run
from helpers.fakes import make_fake_run
from helpers.photos import train_tiny_run, write_photos

runner = CliRunner()


def rewrite(run, *, accuracy: float, f1: float, **info):
    """Give a run the holdout figures (and run.json fields) the board needs."""
    data = json.loads((run.dir / "run.json").read_text())
    data.update(info)
    (run.dir / "run.json").write_text(json.dumps(data))
    metrics = dict(run.metrics, val_accuracy=accuracy, val_macro_f1=f1)
    (run.dir / "metrics.json").write_text(json.dumps(metrics))
    return read_run(run.dir)


def copy_run(source, name: str, *, accuracy: float, f1: float, created_ns: int | None = None, split: str | None = None,
             **info):
    """A copy of a run folder (model and probabilities included) as a new run `name`."""
    run_id = f"{source.run_id}-{name}"
    shutil.copytree(source.dir, source.dir.parent / run_id)
    copy = read_run(source.dir.parent / run_id)
    data = dict(copy.info["data"], split_fingerprint=split or copy.split_fingerprint)
    return rewrite(copy, accuracy=accuracy, f1=f1, run_id=run_id, name=name, data=data,
                   created_ns=created_ns or time.time_ns(), **info)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-best")
    trained = train_tiny_run(root)  # root/runs; root/data/prepared, its LATEST on the run's split
    prepared = prepared_for_run(trained)
    source = rewrite(trained, accuracy=0.90, f1=0.80)
    runs = {"source": source}
    runs["early"] = copy_run(source, "early", accuracy=0.90, f1=0.70, created_ns=source.info["created_ns"] - 1000)
    runs["refit"] = copy_run(source, "refit", accuracy=0.90, f1=0.80, refit_of=source.run_id, refit_rows="all")
    runs["no-test"] = copy_run(source, "no-test", accuracy=0.97, f1=0.90)
    (runs["no-test"].dir / "test_proba.npy").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERKAGGLE_RUNS_DIR", str(root / "runs"))  # where the registry writes them
        runs["weak-a"] = make_fake_run(prepared, "weak-a", 0.1, seed=1)
        runs["weak-b"] = make_fake_run(prepared, "weak-b", 0.2, seed=2)
    runs["late"] = copy_run(source, "late", accuracy=0.40, f1=0.30)
    runs["elsewhere"] = copy_run(source, "elsewhere", accuracy=0.99, f1=0.95, split="0" * 64)
    assert max(runs["weak-a"].val_accuracy, runs["weak-b"].val_accuracy) < 0.5
    assert {run.dir.parent for run in runs.values()} == {root / "runs"}
    return {"root": root, "runs": runs, "prepared": prepared, "photo": write_photos(root / "photos")["astronaut"]}


@pytest.fixture
def on_board(board, monkeypatch, tmp_path):
    """The CLI as a user runs it there: the board's folder as the working directory, its runs folder."""
    monkeypatch.chdir(board["root"])
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(board["root"] / "runs"))
    served: list[str] = []

    class NoServer:  # `serve` without a socket: it stops as at Ctrl-C once it has its run
        server_address = ("127.0.0.1", 0)

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    def make_server(app_, host, port):
        served.append(app_.predictor.run.run_id)
        return NoServer()

    monkeypatch.setattr("ferkaggle.cli.predict.make_server", make_server)
    return {**board, "served": served, "tmp": tmp_path}


def chosen_by_each_command(where, ref: str) -> dict[str, str]:
    """{command: the run id it used} for `ref`, each command run through the CLI."""
    chosen = {}
    result = runner.invoke(app, ["predict", str(where["photo"]), "--run", ref, "--format", "json"])
    assert result.exit_code == 0, result.output
    chosen["predict"] = json.loads(result.stdout)["run"]
    result = runner.invoke(app, ["serve", "--run", ref])
    assert result.exit_code == 0 and "stopped" in result.output, result.output
    chosen["serve"] = where["served"][-1]
    result = runner.invoke(app, ["export", "--run", ref, "--format", "keras", "--out", str(where["tmp"] / f"{ref}.keras")])
    assert result.exit_code == 0, result.output
    chosen["export"] = re.search(r"from run (\S+?):", " ".join(result.output.split())).group(1)
    result = runner.invoke(app, ["submit", "--run", ref, "--out", str(where["tmp"] / "submissions")])
    assert result.exit_code == 0, result.output
    chosen["submit"] = re.search(r"\(run (\S+?)[,)]", " ".join(result.output.split())).group(1)
    return chosen


def test_every_command_takes_the_same_best(on_board):
    refit = on_board["runs"]["refit"].run_id
    assert chosen_by_each_command(on_board, "best") == dict.fromkeys(("predict", "serve", "export", "submit"), refit)


def test_every_command_takes_the_same_latest(on_board):
    late = on_board["runs"]["late"].run_id
    assert chosen_by_each_command(on_board, "latest") == dict.fromkeys(("predict", "serve", "export", "submit"), late)


def test_a_chosen_run_that_cannot_predict_is_refused_by_name_not_replaced(on_board):
    """A run without a model at the top of the board and newest: `best` and `latest` both choose it;
    submit uses it, predict, serve and export say they cannot and how to go on, and pick no other."""
    top = make_fake_run(on_board["prepared"], "top-no-model", 1.0, seed=5)
    try:
        assert top.dir.parent == on_board["root"] / "runs"
        assert top.val_accuracy > 0.90 and top.model_file() is None
        for ref in ("best", "latest"):
            commands = {"predict": ["predict", str(on_board["photo"]), "--run", ref],
                        "serve": ["serve", "--run", ref]}
            if ref == "latest":  # export's `best` is the best run it can export: below
                commands["export"] = ["export", "--run", ref, "--out", str(on_board["tmp"] / "x.keras")]
            for command, args in commands.items():
                result = runner.invoke(app, args)
                text = " ".join(result.output.split())
                assert result.exit_code == 1, (command, result.output)
                assert f"`{ref}` is run {top.run_id}" in text and "cannot predict" in text, (command, text)
                assert "has no saved model" in text and "save_model = false" in text, (command, text)
                assert "--run <run id>" in text and "save this run's model" in text, (command, text)
                assert "Traceback" not in text, (command, text)
            assert on_board["served"] == [] and not (on_board["tmp"] / "x.keras").exists()
            result = runner.invoke(app, ["submit", "--run", ref, "--out", str(on_board["tmp"] / "submissions")])
            assert result.exit_code == 0 and f"(run {top.run_id}" in " ".join(result.output.split()), result.output
        # export's `best` (its default) passes over the run without a model, names it, and exports the next best.
        result = runner.invoke(app, ["export", "--out", str(on_board["tmp"] / "x.keras")])
        text = " ".join(result.output.split())
        refit = on_board["runs"]["refit"].run_id
        assert result.exit_code == 0 and f"`best` for export: run {refit}, the best run that can be exported" in text
        assert f"(the best run, {top.run_id}, has no saved model" in text and f"from run {refit}:" in text, text
    finally:
        remove_run(top)


def test_without_current_prepared_data_every_command_stops_the_same_way(on_board):
    latest = on_board["root"] / "data" / "prepared" / "LATEST"
    saved = latest.read_text()
    latest.unlink()
    try:
        for args in (["predict", str(on_board["photo"])], ["serve"], ["export"], ["submit"]):
            result = runner.invoke(app, args)
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert result.exit_code == 1 and len(lines) == 1, (args, result.output)
            assert "current prepared data" in lines[0] and "ferkaggle prepare" in lines[0], (args, result.output)
    finally:
        latest.write_text(saved)
