"""The leaderboard: ranking, split sections, formats, --top/--kind/--all, an empty registry."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.results.ensemble import EnsembleConfig, run_ensemble
from ferkaggle.runs import leaderboard as lb
from ferkaggle.runs.registry import RunWriter
from helpers.cli import usage_error
from helpers.fakes import make_fake_run, make_tiny_prepared


@pytest.fixture
def board(tiny_prepared, in_tmp):
    """Three completed runs on the tiny split (two kinds), one failed run, one run on another split."""
    runs = {
        "weak": make_fake_run(tiny_prepared, "weak", 0.1, seed=1),
        "strong": make_fake_run(tiny_prepared, "strong", 0.9, seed=2, kind="cnn"),
        "middle": make_fake_run(tiny_prepared, "middle", 0.5, seed=3),
    }
    with pytest.raises(RuntimeError):
        with RunWriter("baseline", "broken", {}, tiny_prepared, seed=0, summary="rf that crashed", model="rf"):
            raise RuntimeError("boom")
    other = make_tiny_prepared(in_tmp / "other", n=200, seed=5)  # a different split, written second
    runs["elsewhere"] = make_fake_run(other, "elsewhere", 1.0, seed=4)
    # The tiny set is the current prepared data again (LATEST points at the last one written).
    (in_tmp / "data" / "prepared" / "LATEST").write_text("tiny\n")
    return runs, tiny_prepared, other


def test_sections_rank_by_holdout_accuracy_current_split_first(board):
    runs, tiny, other = board
    sections = lb.leaderboard(current_split=tiny.split_fingerprint)
    assert [s.split for s in sections] == [tiny.split_fingerprint[:8], other.split_fingerprint[:8]]
    assert sections[0].current and not sections[1].current
    first = sections[0].rows
    assert [r.run_id for r in first] == [runs[n].run_id for n in ("strong", "middle", "weak")]
    assert [r.rank for r in first] == [1, 2, 3]
    accs = [r.val_accuracy for r in first]
    assert accs == sorted(accs, reverse=True)
    # The best run overall is on another split and is NOT ranked above the current split's runs.
    assert [r.run_id for r in sections[1].rows] == [runs["elsewhere"].run_id] and sections[1].rows[0].rank == 1
    # Without a current split the most recently used split comes first.
    assert lb.leaderboard()[0].split == other.split_fingerprint[:8]


def test_top_kind_and_all(board):
    runs, tiny, _ = board
    top = lb.leaderboard(current_split=tiny.split_fingerprint, top=1)
    assert [r.run_id for r in top[0].rows] == [runs["strong"].run_id] and top[0].hidden == 2
    only_cnn = lb.leaderboard(kind="cnn")
    assert [r.run_id for s in only_cnn for r in s.rows] == [runs["strong"].run_id]
    everything = lb.leaderboard(include_all=True, current_split=tiny.split_fingerprint)
    failed = [r for r in everything[0].rows if r.status == "failed"]
    assert len(failed) == 1 and failed[0].rank is None and everything[0].rows[-1] is failed[0]
    assert "[failed]" in lb.describe(failed[0])
    assert all(r.status == "completed" for s in lb.leaderboard() for r in s.rows)


def test_csv_and_json_parse_back(board):
    runs, tiny, _ = board
    sections = lb.leaderboard(current_split=tiny.split_fingerprint)
    records = json.loads(lb.to_json(sections))
    rows = list(csv.DictReader(io.StringIO(lb.to_csv(sections))))
    assert len(records) == len(rows) == 4
    assert [r["run_id"] for r in records] == [r["run_id"] for r in rows]
    assert records[0]["run_id"] == runs["strong"].run_id and records[0]["current_split"] is True
    assert float(rows[0]["val_accuracy"]) == pytest.approx(records[0]["val_accuracy"])
    assert rows[0]["cv_mean"] == "" and records[0]["cv_mean"] is None  # fake runs have no CV
    assert rows[-1]["current_split"] == "False" and rows[-1]["run_id"] == runs["elsewhere"].run_id
    markdown = lb.to_markdown(sections)
    assert markdown.count("### split") == 2 and "current prepared data" in markdown


def test_cv_columns_and_sizes_come_from_the_run_files(tiny_prepared):
    with RunWriter("baseline", "rf", {}, tiny_prepared, seed=0, summary="rf 100 trees, pixels", model="rf") as w:
        w.save_probas(val=np.full((len(tiny_prepared.val_idx), 7), 1 / 7))
        w.save_metrics({"val_accuracy": 0.4, "val_macro_f1": 0.3, "cv_mean": 0.41, "cv_std": 0.012})
        w.model_path(".joblib").write_bytes(b"x" * 2048)
    (row,) = lb.leaderboard()[0].rows
    assert lb.fmt_cv(row) == "0.4100 ± 0.0120" and lb.fmt_bytes(row.model_bytes) == "2.0 KB"
    assert row.duration_s is not None and row.date.count(":") == 1
    assert lb.describe(row) == "rf 100 trees, pixels"
    with RunWriter("cnn", "simple", {}, tiny_prepared, seed=0, summary="simple 3-block CNN", model="simple") as w:
        w.update_info(runtime={"backend": "jax", "backend_version": "0.10.2"})
        w.save_probas(val=np.full((len(tiny_prepared.val_idx), 7), 1 / 7))
        w.save_metrics({"val_accuracy": 0.5, "val_macro_f1": 0.3})
    cnn = next(r for r in lb.leaderboard()[0].rows if r.kind == "cnn")
    assert cnn.backend == "jax" and lb.describe(cnn) == "simple 3-block CNN, on jax"  # the non-default backend shows
    assert lb.fmt_seconds(75) == "1m15s" and lb.fmt_seconds(None) == "—"


def test_cli_formats_and_empty_registry(board):
    runner = CliRunner()
    result = runner.invoke(app, ["leaderboard"])
    assert result.exit_code == 0, result.output
    assert "2 different data splits" in result.output and "current prepared data" in result.output
    result = runner.invoke(app, ["leaderboard", "--format", "csv", "--top", "1", "--kind", "baseline"])
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["run_id"] for r in rows] == [board[0]["middle"].run_id, board[0]["elsewhere"].run_id]
    result = runner.invoke(app, ["leaderboard", "--all", "--format", "json"])
    assert any(r["status"] == "failed" for r in json.loads(result.output))
    result = runner.invoke(app, ["leaderboard", "--format", "yaml"])
    assert usage_error(result, "'yaml' is not one of 'table', 'markdown', 'csv', 'json'"), result.output
    result = runner.invoke(app, ["leaderboard", "--kind", "forest"])
    assert usage_error(result, "'forest' is not one of 'baseline', 'cnn', 'ensemble'"), result.output


def test_cli_empty_registry_is_friendly(in_tmp):
    result = CliRunner().invoke(app, ["leaderboard"])
    assert result.exit_code == 0 and "no completed runs" in result.output
    result = CliRunner().invoke(app, ["leaderboard", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_each_row_says_what_it_was_scored_on(tiny_prepared, in_tmp):
    """A baseline and a CNN recorded with scored_on say 'holdout'; an ensemble says its halves;
    a CNN recorded before selection moved off the holdout (no scored_on) is marked as selected on it."""
    base = make_fake_run(tiny_prepared, "rf", 0.5, seed=1)
    with RunWriter("cnn", "new-cnn", {}, tiny_prepared, seed=0) as w:
        w.save_metrics({"val_accuracy": 0.3, "scored_on": "holdout", "selected_on_score": False})
    new_cnn = w.run_id
    old_cnn = make_fake_run(tiny_prepared, "old-cnn", 0.6, seed=2, kind="cnn")
    ensemble, _ = run_ensemble([base, old_cnn], EnsembleConfig(method="mean"))
    records = {r["run_id"]: r for r in json.loads(lb.to_json(lb.leaderboard()))}
    assert (records[base.run_id]["scored_on"], records[base.run_id]["selected_on_score"]) == ("holdout", False)
    assert (records[new_cnn]["scored_on"], records[new_cnn]["selected_on_score"]) == ("holdout", False)
    assert records[old_cnn.run_id]["selected_on_score"] is True
    assert records[ensemble.run_id]["scored_on"] == "holdout, cross-fitted halves"
    assert records[ensemble.run_id]["selected_on_score"] is False
    markdown = lb.to_markdown(lb.leaderboard())
    assert "| scored on |" in markdown
    marked = [line for line in markdown.splitlines() if lb.SELECTED_MARK in line]
    assert len(marked) == 1 and old_cnn.run_id in marked[0]
    result = CliRunner().invoke(app, ["leaderboard"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "scored on" in result.output and lb.SELECTED_NOTE[:40] in result.output
