"""Free accuracy at the end of training: ten-view TTA (tencrop, shift), weight averaging (SWA) and
snapshot ensembles.

Truth is computed here independently of the cnn package: the views are cut, padded and resized with
NumPy (a bilinear resize with half-pixel centres, written out below), the averaged weights are
the NumPy mean of the epoch weights read back from each epoch's last.keras, and the BatchNorm
statistics are the mean/variance of the layer's inputs computed with a sub-model and NumPy, and a
snapshot ensemble's output is the NumPy mean of the snapshot files' outputs.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ferkaggle.cnn import averaging, record
from ferkaggle.cnn.averaging import final_model, load_best, load_swa, recompute_bn, snapshot_ensemble, swa_update
from ferkaggle.cnn.config import load_train_config, override
from ferkaggle.cnn.fit import fit_trial
from ferkaggle.cnn.runtime import tensorflow_backend
from ferkaggle.cnn.train import train_config
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from ferkaggle.photos.export import export_run
from ferkaggle.photos.tf_lite import tflite_predict
from ferkaggle.photos.predictor import Predictor
from ferkaggle.runs.checkpoints import snapshot_file
from helpers.fakes import make_tiny_prepared, to_numpy  # noqa: E402

CORNERS = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]  # top-left, top-right, bottom-left, bottom-right, centre


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """[h, w] -> [size, size], bilinear with half-pixel centres and no antialiasing (TF2's resize)."""
    def axis(n_in):
        src = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, fr = axis(image.shape[0])
    c0, c1, fc = axis(image.shape[1])
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def numpy_views(face: np.ndarray, tta: str) -> list[np.ndarray]:
    face = face.astype(np.float64)
    if tta == "tencrop":
        bases = [resize_bilinear(face[t:t + 44, left:left + 44], 48) for t, left in CORNERS]
    else:  # shift by 2 pixels, edge pixels repeated
        padded = np.pad(face, 2, mode="edge")
        bases = [padded[t:t + 48, left:left + 48] for t, left in CORNERS]
    return [v for b in bases for v in (b, b[:, ::-1])]


def numpy_tta(model, faces: np.ndarray, tta: str) -> np.ndarray:
    out = []
    for face in faces:
        views = np.stack(numpy_views(face, tta))[..., None].astype(np.float32)
        out.append(to_numpy(model(views, training=False)).mean(axis=0))
    return np.stack(out)


@pytest.fixture(scope="module")
def tencrop_run(prepared, tmp_path_factory):
    cfg = override(load_train_config("tiny"), {"tta": "tencrop", "model": {"width": 4}})
    return train_config(prepared, cfg, seed=0, root=tmp_path_factory.mktemp("runs"))


def _model(run):
    import keras

    return keras.models.load_model(run.dir / "model.keras", compile=False)


@pytest.mark.parametrize("tta", ["tencrop", "shift"])
def test_ten_view_tta_is_the_mean_over_views_cut_with_numpy(tencrop_run, prepared, tta):
    model = _model(tencrop_run)
    faces = np.asarray(prepared.x_val[:12])
    np.testing.assert_allclose(predict_proba(model, faces, tta, batch_size=5), numpy_tta(model, faces, tta), atol=1e-5)


def test_tencrop_run_records_tencrop_probabilities_and_predict_uses_them(tencrop_run, prepared):
    assert tencrop_run.metrics["tta"] == "tencrop" and "tta tencrop" in tencrop_run.info["summary"]
    model = _model(tencrop_run)
    np.testing.assert_allclose(tencrop_run.proba("val"), numpy_tta(model, prepared.x_val, "tencrop"), atol=1e-5)
    faces = np.asarray(prepared.x_test[:10])
    np.testing.assert_allclose(Predictor.from_run(tencrop_run).predict(faces), tencrop_run.proba("test")[:10], atol=1e-5)


def test_export_builds_tencrop_in(tencrop_run, prepared, tmp_path):
    import keras

    faces = np.asarray(prepared.x_test)
    path = export_run(tencrop_run, "keras", tmp_path / "fer.keras")
    got = keras.models.load_model(path).predict(faces.reshape(-1, 48, 48, 1).astype("float32"), verbose=0)
    np.testing.assert_allclose(got, tencrop_run.proba("test"), atol=1e-5)
    if tensorflow_backend():
        lite = tflite_predict(export_run(tencrop_run, "tflite", tmp_path / "fer.tflite"), faces)
        np.testing.assert_allclose(lite, tencrop_run.proba("test"), atol=1e-5)


def test_unknown_tta_is_one_clear_error(tencrop_run, prepared):
    with pytest.raises(FerkaggleError, match="unknown tta 'fivecrop'"):
        predict_proba(_model(tencrop_run), prepared.x_val[:2], "fivecrop")


# ----------------------------------------------------------------------------- SWA

def _swa_config(**changes):
    return override(load_train_config("tiny"), {"epochs": 3, "swa_epochs": 2, "model": {"width": 4},
                                                "optim": {"optimizer": "sgd", "learning_rate": 0.05}, **changes})


def test_swa_weights_are_the_mean_of_the_last_epochs_weights(prepared, tmp_path):
    import keras

    cfg = _swa_config(swa_bn="average")
    fit, stop = prepared.stopping_split(0)
    args = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop], cfg, tmp_path)
    per_epoch = []
    for epoch in (1, 2, 3):  # one epoch at a time (resuming), reading each epoch's weights back
        fit_trial(*args, target_epochs=epoch)
        per_epoch.append(keras.models.load_model(tmp_path / "last.keras", compile=False).get_weights())
    fit_trial(*args, target_epochs=3)  # already done: must not average epoch 3 twice
    model, epochs = load_swa(tmp_path, cfg)
    assert epochs == [2, 3]
    expected = [(a.astype(np.float64) + b) / 2 for a, b in zip(per_epoch[1], per_epoch[2])]
    assert not np.allclose(per_epoch[1][0], per_epoch[2][0])  # the two epochs really differ
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # An epoch end replayed after an interrupt counts once; a new epoch joins the mean.
    other = keras.models.load_model(tmp_path / "last.keras", compile=False)
    other.set_weights(per_epoch[0])
    swa_update(tmp_path, other, 3)
    for got, want in zip(load_swa(tmp_path, cfg)[0].get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    swa_update(tmp_path, other, 4)
    model, epochs = load_swa(tmp_path, cfg)
    assert epochs == [2, 3, 4]
    for got, a, b, c in zip(model.get_weights(), *per_epoch):
        np.testing.assert_allclose(got, (a.astype(np.float64) + b + c) / 3, rtol=1e-6, atol=1e-7)


def test_recompute_bn_sets_the_statistics_of_the_layer_inputs(tencrop_run, prepared):
    import keras

    model = _model(tencrop_run)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert norms and drops
    first = norms[0]
    x = np.asarray(prepared.x[:150])
    feed = keras.Model(model.input, first.input)  # the first BN's inputs (nothing before it is random)
    inputs = np.asarray(to_numpy(feed(x.astype(np.float32)[..., None], training=False)), np.float64)
    batches = [inputs[:64], inputs[64:128], inputs[128:]]  # batch_size 64: sizes 64, 64, 22
    sizes = np.array([len(b) for b in batches], np.float64)
    mean = sum(s * b.mean(axis=(0, 1, 2)) for s, b in zip(sizes, batches)) / sizes.sum()
    var = sum(s * b.var(axis=(0, 1, 2)) for s, b in zip(sizes, batches)) / sizes.sum()
    momentum, rate = first.momentum, drops[0].rate
    assert recompute_bn(model, x, batch_size=64) == len(norms)
    np.testing.assert_allclose(np.asarray(first.moving_mean), mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(first.moving_variance), var, rtol=1e-3, atol=1e-4)
    assert first.momentum == momentum and drops[0].rate == rate  # restored


def test_swa_is_chosen_on_the_stop_split_only(prepared, tmp_path):
    # wide enough, and Adam, so that the best and the averaged weights predict more than one class and
    # disagree, on TensorFlow and on JAX alike (SGD at width 4 left both at one class on JAX)
    cfg = _swa_config(model={"width": 8}, optim={"optimizer": "adam", "learning_rate": 0.003})
    fit, stop = prepared.stopping_split(0)
    fit_trial(prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop], cfg, tmp_path)
    x_stop = np.asarray(prepared.x[stop])
    best_pred = predict_proba(final_model(tmp_path, dataclasses.replace(cfg, swa_epochs=0), prepared.x[fit], x_stop,
                                          prepared.y[stop])[0], x_stop, "none").argmax(1)
    swa_model, _ = load_swa(tmp_path, cfg, prepared.x[fit])
    swa_pred = predict_proba(swa_model, x_stop, "none").argmax(1)
    assert (best_pred != swa_pred).any(), "the averaged and the best weights should disagree somewhere"
    # labels that agree with the averaged model: it is chosen; labels that agree with the best checkpoint: it is kept
    _, report = final_model(tmp_path, cfg, prepared.x[fit], x_stop, swa_pred)
    assert report["used"] is True and report["stop_accuracy"] == 1.0 and report["epochs"] == [2, 3]
    _, report = final_model(tmp_path, cfg, prepared.x[fit], x_stop, best_pred)
    assert report["used"] is False and report["best_checkpoint_stop_accuracy"] == 1.0


@pytest.mark.parametrize("take", ["averaged", "best"])
def test_swa_run_records_its_choice_and_stores_the_model_it_scored(prepared, tmp_path, monkeypatch, take):
    real = record.final_model

    def forced(state_dir, cfg, x_fit, x_stop, y_stop):  # whatever the stop split says: model.keras must be it
        _, report = real(state_dir, cfg, x_fit, x_stop, y_stop)
        if take == "averaged":
            return load_swa(state_dir, cfg, x_fit)[0], {**report, "used": True}
        return load_best(state_dir), {**report, "used": False}

    monkeypatch.setattr(record, "final_model", forced)  # save_run_results looks it up in cnn.record
    run = train_config(prepared, _swa_config(), seed=0, root=tmp_path)
    swa = run.metrics["swa"]
    assert swa["epochs"] == [2, 3] and swa["bn"] == "recompute"
    assert swa["used"] is (take == "averaged")
    assert "swa2" in run.info["summary"]
    np.testing.assert_allclose(predict_proba(_model(run), prepared.x_val, "hflip"), run.proba("val"), atol=1e-5)
    assert json.loads((run.dir / "metrics.json").read_text())["swa"] == swa


def test_swa_epochs_beyond_epochs_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epochs = 3\nswa_epochs = 4\n")
    with pytest.raises(FerkaggleError, match="swa_epochs must be between 0 and epochs"):
        load_train_config(path)


def test_kfold_run_reports_each_folds_swa_choice(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "prepared", n=100, n_test=10, folds=2)
    run = train_config(prepared, _swa_config(), folds=True, root=tmp_path / "runs")
    reports = run.metrics["swa_folds"]
    assert len(reports) == 2 and all(r["epochs"] == [2, 3] and isinstance(r["used"], bool) for r in reports)
    np.testing.assert_allclose(run.proba("oof").sum(axis=1), 1.0, atol=1e-4)


# ----------------------------------------------------------------------------- snapshot ensembles

def _snapshot_config(**changes):
    return override(load_train_config("tiny"), {"epochs": 4, "snapshots": 2, "model": {"width": 4},
                                                "optim": {"optimizer": "sgd", "learning_rate": 0.05,
                                                          "schedule": "cosine", "cycles": 2}, **changes})


def test_snapshots_are_the_models_at_the_cycle_ends_and_the_ensemble_is_their_mean(prepared, tmp_path):
    import keras

    cfg = _snapshot_config()
    fit, stop = prepared.stopping_split(0)
    args = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop], cfg, tmp_path)
    last = {}
    for epoch in (1, 2, 3, 4):  # one epoch at a time (resuming), reading each epoch's model back
        fit_trial(*args, target_epochs=epoch)
        last[epoch] = keras.models.load_model(tmp_path / "last.keras", compile=False)
    # 4 epochs in 2 cycles: the snapshots are the models after epochs 2 and 4, nothing else
    assert sorted(p.name for p in tmp_path.glob("snapshot-*.keras")) == ["snapshot-0002.keras", "snapshot-0004.keras"]
    ensemble, epochs = snapshot_ensemble(tmp_path, 2)
    assert epochs == [2, 4]
    faces = np.asarray(prepared.x_val[:40])
    images = faces.astype(np.float32)[..., None]
    members = [np.asarray(to_numpy(last[e](images, training=False)), np.float64) for e in (2, 4)]
    assert not np.allclose(members[0], members[1], atol=1e-3)  # the two snapshots really differ
    want = (members[0] + members[1]) / 2
    np.testing.assert_allclose(predict_proba(ensemble, faces, "none"), want, atol=1e-5)
    # with hflip TTA: the mean over both views of the members' mean
    flipped = [np.asarray(to_numpy(last[e](images[:, :, ::-1], training=False)), np.float64) for e in (2, 4)]
    np.testing.assert_allclose(predict_proba(ensemble, faces, "hflip"), (want + (flipped[0] + flipped[1]) / 2) / 2,
                               atol=1e-5)
    # only the last `snapshots` of the cycle ends are averaged
    (tmp_path / "snapshot-0002.keras").rename(tmp_path / "snapshot-0001.keras")
    ensemble, epochs = snapshot_ensemble(tmp_path, 1)
    assert ensemble is None and epochs == [4]


def test_snapshot_ensemble_is_chosen_on_the_stop_split_only(prepared, tmp_path):
    import keras

    cfg = _snapshot_config()
    fit, stop = prepared.stopping_split(0)
    fit_trial(prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop], cfg, tmp_path)
    x_stop = np.asarray(prepared.x[stop])
    best_pred = predict_proba(final_model(tmp_path, dataclasses.replace(cfg, snapshots=0), prepared.x[fit], x_stop,
                                          prepared.y[stop])[0], x_stop, "none").argmax(1)
    # make the two snapshots vote for a class the best checkpoint never predicts (a large output bias)
    other = int((np.bincount(best_pred, minlength=7)).argmin())
    for epoch in (2, 4):
        snap = keras.models.load_model(snapshot_file(tmp_path, epoch), compile=False)
        kernel, bias = snap.layers[-1].get_weights()
        bias[other] += 50.0
        snap.layers[-1].set_weights([kernel, bias])
        snap.save(snapshot_file(tmp_path, epoch))
    assert (best_pred != other).all()
    # stop labels that agree with the ensemble: it is chosen; labels that agree with the best checkpoint: it is kept
    model, report = final_model(tmp_path, cfg, prepared.x[fit], x_stop, np.full(len(x_stop), other))
    assert report["used"] is True and report["stop_accuracy"] == 1.0 and report["epochs"] == [2, 4]
    assert report["best_checkpoint_stop_accuracy"] == 0.0 and report["member_stop_accuracy"] == [1.0, 1.0]
    assert (predict_proba(model, x_stop, "none").argmax(1) == other).all()
    model, report = final_model(tmp_path, cfg, prepared.x[fit], x_stop, best_pred)
    assert report["used"] is False and report["best_checkpoint_stop_accuracy"] == 1.0 and report["stop_accuracy"] == 0.0
    np.testing.assert_array_equal(predict_proba(model, x_stop, "none").argmax(1), best_pred)


def test_snapshot_run_stores_the_ensemble_it_scored(prepared, tmp_path, monkeypatch):
    import shutil

    import keras

    real = record.final_model
    kept = tmp_path / "kept"

    def always_snapshots(state_dir, cfg, x_fit, x_stop, y_stop):  # whatever the stop split says, take the ensemble
        shutil.copytree(state_dir, kept)  # the snapshot files, to score the members independently
        model, report = real(state_dir, cfg, x_fit, x_stop, y_stop)
        return averaging.snapshot_ensemble(state_dir, cfg.snapshots)[0], {**report, "used": True}

    monkeypatch.setattr(record, "final_model", always_snapshots)
    run = train_config(prepared, _snapshot_config(), seed=0, root=tmp_path / "runs")
    assert run.metrics["snapshots"]["epochs"] == [2, 4] and run.metrics["snapshots"]["used"] is True
    assert "snap2" in run.info["summary"] and "cosine x2" in run.info["summary"]
    assert not list(run.dir.rglob("snapshot-*.keras"))  # the checkpoint folder is gone once recorded
    members = [keras.models.load_model(kept / f"snapshot-000{e}.keras", compile=False) for e in (2, 4)]
    want = np.mean([predict_proba(m, prepared.x_val, "hflip") for m in members], axis=0)
    np.testing.assert_allclose(run.proba("val"), want, atol=1e-5)
    # model.keras is the ensemble: loading it the way predict/serve/export do gives the run's probabilities
    stored = keras.models.load_model(run.model_file(), compile=False)
    np.testing.assert_allclose(predict_proba(stored, prepared.x_val, "hflip"), want, atol=1e-5)


BAD_SNAPSHOTS = [
    ("epochs = 12\nsnapshots = 1\n[optim]\nschedule = 'cosine'\ncycles = 3\n", r"snapshots must be 0 \(off\) or between 2"),
    ("epochs = 12\nsnapshots = 4\n[optim]\nschedule = 'cosine'\ncycles = 3\n", r"snapshots must be 0 \(off\) or between 2"),
    ("epochs = 12\n[optim]\nschedule = 'onecycle'\ncycles = 3\n", 'cycles = 3 needs schedule = "cosine"'),
    ("epochs = 2\nsnapshots = 3\n[optim]\nschedule = 'cosine'\ncycles = 3\n", "cannot exceed epochs"),
    ("epochs = 12\nswa_epochs = 2\nsnapshots = 2\n[optim]\nschedule = 'cosine'\ncycles = 2\n", "choose one"),
]


@pytest.mark.parametrize("text,message", BAD_SNAPSHOTS)
def test_bad_snapshot_settings_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FerkaggleError, match=message):
        load_train_config(path)
