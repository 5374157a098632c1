"""`ferkaggle runs` and `ferkaggle runs remove`, on run folders written by hand (not by RunWriter)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from ferkaggle.cli import runs as runs_cli
from ferkaggle.cli.app import app

runner = CliRunner()
MB = 1024 * 1024


def _plain(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).replace("│", " ").split())


def write_run(root, run_id, kind="cnn", status="completed", val=0.5, members=None, model_bytes=MB, n=0):
    folder = root / run_id
    folder.mkdir(parents=True)
    config = {"members": members} if members else {}
    info = {"run_id": run_id, "kind": kind, "name": run_id, "status": status, "config": config,
            "data": {"key": "kaggle-abc", "split_fingerprint": "split1", "prepared": "data/prepared/kaggle-abc"},
            "started": f"2026-12-01T10:0{n}:00+00:00", "created_ns": n}
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text(json.dumps({"val_accuracy": val}))
    (folder / "model.keras").write_bytes(b"\0" * model_bytes)
    return folder


@pytest.fixture
def hand_runs(in_tmp):
    root = in_tmp / "runs"
    folders = {
        "a": write_run(root, "2026-12-01_100000_alpha", val=0.61, model_bytes=2 * MB, n=1),
        "b": write_run(root, "2026-12-01_100100_beta", kind="baseline", val=0.42, n=2),
        "failed": write_run(root, "2026-12-01_100200_gamma", status="failed", val=None, n=3),
        "ens": write_run(root, "2026-12-01_100300_ensemble-mean", kind="ensemble", val=0.65, model_bytes=0, n=4,
                         members=["2026-12-01_100000_alpha", "2026-12-01_100100_beta"]),
    }
    (in_tmp / "keep.txt").write_text("outside runs/")
    return folders


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_runs_lists_id_kind_status_data_accuracy_created_and_size(hand_runs):
    out = _plain(runner.invoke(app, ["runs"], env={"COLUMNS": "250"}).output)
    assert "2026-12-01_100000_alpha cnn completed kaggle-abc 0.6100 2026-12-01 10:01:00 2.0 MB" in out, out
    assert "2026-12-01_100100_beta baseline completed kaggle-abc 0.4200 2026-12-01 10:02:00 1.0 MB" in out, out
    assert "gamma" not in out  # failed: only with --all
    assert out.index("alpha") < out.index("beta") < out.index("ensemble-mean")  # oldest first
    out = _plain(runner.invoke(app, ["runs", "--all", "--kind", "cnn"], env={"COLUMNS": "250"}).output)
    assert "alpha" in out and "gamma cnn failed" in out and "beta" not in out and "ensemble-mean" not in out, out


def test_remove_with_yes_deletes_exactly_that_folder(hand_runs, in_tmp):
    before = tree(in_tmp)
    result = runner.invoke(app, ["runs", "remove", "-r", "beta", "-r", "gamma", "--yes"])
    assert result.exit_code == 0, result.output
    gone = {p for p in before if p.startswith(("runs/2026-12-01_100100_beta", "runs/2026-12-01_100200_gamma"))}
    assert gone and tree(in_tmp) == sorted(set(before) - gone)
    out = _plain(result.output)
    assert "removed runs/2026-12-01_100100_beta (1.0 MB)" in out and "ensemble 2026-12-01_100300_ensemble-mean" in out


def test_remove_names_the_ensembles_that_use_the_run(hand_runs):
    result = runner.invoke(app, ["runs", "remove", "-r", "alpha", "-y"])
    out = _plain(result.output)
    assert result.exit_code == 0 and "warning: run 2026-12-01_100000_alpha is a member of ensemble " \
        "2026-12-01_100300_ensemble-mean" in out, out
    assert not hand_runs["a"].exists() and hand_runs["ens"].exists()
    # Removing the ensemble with its member warns about nothing.
    result = runner.invoke(app, ["runs", "remove", "-r", "beta", "-r", "ensemble-mean", "-y"])
    assert result.exit_code == 0 and "warning" not in result.output and not hand_runs["ens"].exists()


def test_without_a_terminal_or_yes_nothing_is_removed(hand_runs, in_tmp):
    before = tree(in_tmp)
    result = runner.invoke(app, ["runs", "remove", "-r", "alpha"])
    out = _plain(result.output)
    assert result.exit_code == 1 and "error: runs remove asks before deleting 1 run folder(s), and there is no " \
        "terminal to ask on: add --yes" in out, out
    assert tree(in_tmp) == before


def test_the_prompt_removes_on_yes_only(hand_runs, in_tmp, monkeypatch):
    monkeypatch.setattr(runs_cli, "can_prompt", lambda: True)
    before = tree(in_tmp)
    result = runner.invoke(app, ["runs", "remove", "-r", "beta"], input="n\n")
    assert result.exit_code == 0 and "nothing removed" in result.output and tree(in_tmp) == before
    result = runner.invoke(app, ["runs", "remove", "-r", "beta"], input="y\n")
    assert result.exit_code == 0 and "remove 1 run folder(s)?" in result.output and not hand_runs["b"].exists()


@pytest.mark.parametrize("ref", ["best", "latest"])
def test_best_and_latest_are_refused(hand_runs, in_tmp, ref):
    before = tree(in_tmp)
    result = runner.invoke(app, ["runs", "remove", "-r", "alpha", "-r", ref, "--yes"])
    assert result.exit_code == 1 and f"not `{ref}`" in _plain(result.output) and tree(in_tmp) == before


def test_a_run_folder_outside_runs_and_an_unknown_run_remove_nothing(hand_runs, in_tmp):
    elsewhere = write_run(in_tmp / "archive", "2026-12-01_090000_old")
    before = tree(in_tmp)
    result = runner.invoke(app, ["runs", "remove", "-r", "alpha", "-r", str(elsewhere), "--yes"])
    out = _plain(result.output)
    assert result.exit_code == 1 and "not a run folder in runs/" in out and len(result.output.strip().splitlines()) == 1
    assert tree(in_tmp) == before
    result = runner.invoke(app, ["runs", "remove", "-r", "alpha", "-r", "no-such-run", "--yes"])
    assert result.exit_code == 1 and "no run matching 'no-such-run'" in _plain(result.output) and tree(in_tmp) == before
    result = runner.invoke(app, ["runs", "remove", "-r", "2026-12-01", "--yes"])  # matches several
    assert result.exit_code == 1 and "matches 4 runs" in _plain(result.output) and tree(in_tmp) == before
