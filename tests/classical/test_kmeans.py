"""k-means baselines: clusters mapped to their training rows' majority label, and k-means distances
feeding a logistic regression, on blobs whose truth is known; the mapping sees no held-out label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkaggle.classical.baseline import BaselineConfig, resolve, run_baseline
from ferkaggle.classical.kmeans import KMeansClassifier
from ferkaggle.cli.app import app
from ferkaggle.core.presets import load_preset
from ferkaggle.data.prepared import write_prepared


def blob_faces(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 [N,48,48]: a face of blob b is a bright 16x16 square in tile b of a 3x3 grid on a dark
    background, plus a little noise: blobs sit ~100x further apart than the noise spreads them."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 12, (len(labels), 48, 48)).astype(np.uint8)
    for i, b in enumerate(labels):
        r, c = divmod(int(b), 3)
        x[i, 16 * r:16 * r + 16, 16 * c:16 * c + 16] += 200
    return x


def test_well_separated_blobs_are_classified_perfectly():
    blobs = np.repeat(np.arange(7), 20)
    x = blob_faces(blobs).reshape(len(blobs), -1) / 255.0
    labels = (blobs + 3) % 7  # the cluster index k-means finds says nothing about the label: the mapping must
    model = KMeansClassifier(n_clusters=7, n_init=3, random_state=0).fit(x, labels)
    fresh = np.repeat(np.arange(7), 5)
    x_new = blob_faces(fresh, seed=1).reshape(len(fresh), -1) / 255.0
    np.testing.assert_array_equal(model.predict(x_new), (fresh + 3) % 7)
    proba = model.predict_proba(x_new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.max(axis=1) == 1.0).all()  # each blob's training rows share one label


def test_a_cluster_predicts_its_majority_label_with_the_training_shares():
    blobs = np.repeat([0, 1], 10)
    x = blob_faces(blobs).reshape(20, -1) / 255.0
    labels = np.array([4] * 7 + [2] * 3 + [5] * 6 + [6] * 4)  # blob 0: 7 x 4, 3 x 2; blob 1: 6 x 5, 4 x 6
    model = KMeansClassifier(n_clusters=2, random_state=0).fit(x, labels)
    np.testing.assert_array_equal(model.classes_, [2, 4, 5, 6])
    np.testing.assert_array_equal(model.predict(x[[0, 10]]), [4, 5])
    np.testing.assert_allclose(model.predict_proba(x[[0, 10]]), [[0.3, 0.7, 0, 0], [0, 0, 0.6, 0.4]])


def _blob_set(root, holdout_label_shift: int):
    """A prepared set of blobs: training rows of blob b are labelled b; holdout and test rows of
    blob b carry label b + shift, so a mapping that saw them would give that label some mass."""
    blobs = np.repeat(np.arange(7), 30)
    fold = (np.arange(len(blobs)) % 3).astype(np.int8)
    fold[::5] = -1
    y = np.where(fold == -1, (blobs + holdout_label_shift) % 7, blobs)
    x_test_blobs = np.arange(7)
    return write_prepared(root, "blobs", x=blob_faces(blobs), y=y, fold=fold, x_test=blob_faces(x_test_blobs, seed=2),
                          test_ids=np.arange(7), y_test=(x_test_blobs + holdout_label_shift) % 7, manifest={}), blobs


def test_the_cluster_labels_are_learned_on_each_folds_training_rows_only(in_tmp):
    prepared, blobs = _blob_set(in_tmp / "data" / "prepared", holdout_label_shift=1)
    cfg = BaselineConfig(model="kmeans", n_clusters=7, kmeans_n_init=3, save_model=False)
    run = run_baseline(prepared, cfg, show_progress=False)
    m = run.metrics
    assert m["cv_mean"] == 1.0 and m["oof_accuracy"] == 1.0  # out-of-fold rows keep their blob's label
    val_blobs = blobs[prepared.val_idx]
    val = run.proba("val")
    np.testing.assert_array_equal(val.argmax(axis=1), val_blobs)
    # Not one bit of mass on the holdout's own labels, nor on the test's: nothing of theirs was fitted on.
    assert (val[np.arange(len(val)), (val_blobs + 1) % 7] == 0).all()
    assert m["val_accuracy"] == 0.0 and m["test_accuracy"] == 0.0


def test_kmeans_logreg_separates_what_a_linear_model_on_pixels_cannot(in_tmp):
    """Grey levels 30 / 128 / 226 (plus noise) labelled 0 / 1 / 0: the middle class lies between the
    others on every pixel, so no linear function of the pixels separates it; distances to 3 centroids do."""
    rng = np.random.default_rng(0)
    level = np.tile([0, 1, 2], 70)
    x = (np.array([30, 128, 226])[level][:, None, None] + rng.integers(-10, 11, (len(level), 48, 48))).astype(np.uint8)
    fold = (np.arange(len(level)) // 3 % 3).astype(np.int8)  # every fold holds every level
    fold[::5] = -1
    prepared = write_prepared(in_tmp / "data" / "prepared", "levels", x=x, y=(level == 1).astype(np.int8), fold=fold,
                              x_test=x[:5], test_ids=np.arange(5), y_test=None, manifest={})
    run = run_baseline(prepared, BaselineConfig(model="kmeans-logreg", n_clusters=3, kmeans_n_init=3, save_model=False),
                       show_progress=False)
    assert run.metrics["cv_mean"] == 1.0 and run.metrics["val_accuracy"] == 1.0
    assert run.info["summary"].startswith("kmeans-logreg 3 clusters")
    linear = run_baseline(prepared, BaselineConfig(model="logreg", save_model=False), show_progress=False)
    assert linear.metrics["cv_mean"] < 0.8


def test_cluster_defaults_and_presets_are_the_notebooks():
    assert resolve(BaselineConfig(model="kmeans")).n_clusters == 6
    assert resolve(BaselineConfig(model="kmeans-logreg")).n_clusters == 35
    assert resolve(BaselineConfig()).n_clusters == 0
    assert load_preset(BaselineConfig, "kmeans", subdir="baseline").n_clusters == 6
    preset = load_preset(BaselineConfig, "kmeans-logreg", subdir="baseline")
    assert (preset.model, preset.n_clusters) == ("kmeans-logreg", 35)


def test_cli_records_a_kmeans_run_with_cv_scores(tiny_prepared):
    runner = CliRunner()
    result = runner.invoke(app, ["baseline", "--model", "kmeans", "--clusters", "9", "--no-save-model"])
    assert result.exit_code == 0, result.output
    assert "3-fold CV" in result.output and "kmeans 9 clusters" in result.output
    runs = json.loads(runner.invoke(app, ["leaderboard", "--format", "json"]).output)
    assert [r["model"] for r in runs] == ["kmeans"]
    run_dir = next((tiny_prepared.path.parents[2] / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3 and 0.0 <= metrics["cv_mean"] <= 1.0
    assert json.loads((run_dir / "run.json").read_text())["config"]["n_clusters"] == 9


@pytest.mark.parametrize("args, needle", [
    (["--model", "kmeans", "--clusters", "0"], "n_clusters must be at least 1 for kmeans, not 0"),
    (["--model", "kmeans", "--clusters", "500"], "500 k-means clusters need at least as many training rows per fold"),
])
def test_cli_bad_cluster_counts_are_one_line(tiny_prepared, args, needle):
    result = CliRunner().invoke(app, ["baseline", *args, "--no-save-model"])
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
