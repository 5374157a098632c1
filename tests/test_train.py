"""Training one CNN config on tiny synthetic faces writes a complete run; CLI `train`."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import make_tiny_prepared  # noqa: E402
from ferkaggle.errors import FerkaggleError  # noqa: E402
from ferkaggle.train import fit_trial, load_train_config, override, read_state, train_config  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_tiny_prepared(tmp_path_factory.mktemp("data") / "prepared", n=200, n_test=40)


@pytest.fixture(scope="module")
def tiny_run(prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return train_config(prepared, load_train_config("tiny"), seed=0, root=root)


def test_one_epoch_writes_a_complete_run(tiny_run, prepared):
    run = tiny_run
    assert run.status == "completed" and run.kind == "cnn"
    m = run.metrics
    for key in ("val_accuracy", "val_macro_f1", "history", "train_seconds", "epochs", "test_accuracy"):
        assert key in m, key
    assert m["epochs"] == 1 and len(m["history"]) == 1
    assert set(m["history"][0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert run.proba("val").shape == (len(prepared.val_idx), 7)
    assert run.proba("test").shape == (len(prepared.x_test), 7)
    assert (run.dir / "model.keras").is_file() and not (run.dir / "checkpoint").exists()
    info = json.loads((run.dir / "run.json").read_text())
    assert info["summary"].startswith("vgg w8") and info["config"]["model"]["architecture"] == "vgg"
    assert info["runtime"]["tensorflow"] and "intra_op_threads" in info["runtime"]


def test_saved_model_reproduces_the_val_probabilities(tiny_run, prepared):
    import keras

    from ferkaggle.train import predict_proba

    model = keras.models.load_model(tiny_run.dir / "model.keras")
    np.testing.assert_allclose(predict_proba(model, prepared.x_val, "hflip"), tiny_run.proba("val"), atol=1e-5)


def test_kfold_run_has_aligned_oof_probabilities(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "prepared", n=100, n_test=10, folds=2)  # 2 folds keep it quick
    cfg = override(load_train_config("tiny"), {"model": {"width": 4}})
    run = train_config(prepared, cfg, folds=True, root=tmp_path / "runs")
    assert run.proba("oof").shape == (len(prepared.train_idx), 7)
    assert run.metrics["folds"] == 2 and 0 <= run.metrics["cv_mean"] <= 1
    assert "cv_std" in run.metrics and run.info["name"] == "tiny-cv2"
    np.testing.assert_allclose(run.proba("oof").sum(axis=1), 1.0, atol=1e-4)


def test_fit_resumes_from_its_last_checkpoint(prepared, tmp_path):
    cfg = override(load_train_config("tiny"), {"epochs": 3, "model": {"width": 4}})
    args = (prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val, cfg, tmp_path)
    state = fit_trial(*args, target_epochs=1)
    assert state["epochs_done"] == 1 and (tmp_path / "last.keras").is_file()
    state = fit_trial(*args, target_epochs=2)
    assert state["epochs_done"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert read_state(tmp_path)["epochs_done"] == 2


def test_early_stopping_restores_the_best_epoch(prepared, tmp_path):
    cfg = override(load_train_config("tiny"), {"epochs": 4, "patience": 1, "model": {"width": 4},
                                               "optim": {"learning_rate": 0.5, "optimizer": "sgd"}})
    state = fit_trial(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val, cfg, tmp_path)
    best = max(h["val_accuracy"] for h in state["history"])
    assert state["best_score"] == pytest.approx(best)
    if state["stopped"] == "early":
        assert state["epochs_done"] == state["best_epoch"] + 1


def test_bad_preset_fails_loudly(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nwidht = 3\n")
    with pytest.raises(FerkaggleError, match="widht"):
        load_train_config(bad)
    with pytest.raises(FerkaggleError, match="no preset"):
        load_train_config("no-such-preset")


def test_cli_train(tiny_prepared):
    from typer.testing import CliRunner

    from ferkaggle.cli import app
    from ferkaggle.runs import list_runs

    result = CliRunner().invoke(app, ["train", "--config", "tiny", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.output
    runs = list_runs()
    assert len(runs) == 1 and runs[0].kind == "cnn"
    result = CliRunner().invoke(app, ["train", "--config", "nope"])
    assert result.exit_code == 1 and "no preset named 'nope'" in result.output
