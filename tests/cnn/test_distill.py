"""Knowledge distillation (`ferkaggle train --teacher`): the student fits on label/teacher mixtures.

Truth is computed here: the teachers' probabilities are their stored models' outputs on each face
and its mirror, averaged with NumPy, mixed with a one-hot label written out by hand; the targets
the training pipeline yields are matched back to their faces by the image bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferkaggle.cnn.fit as fit_module
import ferkaggle.cnn.train as train_module
from ferkaggle.cli.app import app
from ferkaggle.cnn.config import load_train_config, override  # noqa: E402
from ferkaggle.cnn.dataset import make_dataset
from ferkaggle.cnn.train import train_config
from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from ferkaggle.runs.registry import list_runs
from helpers.fakes import make_fake_run, make_tiny_prepared, to_numpy  # noqa: E402


@pytest.fixture(scope="module")
def teachers(prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = override(load_train_config("tiny"), {"epochs": 2, "model": {"width": 4}})
    return [train_config(prepared, override(cfg, {"name": f"teacher{i}"}), seed=i, root=root) for i in (1, 2)]


@pytest.fixture
def fit_seen(monkeypatch):
    """What train_config hands fit_trial (fit faces, labels, stop faces, targets), recorded, then trained on."""
    seen = {}
    real = train_module.fit_trial

    def spy(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs):
        seen.update(x=np.asarray(x_train).copy(), y=np.asarray(y_train).copy(), stop=np.asarray(x_stop).copy(),
                    targets=kwargs.get("targets"))
        return real(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs)

    monkeypatch.setattr(train_module, "fit_trial", spy)
    return seen


def _hflip(run, faces):
    import keras

    model = keras.models.load_model(run.model_file(), compile=False)
    images = np.asarray(faces, np.float32)[..., None]
    return (np.asarray(to_numpy(model(images, training=False)), np.float64)
            + np.asarray(to_numpy(model(images[:, :, ::-1], training=False)), np.float64)) / 2


def test_the_student_fits_on_the_label_and_teacher_mixture(prepared, teachers, fit_seen, monkeypatch, tmp_path):
    seen = fit_seen
    fed = []
    real_dataset = fit_module.make_dataset

    def dataset_spy(x, y, cfg, **kwargs):  # what the training pipeline is actually built from
        if kwargs.get("training"):
            fed.append(kwargs.get("targets"))
        return real_dataset(x, y, cfg, **kwargs)

    monkeypatch.setattr(fit_module, "make_dataset", dataset_spy)  # fit_trial looks it up in cnn.fit
    cfg = override(load_train_config("tiny"), {"name": "student", "model": {"width": 4}})
    run = train_config(prepared, cfg, seed=0, root=tmp_path, teachers=teachers, teacher_weight=0.3)
    x, y = seen["x"], seen["y"]
    one_hot = np.zeros((len(y), 7))
    one_hot[np.arange(len(y)), y] = 1.0
    want = 0.7 * one_hot + 0.3 * (_hflip(teachers[0], x) + _hflip(teachers[1], x)) / 2
    np.testing.assert_allclose(seen["targets"], want, atol=1e-5)
    np.testing.assert_allclose(seen["targets"].sum(axis=1), 1.0, atol=1e-5)
    assert len(fed) == 1 and fed[0] is seen["targets"]
    holdout = {row.tobytes() for row in np.asarray(prepared.x_val)}
    assert not any(row.tobytes() in holdout for row in x)  # the student still never sees the holdout
    assert run.info["teachers"] == [t.run_id for t in teachers] and run.info["teacher_weight"] == 0.3
    assert "distilled from 2 runs (weight 0.3)" in run.info["summary"]


def test_soft_targets_reach_the_training_batches(prepared):
    cfg = override(load_train_config("tiny"), {"augment": {"hflip": 0.0, "rotation": 0.0, "shift": 0.0, "zoom": 0.0,
                                                           "erasing": 0.0, "mixup": 0.0}})
    x = np.asarray(prepared.x_train[:50])
    y = np.asarray(prepared.y_train[:50])
    rng = np.random.default_rng(0)
    targets = rng.dirichlet(np.ones(7), size=len(x)).astype(np.float32)
    by_face = {face.tobytes(): t for face, t in zip(x, targets)}
    assert len(by_face) == len(x)  # the synthetic faces are distinct
    images, labels, _ = next(iter(make_dataset(x, y, cfg, training=True, seed=1, targets=targets)))
    images, labels = np.asarray(images), np.asarray(labels)
    for image, label in zip(images, labels):
        face = image[..., 0].astype(np.uint8).tobytes()
        np.testing.assert_allclose(label, by_face[face], atol=1e-6)


def test_teachers_that_saw_or_chose_on_the_holdout_are_refused(prepared, teachers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = override(load_train_config("tiny"), {"model": {"width": 4}})
    ensemble = make_fake_run(prepared, "ens", 0.3, kind="ensemble")
    with pytest.raises(FerkaggleError, match="an ensemble's weights were fitted on the holdout"):
        train_config(prepared, cfg, teachers=[ensemble])
    refit = make_fake_run(prepared, "refit", 0.3, kind="cnn")
    refit.info.update(refit_rows="all", refit_of="x", run_id=refit.run_id)
    with pytest.raises(FerkaggleError, match="refit on the holdout rows"):
        train_config(prepared, cfg, teachers=[refit])
    old = make_fake_run(prepared, "old", 0.3, kind="cnn")  # no selected_on_score recorded: an older CNN run
    with pytest.raises(FerkaggleError, match="chose its checkpoint on the holdout"):
        train_config(prepared, cfg, teachers=[old])
    for weight in (0.0, 1.5):
        with pytest.raises(FerkaggleError, match="--teacher-weight must be in"):
            train_config(prepared, cfg, teachers=teachers, teacher_weight=weight)
    with pytest.raises(FerkaggleError, match="does not combine with --folds"):
        train_config(prepared, cfg, teachers=teachers, folds=True)
    other = make_tiny_prepared(tmp_path / "other", n=100, n_test=10, seed=5)
    with pytest.raises(FerkaggleError, match="was trained on split"):
        train_config(other, cfg, teachers=teachers)


def test_cli_train_with_a_teacher(tiny_prepared):
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, ["train", "--config", "tiny", "--seed", "1"]).exit_code == 0
    teacher = list_runs()[0]
    result = CliRunner().invoke(app, ["train", "--config", "tiny", "--teacher", teacher.run_id, "--teacher-weight", "0.4"])
    assert result.exit_code == 0, result.output
    student = list_runs()[-1]
    assert student.info["teachers"] == [teacher.run_id] and student.info["teacher_weight"] == 0.4
    result = CliRunner().invoke(app, ["train", "--config", "tiny", "--teacher", teacher.run_id, "--teacher-weight", "2"])
    assert result.exit_code == 1 and "--teacher-weight must be in (0, 1]" in result.output


@pytest.fixture(scope="module")
def with_holdout_copies(tmp_path_factory):
    """A prepared set whose test faces 3, 7 and 11 are a holdout face, the same face again and a near copy of
    another (one pixel changed by 1, which keeps its average hash): hand-placed, so the rows a student may
    pseudo-label are known without the code under test."""
    from ferkaggle.data.prepared import write_prepared
    from ferkaggle.data.synthetic import make_faces

    x, y = make_faces(200, seed=0)
    x_test, _ = make_faces(30, seed=1)
    fold = (np.arange(200) % 3).astype(np.int8)
    fold[::5] = -1  # rows 0, 5, 10, ... are the holdout
    x_test[3] = x[5]
    x_test[7] = x[5]
    near = x[10].copy()
    near[20, 20] = near[20, 20] + 1 if near[20, 20] < 255 else 254
    x_test[11] = near
    return write_prepared(tmp_path_factory.mktemp("copies") / "prepared", "copies", x=x, y=y, fold=fold,
                          x_test=x_test, test_ids=np.arange(30, dtype=np.int64), y_test=None,
                          manifest={"layout": "synthetic", "seed": 0})


def test_pseudo_labels_are_the_teachers_confident_classes_never_a_holdout_copy(prepared, teachers, with_holdout_copies):
    from ferkaggle.cnn.distill import pseudo_labels

    copies = with_holdout_copies
    everything = pseudo_labels(teachers, copies, 0.01)  # every face is confident at 0.01 (7 classes: >= 1/7)
    assert everything.rows.tolist() == [i for i in range(30) if i not in (3, 7, 11)]
    assert everything.confident == 30 and everything.near_holdout == 3
    mean = (_hflip(teachers[0], prepared.x_test) + _hflip(teachers[1], prepared.x_test)) / 2
    threshold = float(np.quantile(mean.max(axis=1), 0.5))  # about half of the faces
    chosen = pseudo_labels(teachers, prepared, threshold)
    want = np.flatnonzero(mean.max(axis=1) >= threshold)
    assert 0 < len(want) < len(mean)
    assert chosen.rows.tolist() == want.tolist()
    assert chosen.labels.tolist() == mean[want].argmax(axis=1).tolist()
    assert chosen.report()["classes"] == np.bincount(mean[want].argmax(axis=1), minlength=7).tolist()


def test_the_student_trains_on_the_labelled_rows_and_the_pseudo_labelled_test_faces(prepared, teachers, fit_seen,
                                                                                   tmp_path):
    seen = fit_seen
    mean = (_hflip(teachers[0], prepared.x_test) + _hflip(teachers[1], prepared.x_test)) / 2
    threshold = float(np.quantile(mean.max(axis=1), 0.6))
    sure = np.flatnonzero(mean.max(axis=1) >= threshold)
    cfg = override(load_train_config("tiny"), {"name": "student", "model": {"width": 4}})
    run = train_config(prepared, cfg, seed=0, root=tmp_path, teachers=teachers, teacher_weight=0.0,
                       pseudo_threshold=threshold)
    fit_idx, stop_idx = prepared.stopping_split(0)
    n = len(fit_idx)
    np.testing.assert_array_equal(seen["x"][:n], prepared.x[fit_idx])  # the labelled rows, as without
    np.testing.assert_array_equal(seen["x"][n:], np.asarray(prepared.x_test)[sure])  # then the sure test faces
    np.testing.assert_array_equal(seen["stop"], prepared.x[stop_idx])  # the stop split: labelled rows only
    labels = np.concatenate([prepared.y[fit_idx], mean[sure].argmax(axis=1)])
    np.testing.assert_array_equal(seen["y"], labels)
    np.testing.assert_array_equal(seen["targets"], np.eye(7, dtype=np.float32)[labels])  # weight 0: one-hot
    holdout = {row.tobytes() for row in np.asarray(prepared.x_val)}
    assert not any(row.tobytes() in holdout for row in seen["x"])
    report = run.info["pseudo_labels"]
    assert report["rows"] == len(sure) and report["threshold"] == threshold
    assert f"pseudo-labels on {len(sure)} test faces" in run.info["summary"] and "distilled" not in run.info["summary"]


def test_pseudo_labels_are_refused_without_teachers_or_with_a_threshold_outside_0_1(prepared, teachers, tmp_path):
    cfg = override(load_train_config("tiny"), {"model": {"width": 4}})
    with pytest.raises(FerkaggleError, match="--pseudo-labels needs at least one --teacher"):
        train_config(prepared, cfg, root=tmp_path, pseudo_threshold=0.8)
    for threshold in (0.0, 1.0, 1.5):
        with pytest.raises(FerkaggleError, match=r"--pseudo-labels must be a confidence in \(0, 1\)"):
            train_config(prepared, cfg, root=tmp_path, teachers=teachers, pseudo_threshold=threshold)
    with pytest.raises(FerkaggleError, match=r"--teacher-weight must be in \[0, 1\] with --pseudo-labels"):
        train_config(prepared, cfg, root=tmp_path, teachers=teachers, teacher_weight=-0.1, pseudo_threshold=0.8)
    assert not (tmp_path / "cnn").exists() and not list(tmp_path.iterdir())  # nothing written


def test_cli_train_with_pseudo_labels(tiny_prepared):
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, ["train", "--config", "tiny", "--seed", "1"]).exit_code == 0
    teacher = list_runs()[0]
    result = CliRunner().invoke(app, ["train", "--config", "tiny", "--teacher", teacher.run_id, "--pseudo-labels", "0.2"])
    assert result.exit_code == 0, result.output
    student = list_runs()[-1]
    assert student.info["teacher_weight"] == 0.0 and student.info["pseudo_labels"]["threshold"] == 0.2
    assert "pseudo-labelled test faces" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["train", "--config", "tiny", "--pseudo-labels", "0.8"])
    assert result.exit_code == 1 and "--pseudo-labels needs at least one --teacher" in result.output
