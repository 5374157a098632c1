"""Ensembles: weights, honest cross-fitted holdout scoring, refusal across splits, recorded as runs."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_fake_run, make_tiny_prepared
from ferkaggle.cli import app
from ferkaggle.ensemble import EnsembleConfig, build_ensemble, fit_weights, halves, run_ensemble
from ferkaggle.errors import FerkaggleError
from ferkaggle.runs import list_runs

runner = CliRunner()


def test_fit_weights_methods():
    y = np.array([0, 1, 2, 3] * 10)
    good = np.eye(7)[y] * 0.9 + 0.1 / 7
    bad = np.full_like(good, 1 / 7)
    bad[:, 6] += 0.1
    probas = np.stack([good, bad])
    assert fit_weights("mean", probas, y) == pytest.approx([0.5, 0.5])
    weighted = fit_weights("weighted", probas, y)
    assert weighted[0] > weighted[1] and weighted.sum() == pytest.approx(1)
    greedy = fit_weights("greedy", probas, y, rounds=10)
    assert greedy == pytest.approx([1.0, 0.0])  # the useless member is never worth adding


def test_halves_are_stratified_disjoint_and_cover():
    y = np.repeat(np.arange(7), [10, 3, 8, 20, 9, 6, 11])
    a, b = halves(y, seed=0)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(y)
    for k in range(7):
        assert abs((y[a] == k).sum() - (y[b] == k).sum()) <= 1


def test_honest_score_is_cross_fitted(tiny_prepared):
    runs = [make_fake_run(tiny_prepared, f"m{i}", skill=s, seed=i) for i, s in enumerate([0.3, 0.5, 0.6])]
    result = build_ensemble(runs, tiny_prepared.y_val, EnsembleConfig(method="greedy", seed=3))
    y = np.asarray(tiny_prepared.y_val)
    a, b = halves(y, 3)
    w_a, w_b = result.half_weights
    expected_b = np.tensordot(w_a, np.stack([r.proba("val") for r in runs])[:, b], axes=1)
    assert np.allclose(result.val_proba[b], expected_b, atol=1e-6)  # half B scored with weights fitted on A
    assert result.metrics["val_accuracy"] == pytest.approx((result.val_proba.argmax(1) == y).mean())
    assert result.test_proba.shape == (len(tiny_prepared.test_ids), 7)


def test_run_ensemble_is_recorded_and_on_the_registry(tiny_prepared, in_tmp):
    runs = [make_fake_run(tiny_prepared, f"m{i}", skill=s, seed=i) for i, s in enumerate([0.4, 0.6])]
    run, _ = run_ensemble(runs, EnsembleConfig(method="mean"))
    assert run.kind == "ensemble" and run.status == "completed"
    assert run.info["config"]["members"] == [r.run_id for r in runs]
    assert run.has_proba("val") and run.has_proba("test") and run.has_proba("oof")
    assert run.run_id in [r.run_id for r in list_runs()]


def test_runs_from_different_splits_are_refused(tiny_prepared, in_tmp):
    other = make_tiny_prepared(in_tmp / "data" / "other", seed=5, folds=2)
    first = make_fake_run(tiny_prepared, "a", skill=0.5)
    second = make_fake_run(other, "b", skill=0.5)
    with pytest.raises(FerkaggleError, match="different splits"):
        run_ensemble([first, second], EnsembleConfig())


def test_ensemble_cli_top_k_then_submit_latest(tiny_prepared, in_tmp):
    for i, s in enumerate([0.3, 0.5, 0.7]):
        make_fake_run(tiny_prepared, f"m{i}", skill=s, seed=i)
    result = runner.invoke(app, ["ensemble", "--top", "2", "--method", "weighted"])
    assert result.exit_code == 0, result.output
    assert "honest holdout accuracy" in result.output
    ensembles = [r for r in list_runs() if r.kind == "ensemble"]
    assert len(ensembles) == 1 and len(ensembles[0].info["config"]["members"]) == 2
    result = runner.invoke(app, ["submit", "--run", "latest"])
    assert result.exit_code == 0, result.output
    assert ensembles[0].run_id in result.output


def test_ensemble_cli_needs_two_runs(tiny_prepared, in_tmp):
    make_fake_run(tiny_prepared, "only", skill=0.5)
    result = runner.invoke(app, ["ensemble"])
    assert result.exit_code == 1 and "needs two" in result.output
