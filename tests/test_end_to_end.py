"""The whole pipeline through the CLI, as a user runs it, on a small demo competition:
demo-data -> prepare -> baseline -> search (tiny) -> leaderboard -> ensemble -> submit -> validate
-> export (the default `best`: the best run it can export, whatever tops the board).
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.runs.registry import list_runs

runner = CliRunner()

TINY_SPACE = """
name = "e2e"
base = "tiny"
eta = 2
min_epochs = 1
max_epochs = 2

[[trials]]
name = "tiny-a"

[[trials]]
name = "tiny-b"
model = { width = 4 }
"""


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"ferkaggle {' '.join(args)} failed:\n{result.output}"
    return result.output


def test_prepare_baseline_search_leaderboard_ensemble_submit_validate(in_tmp):
    invoke("demo-data", "--out", "data/demo", "--train-size", "400", "--test-size", "80")
    out = invoke("prepare", "--source", "data", "--folds", "3")
    assert "class counts" in out
    invoke("baseline", "--n-estimators", "20")
    space = in_tmp / "e2e.toml"
    space.write_text(TINY_SPACE)
    invoke("search", "--space", str(space), "--budget", "5m")

    board = json.loads(invoke("leaderboard", "--format", "json"))
    kinds = {row["kind"] for row in board}
    assert {"baseline", "cnn"} <= kinds, kinds

    invoke("ensemble", "-n", "2", "--method", "mean")
    ensembles = [r for r in list_runs() if r.kind == "ensemble"]
    assert len(ensembles) == 1 and len(ensembles[0].info["config"]["members"]) == 2
    board = invoke("leaderboard", "--format", "csv")
    assert ensembles[0].run_id in board  # the ensemble is on the leaderboard

    out = invoke("submit", "--run", "latest")
    assert "local test accuracy" in out
    submissions = sorted((in_tmp / "submissions").glob("*.csv"))
    assert len(submissions) == 1 and ensembles[0].run_id in submissions[0].name
    assert "valid" in invoke("validate", str(submissions[0]))
    lines = submissions[0].read_text().splitlines()
    assert lines[0] == "id,emotion" and len(lines) == 81

    out = invoke("export", "-o", "model.keras")
    assert (in_tmp / "model.keras").is_file() and "from run" in out
