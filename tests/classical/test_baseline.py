"""Classical baselines: every model on tiny data, reproducibility, honest out-of-fold rows, the CLI."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from typer.testing import CliRunner

from ferkaggle.classical import baseline
from ferkaggle.classical.baseline import BaselineConfig, resolve, run_baseline
from ferkaggle.cli.app import app
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import load_preset
from ferkaggle.data.prepared import write_prepared
from helpers.cli import usage_error

SMALL = {  # tiny sizes so each model fits in well under a second
    "rf": dict(n_estimators=5),
    "extra-trees": dict(n_estimators=5),
    "logreg": dict(max_iter=30),
    "knn": dict(pca=10),
    "svm": dict(pca=10),
    "nb": dict(),
    "kmeans": dict(n_clusters=7),
    "kmeans-logreg": dict(n_clusters=10, max_iter=30),
}


@pytest.mark.parametrize("model", list(SMALL))
def test_each_model_records_a_complete_run(tiny_prepared, model):
    cfg = BaselineConfig(model=model, n_jobs=1, save_model=model == "rf", **SMALL[model])
    run = run_baseline(tiny_prepared, cfg, show_progress=False)
    p = tiny_prepared
    assert run.status == "completed" and run.kind == "baseline" and run.info["model"] == model
    assert run.proba("oof").shape == (len(p.train_idx), 7)
    assert run.proba("val").shape == (len(p.val_idx), 7)
    assert run.proba("test").shape == (len(p.x_test), 7)
    for which in ("oof", "val", "test"):
        np.testing.assert_allclose(run.proba(which).sum(axis=1), 1.0, atol=1e-4)
    m = run.metrics
    for key in ("val_accuracy", "val_macro_f1", "cv_mean", "cv_std", "cv_macro_f1_mean", "train_seconds", "test_accuracy", "test_macro_f1"):
        assert isinstance(m[key], float), key
    assert [f["fold"] for f in m["folds"]] == [0, 1, 2]
    assert {"accuracy", "macro_f1", "seconds"} <= set(m["folds"][0])
    assert m["cv_mean"] == pytest.approx(np.mean([f["accuracy"] for f in m["folds"]]))
    assert run.info["config"]["model"] == model and run.info["summary"].startswith(model)
    if model == "rf":  # the saved fold models reproduce the saved test probabilities
        ensemble = joblib.load(run.model_file())
        assert len(ensemble.models) == 3 and m["model_bytes"] == run.model_file().stat().st_size
        np.testing.assert_allclose(ensemble.predict_proba(p.x_test), run.proba("test"), atol=1e-6)
    else:
        assert run.model_file() is None


def test_same_seed_same_cv_scores_other_seed_differs(tiny_prepared):
    cfg = BaselineConfig(n_estimators=8, save_model=False, max_features="0.02")
    first = run_baseline(tiny_prepared, cfg, show_progress=False)
    second = run_baseline(tiny_prepared, cfg, show_progress=False)
    other = run_baseline(tiny_prepared, BaselineConfig(n_estimators=8, save_model=False, max_features="0.02", seed=7),
                         show_progress=False)
    acc = lambda run: [f["accuracy"] for f in run.metrics["folds"]]  # noqa: E731
    assert acc(first) == acc(second)
    np.testing.assert_array_equal(first.proba("oof"), second.proba("oof"))
    np.testing.assert_array_equal(first.proba("test"), second.proba("test"))
    assert not np.array_equal(first.proba("oof"), other.proba("oof"))


class SpyEstimator(ClassifierMixin, BaseEstimator):
    """Remembers every row it was trained on; predicting a row it saw puts all mass on class 0.

    A row never seen gets a probability vector that names the spy (class 1 + spy id / 100),
    so the saved OOF file itself tells which fold model predicted each row.
    """

    instances: list["SpyEstimator"] = []

    def __init__(self):
        self.seen: set[bytes] = set()
        self.predicted: list[bytes] = []
        self.id = len(SpyEstimator.instances)
        SpyEstimator.instances.append(self)

    def fit(self, x, y):
        self.seen = {row.tobytes() for row in x}
        self.classes_ = np.arange(7)
        return self

    def predict_proba(self, x):
        out = np.zeros((len(x), 7))
        for i, row in enumerate(x):
            key = row.tobytes()
            self.predicted.append(key)
            if key in self.seen:
                out[i, 0] = 1.0
            else:
                out[i, 1] = 0.5 + self.id / 100
                out[i, 2] = 1.0 - out[i, 1]
        return out


def test_every_oof_row_comes_from_exactly_one_model_that_never_saw_it(tiny_prepared, monkeypatch):
    SpyEstimator.instances = []
    monkeypatch.setattr(baseline, "build_estimator", lambda cfg, seed: SpyEstimator())
    run = run_baseline(tiny_prepared, BaselineConfig(save_model=False), show_progress=False)
    p = tiny_prepared
    spies = SpyEstimator.instances
    assert len(spies) == p.num_folds
    x_train = (p.x_train.reshape(len(p.x_train), -1).astype(np.float32) / np.float32(255.0))
    keys = [row.tobytes() for row in x_train]
    assert len(set(keys)) == len(keys), "the tiny faces must be distinct for this test"

    oof = run.proba("oof")
    assert (oof[:, 0] == 0).all(), "an out-of-fold row was predicted by a model trained on it"
    # Exactly one model predicted each training row, and it is the model of that row's fold.
    predicted_by = [[s.id for s in spies if key in set(s.predicted)] for key in keys]
    assert all(len(ids) == 1 for ids in predicted_by)
    np.testing.assert_allclose(oof[:, 1], 0.5 + np.array([ids[0] for ids in predicted_by]) / 100, atol=1e-6)
    for spy in spies:  # each fold model trained on the other folds only
        fold = spy.id
        trained = np.array([key in spy.seen for key in keys])
        np.testing.assert_array_equal(trained, p.train_folds != fold)
    # val and test are the mean of all fold models; none of them saw a val or test row.
    assert (run.proba("val")[:, 0] == 0).all() and (run.proba("test")[:, 0] == 0).all()


def test_one_nearest_neighbour_out_of_fold_cannot_recall_its_own_label(in_tmp):
    """With random labels on random faces, 1-NN scores ~1/7 honestly and 1.0 if a row leaks."""
    rng = np.random.default_rng(3)
    n = 210
    x = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, size=n)
    fold = (np.arange(n) % 3).astype(np.int8)
    fold[::7] = -1
    prepared = write_prepared(in_tmp / "data" / "prepared", "noise", x=x, y=y, fold=fold, x_test=x[1:6],
                              test_ids=np.arange(5), y_test=None, manifest={})
    run = run_baseline(prepared, BaselineConfig(model="knn", knn_k=1, pca=0, save_model=False), show_progress=False)
    assert run.metrics["oof_accuracy"] < 0.4
    # The test rows are copies of training rows 1-5: the 2 of 3 fold models that saw one recall its label.
    assert run.proba("test").max(axis=1).min() >= 2 / 3 - 1e-6


def test_resolve_fills_model_defaults_and_checks_values():
    svm = resolve(BaselineConfig(model="svm"))
    assert (svm.pca, svm.max_train_rows) == (50, 8000)
    knn = resolve(BaselineConfig(model="knn"))
    assert (knn.pca, knn.max_train_rows) == (100, 0)
    assert resolve(BaselineConfig()).pca == 0
    with pytest.raises(FerkaggleError, match="max_features"):
        resolve(BaselineConfig(max_features="lots"))
    with pytest.raises(FerkaggleError, match="n_estimators"):
        resolve(BaselineConfig(n_estimators=0))


def test_training_row_cap_is_applied_per_fold(tiny_prepared):
    run = run_baseline(tiny_prepared, BaselineConfig(model="nb", max_train_rows=50), show_progress=False)
    assert [f["n_train"] for f in run.metrics["folds"]] == [50, 50, 50]
    assert run.info["config"]["max_train_rows"] == 50


def test_presets_load_and_unknown_keys_fail(in_tmp):
    for name in ("rf-hog", "logreg", "knn", "svm", "nb", "extra-trees", "kmeans", "kmeans-logreg"):
        cfg = load_preset(BaselineConfig, name, subdir="baseline")
        resolve(cfg)
    assert load_preset(BaselineConfig, "rf-hog", subdir="baseline").features == "hog"
    bad = in_tmp / "bad.toml"
    bad.write_text('model = "rf"\nn_trees = 5\n')
    with pytest.raises(FerkaggleError, match="unknown key 'n_trees'"):
        load_preset(BaselineConfig, str(bad), subdir="baseline")


def test_needs_at_least_two_folds(in_tmp):
    x = np.zeros((20, 48, 48), np.uint8)
    prepared = write_prepared(in_tmp / "p", "one", x=x, y=np.arange(20) % 7, fold=np.r_[np.zeros(15), -np.ones(5)],
                              x_test=x[:2], test_ids=np.arange(2), y_test=None, manifest={})
    with pytest.raises(FerkaggleError, match="no CV folds"):
        run_baseline(prepared, BaselineConfig(model="nb"), show_progress=False)


def test_cli_baseline_then_leaderboard(tiny_prepared):
    runner = CliRunner()
    result = runner.invoke(app, ["baseline", "--model", "rf", "--n-estimators", "4", "--seed", "1", "--no-save-model"])
    assert result.exit_code == 0, result.output
    assert "3-fold CV" in result.output and "mean" in result.output and "holdout-val" in result.output
    result = runner.invoke(app, ["baseline", "--model", "logreg", "--c", "0.5", "--max-iter", "20"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["leaderboard", "--format", "json"])
    rows = json.loads(result.output)
    assert {r["model"] for r in rows} == {"rf", "logreg"}
    logreg = next(r for r in rows if r["model"] == "logreg")
    assert "C=0.5" in logreg["summary"]
    result = runner.invoke(app, ["leaderboard"])
    assert result.exit_code == 0 and "current prepared data tiny" in result.output
    result = runner.invoke(app, ["leaderboard", "--format", "markdown"])
    assert "| rf 4 trees, pixels |" in result.output


@pytest.mark.parametrize("args, needle", [
    (["--model", "forest"], "'forest' is not one of 'rf', 'extra-trees', 'logreg', 'knn', 'svm', 'nb', 'kmeans', 'kmeans-logreg'"),
    (["--features", "sift"], "'sift' is not one of 'pixels', 'hog'"),
    (["--class-weight", "heavy"], "'heavy' is not one of 'none', 'balanced'"),
])
def test_cli_unknown_choices_are_usage_errors(tiny_prepared, args, needle):
    result = CliRunner().invoke(app, ["baseline", *args])
    assert usage_error(result, needle), result.output


@pytest.mark.parametrize("args, needle", [
    (["--c", "2"], "--c applies to logreg, kmeans-logreg or svm: give --model logreg, kmeans-logreg or svm"),
    (["--config", "no-such-preset"], "no preset named"),
    (["--model", "rf", "--c", "2"], "--c applies to logreg, kmeans-logreg or svm, not rf"),
    (["--max-features", "2"], "max_features must be sqrt, log2 or a fraction in (0, 1], not '2'"),
    (["--data", "nowhere"], "not a prepared data folder"),
])
def test_cli_user_errors_are_one_line(tiny_prepared, args, needle):
    result = CliRunner().invoke(app, ["baseline", *args])
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
