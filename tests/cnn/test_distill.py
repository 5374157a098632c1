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


def _hflip(run, faces):
    import keras

    model = keras.models.load_model(run.model_file(), compile=False)
    images = np.asarray(faces, np.float32)[..., None]
    return (np.asarray(to_numpy(model(images, training=False)), np.float64)
            + np.asarray(to_numpy(model(images[:, :, ::-1], training=False)), np.float64)) / 2


def test_the_student_fits_on_the_label_and_teacher_mixture(prepared, teachers, monkeypatch, tmp_path):
    seen = {}
    real = train_module.fit_trial

    def spy(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs):
        seen.update(x=np.asarray(x_train).copy(), y=np.asarray(y_train).copy(), targets=kwargs.get("targets"))
        return real(x_train, y_train, x_stop, y_stop, cfg, state_dir, **kwargs)

    monkeypatch.setattr(train_module, "fit_trial", spy)
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
