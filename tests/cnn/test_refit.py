"""`ferkaggle refit`: a CNN run's recipe trained again on more rows, for the submission.

Truth is computed here, not read back from the code under test: the rows a refit trains on are
caught by a spy on `fit_trial` and compared with the prepared set's own index lists (every
labelled row, or the training rows without the holdout); the refit's test probabilities are the
stored model's outputs on the test faces and their mirrors, averaged here with NumPy; its holdout
figures are the source run's (rows = all) or the accuracy of the argmax against the labels.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import ferkaggle.cnn.refit as refit_module
from ferkaggle.cli.app import app
from ferkaggle.cnn.config import load_train_config, override
from ferkaggle.cnn.fit import fit_trial
from ferkaggle.cnn.refit import refit_run
from ferkaggle.cnn.train import train_config  # noqa: E402
from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from ferkaggle.results.ensemble import EnsembleConfig, choose_candidates, run_ensemble
from ferkaggle.runs.leaderboard import build_sections
from ferkaggle.runs.registry import list_runs, load_run
from ferkaggle.runs.select import best_run
from helpers.cli import usage_error  # noqa: E402
from helpers.fakes import make_fake_run, make_tiny_prepared, to_numpy  # noqa: E402


def _cfg():
    return override(load_train_config("tiny"), {"epochs": 2, "name": "tiny-src", "patience": 5, "model": {"width": 4}})


@pytest.fixture(scope="module")
def source(prepared, tmp_path_factory):
    return train_config(prepared, _cfg(), seed=3, root=tmp_path_factory.mktemp("runs"))


def _spy(monkeypatch):
    seen = []
    real = refit_module.fit_trial

    def spy(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs):
        seen.append({"x": np.asarray(x_train).copy(), "y": np.asarray(y_train).copy(), "n_stop": len(x_stop),
                     "cfg": cfg, "seed": kwargs.get("seed")})
        return real(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs)

    monkeypatch.setattr(refit_module, "fit_trial", spy)
    return seen


def _hflip_mean(run, faces):
    import keras

    model = keras.models.load_model(run.model_file(), compile=False)
    images = np.asarray(faces, np.float32)[..., None]
    return (to_numpy(model(images, training=False)) + to_numpy(model(images[:, :, ::-1], training=False))) / 2


@pytest.fixture(scope="module")
def refit_all(prepared, source):
    mp = pytest.MonkeyPatch()
    seen = _spy(mp)
    try:
        run = refit_run(source, prepared, rows="all", root=source.dir.parent)
    finally:
        mp.undo()
    return run, seen


def test_refit_on_all_rows_trains_on_every_labelled_row_with_the_source_recipe(prepared, source, refit_all):
    run, seen = refit_all
    assert len(seen) == 1
    every = np.sort(np.concatenate([prepared.train_idx, prepared.val_idx]))
    assert len(every) == len(prepared.y) == 200  # the fixture: every labelled row is training or holdout
    np.testing.assert_array_equal(seen[0]["x"], np.asarray(prepared.x)[every])
    np.testing.assert_array_equal(seen[0]["y"], np.asarray(prepared.y)[every])
    assert seen[0]["n_stop"] == 0  # no stop split: nothing to choose on
    assert seen[0]["seed"] == 3 and run.info["seed"] == 3
    cfg = seen[0]["cfg"]
    assert cfg.epochs == source.metrics["epochs"] == 2 and cfg.patience == 0
    assert dataclasses.replace(cfg, name="tiny-src", patience=_cfg().patience) == _cfg()  # nothing else changed
    assert run.info["refit_of"] == source.run_id and run.info["refit_rows"] == "all"
    assert run.metrics["refit"]["n_rows"] == 200 and run.metrics["epochs"] == 2
    assert [h["epoch"] for h in run.metrics["history"]] == [1, 2]


def test_refit_on_all_rows_carries_the_source_holdout_figures_and_predicts_test_itself(prepared, source, refit_all):
    run, _ = refit_all
    np.testing.assert_array_equal(run.proba("val"), source.proba("val"))
    assert run.val_accuracy == source.val_accuracy
    assert run.val_accuracy == pytest.approx(np.mean(source.proba("val").argmax(1) == np.asarray(prepared.y_val)))
    assert run.scored_on == "holdout, by the recipe before the refit" and run.selected_on_score is False
    want = _hflip_mean(run, prepared.x_test)
    np.testing.assert_allclose(run.proba("test"), want, atol=1e-5)
    assert not np.allclose(run.proba("test"), source.proba("test"), atol=1e-3)  # a different model
    assert run.metrics["test_accuracy"] == pytest.approx(np.mean(want.argmax(1) == np.asarray(prepared.y_test)))
    assert not (run.dir / "checkpoint").exists()


def test_refit_on_training_rows_leaves_the_holdout_out_and_is_scored_on_it(prepared, source, monkeypatch, tmp_path):
    seen = _spy(monkeypatch)
    run = refit_run(source, prepared, rows="train", root=tmp_path)
    np.testing.assert_array_equal(seen[0]["x"], np.asarray(prepared.x)[np.sort(prepared.train_idx)])
    holdout = {row.tobytes() for row in np.asarray(prepared.x_val)}
    assert not any(row.tobytes() in holdout for row in seen[0]["x"])
    want = _hflip_mean(run, prepared.x_val)
    np.testing.assert_allclose(run.proba("val"), want, atol=1e-5)
    assert run.val_accuracy == pytest.approx(np.mean(want.argmax(1) == np.asarray(prepared.y_val)))
    assert run.scored_on == "holdout" and run.info["refit_rows"] == "train"
    assert run.info["name"] == "tiny-src-refit-train"


def test_without_stop_rows_the_kept_model_is_the_last_epoch(prepared, tmp_path):
    import keras

    cfg = override(_cfg(), {"epochs": 3, "patience": 1})
    none = np.zeros(0, np.int64)
    state = fit_trial(prepared.x_train, prepared.y_train, prepared.x[none], prepared.y[none], cfg, tmp_path)
    assert state["epochs_done"] == 3 and state["best_epoch"] == 3 and state["stopped"] is None
    best = keras.models.load_model(tmp_path / "best.keras", compile=False).get_weights()
    last = keras.models.load_model(tmp_path / "last.keras", compile=False).get_weights()
    for b, last_w in zip(best, last):
        np.testing.assert_array_equal(b, last_w)


def test_a_refit_ranks_above_its_source_and_replaces_it_in_ensembles(prepared, source, refit_all, tmp_path, monkeypatch):
    run, _ = refit_all
    root = source.dir.parent
    runs = list_runs(root)
    monkeypatch.chdir(tmp_path)
    other = make_fake_run(prepared, "rf-fake", 0.3, kind="baseline")  # in ./runs of the cwd: moved below
    other_dir = root / other.dir.name
    other.dir.rename(other_dir)
    try:
        runs = list_runs(root)
        assert {r.run_id for r in runs} >= {source.run_id, run.run_id}
        # equal figures: the refit (newer id) first, although ties otherwise go to the older run
        assert best_run([r for r in runs if r.run_id in (source.run_id, run.run_id)]).run_id == run.run_id
        rows = build_sections(runs, prepared.split_fingerprint)[0].rows
        ids = [r.run_id for r in rows]
        assert ids.index(run.run_id) == ids.index(source.run_id) - 1
        pool = [r.run_id for r in choose_candidates(root, split_fingerprint=prepared.split_fingerprint)]
        assert run.run_id in pool and source.run_id not in pool and other_dir.name in pool
        # an ensemble with the refit as a member says that its holdout figure is the recipe's before the refit

        ens, _ = run_ensemble([run, load_run(other_dir.name, root)], EnsembleConfig(method="mean"), root)
        assert ens.metrics["refit_members"] == [run.run_id]
        assert ens.scored_on == "holdout, cross-fitted halves, refit members by the recipe before the refit"
        plain, _ = run_ensemble([source, load_run(other_dir.name, root)], EnsembleConfig(method="mean"), root)
        assert plain.scored_on == "holdout, cross-fitted halves" and "refit_members" not in plain.metrics
        shutil.rmtree(ens.dir)
        shutil.rmtree(plain.dir)
    finally:
        shutil.rmtree(other_dir, ignore_errors=True)


def test_refit_refuses_what_it_cannot_refit(prepared, source, refit_all, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, _ = refit_all
    with pytest.raises(FerkaggleError, match="already a refit"):
        refit_run(run, prepared)
    fake = make_fake_run(prepared, "rf-fake", 0.3, kind="baseline")
    with pytest.raises(FerkaggleError, match="is a baseline run; refit takes a CNN run"):
        refit_run(fake, prepared)
    fake.info["kind"] = "ensemble"
    with pytest.raises(FerkaggleError, match="For an ensemble, refit its CNN members"):
        refit_run(fake, prepared)
    kfold = dataclasses.replace(source, metrics={**source.metrics, "folds": 3})
    with pytest.raises(FerkaggleError, match="k-fold run"):
        refit_run(kfold, prepared)
    with pytest.raises(FerkaggleError, match="--rows must be one of all, train"):
        refit_run(source, prepared, rows="holdout")
    other = make_tiny_prepared(tmp_path / "other", n=100, n_test=10, seed=5)
    with pytest.raises(FerkaggleError, match="was trained on split"):
        refit_run(source, other)


def test_cli_refit_best(tiny_prepared):
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, ["train", "--config", "tiny", "--seed", "1"]).exit_code == 0
    result = CliRunner().invoke(app, ["refit"])  # --run best
    assert result.exit_code == 0, result.output
    assert "the recipe before the refit" in result.output
    runs = list_runs()
    assert len(runs) == 2 and runs[1].info["refit_of"] == runs[0].run_id
    result = CliRunner().invoke(app, ["refit", "-r", runs[1].run_id])
    assert result.exit_code == 1 and "already a refit" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["refit", "--run", "best", "--rows", "most"])
    assert usage_error(result, "'most' is not one of 'all', 'train'"), result.output
