"""Faces in photos: detection on real photos, crops, the run's own model, the CLI, exports.

The model is a tiny CNN trained for one epoch here (a few seconds); the truth each check
compares against is computed independently: the run's Keras model called directly on a
crop made here with Pillow, the run's saved test probabilities, or a box checked by eye.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ferkaggle.classical.baseline import BaselineConfig, run_baseline
from ferkaggle.cli.app import app
from ferkaggle.cnn.config import load_train_config
from ferkaggle.cnn.runtime import tensorflow_backend
from ferkaggle.cnn.train import train_config
from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.export import export_run
from ferkaggle.photos.faces import HaarDetector, crop_face, make_detector, read_photo, suppress_overlaps
from ferkaggle.photos.tf_lite import tflite_predict
from ferkaggle.photos.predict import predict_photo
from ferkaggle.photos.predictor import Predictor, select_predict_run
from ferkaggle.results.ensemble import EnsembleConfig, run_ensemble
from ferkaggle.runs.registry import prepared_for_run, read_run
from ferkaggle.runs.select import select_run
from helpers.cli import usage_error
from helpers.photos import (ASTRONAUT_FACE, astronaut_rgb, encode_png, group_photo, iou, train_tiny_run,
                            true_faces_found, write_photos)
from helpers.fakes import to_numpy

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny CNN run, a random-forest run on the same data, and the test photos."""
    root = tmp_path_factory.mktemp("photos")
    cnn = train_tiny_run(root)
    prepared = prepared_for_run(cnn)
    forest = run_baseline(prepared, BaselineConfig(n_estimators=12, n_jobs=1), runs_root=root / "runs", show_progress=False)
    return {"root": root, "runs": root / "runs", "cnn": cnn, "forest": forest, "prepared": prepared,
            "photos": write_photos(root / "photos")}


@pytest.fixture(scope="module")
def detector():
    return HaarDetector()


def own_crop(rgb: np.ndarray, box, margin: float) -> np.ndarray:
    """The face crop made independently of faces.py: Pillow grey, a square crop, Lanczos 48x48."""
    x, y, w, h = box
    side = round(max(w, h) * (1 + 2 * margin))
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    gray = Image.fromarray(rgb).convert("L").crop((left, top, left + side, top + side))
    return np.asarray(gray.resize((48, 48), Image.Resampling.LANCZOS), np.uint8)


def keras_tta(run, face: np.ndarray) -> np.ndarray:
    import keras

    model = keras.models.load_model(run.dir / "model.keras")
    x = face.astype(np.float32)[None, :, :, None]
    return (to_numpy(model(x)) + to_numpy(model(x[:, :, ::-1]))) / 2


def test_astronaut_one_face_with_the_runs_own_probabilities(world, detector):
    run = world["cnn"]
    assert run.info["config"]["tta"] == "hflip"
    result = predict_photo(world["photos"]["astronaut"], Predictor.from_run(run), detector, margin=0.15)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert iou(face.box, ASTRONAUT_FACE) > 0.7, face.box
    assert face.probabilities.shape == (7,) and abs(float(face.probabilities.sum()) - 1) < 1e-5
    rgb = np.asarray(Image.open(world["photos"]["astronaut"]).convert("RGB"))
    expected = keras_tta(run, own_crop(rgb, face.box, 0.15))[0]
    np.testing.assert_allclose(face.probabilities, expected, atol=1e-5)
    assert face.emotion == EMOTIONS[int(expected.argmax())]


def test_crop_pads_at_the_border_and_keeps_the_face_centred():
    gray = np.full((100, 100), 120, np.uint8)
    gray[:, 50:] = 200
    # a box reaching 10 px past the left edge: those columns repeat the edge colour (120), not black
    crop = crop_face(gray, (-10, 20, 40, 40), margin=0.0)
    assert crop.shape == (48, 48) and crop[:, :10].min() == 120 and crop.max() == 120
    inside = crop_face(gray, (30, 30, 40, 40), margin=0.0)  # x 30..70: left half 120, right half 200
    assert inside[:, :20].max() == 120 and inside[:, 28:].min() == 200


def test_large_photos_are_searched_smaller_and_boxes_come_back_in_photo_pixels():
    rgb = np.asarray(Image.fromarray(astronaut_rgb()).resize((2048, 2048), Image.Resampling.BILINEAR))
    # searched at 1024 px (the default searches up to 2048 px at full size; this keeps the test quick)
    found = HaarDetector(min_neighbors=8, max_side=1024).detect(rgb)
    # (the enlarged photo's smooth suit texture also gives one false face near the bottom right corner)
    box = max(found, key=lambda b: iou(b, tuple(4 * v for v in ASTRONAUT_FACE)))
    assert iou(box, tuple(4 * v for v in ASTRONAUT_FACE)) > 0.7, found


def test_group_photo_every_face_that_the_full_size_cascade_finds(world):
    """19 real faces 30 to 140 px wide in a 2048x1536 photo, counted by construction: predict finds at
    least as many of them as OpenCV's cascade called directly on the full-size photo, and nothing else."""
    import cv2

    rgb, truth = group_photo()
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    plain = [tuple(int(v) for v in b) for b in cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))]
    result = predict_photo(encode_png(rgb), Predictor.from_run(world["cnn"]), make_detector("haar"), name="group.png")
    found = [face.box for face in result.faces]
    assert true_faces_found(found, truth) >= true_faces_found(plain, truth) >= 16
    assert len(found) == true_faces_found(found, truth), found  # no false faces


def test_overlapping_boxes_keep_the_strongest_one():
    boxes = [(0, 0, 100, 100), (10, 10, 60, 60), (90, 90, 100, 100), (300, 0, 50, 50)]
    # of the first two (IoU only 0.36, but the small one lies wholly inside the large one) the weaker goes,
    # whichever is larger; the third shares 1% of its area with the first and stays; the weak fourth too
    assert suppress_overlaps(boxes, [5, 9, 3, 1]) == [(10, 10, 60, 60), (90, 90, 100, 100), (300, 0, 50, 50)]
    assert sorted(suppress_overlaps(boxes, [9, 5, 3, 1])) == [(0, 0, 100, 100), (90, 90, 100, 100), (300, 0, 50, 50)]


def test_mtcnn_missing_is_one_clear_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mtcnn", None)  # as if the optional extra were not installed
    with pytest.raises(FerkaggleError, match=r"pip install 'ferkaggle\[mtcnn\]'"):
        make_detector("mtcnn")
    with pytest.raises(FerkaggleError, match="unknown detector 'dlib'; choose one of haar, mtcnn"):
        make_detector("dlib")


def test_mtcnn_finds_the_astronaut():
    pytest.importorskip("mtcnn", reason="the optional mtcnn extra is not installed")
    (box,) = make_detector("mtcnn").detect(astronaut_rgb())
    assert iou(box, ASTRONAUT_FACE) > 0.6, box


def test_the_cat_has_no_face(world, detector):
    result = predict_photo(world["photos"]["chelsea"], Predictor.from_run(world["cnn"]), detector)
    assert result.faces == [] and result.error is None and result.size == (451, 300)


def test_read_photo_grey_alpha_and_garbage(tmp_path):
    rgb = astronaut_rgb()
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.webp")
    Image.fromarray(rgb).save(tmp_path / "photo.bmp")
    for name in ("grey.png", "alpha.webp", "photo.bmp"):
        image = read_photo(tmp_path / name)
        assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FerkaggleError, match=r"notes\.txt: not an image"):
        read_photo(tmp_path / "notes.txt")
    with pytest.raises(FerkaggleError, match="upload: the file is empty"):
        read_photo(b"")


def test_predict_cli_batch_goes_on_after_a_corrupt_file(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(world["runs"]))
    photos = world["photos"]
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(photos["broken"]), str(photos["astronaut"]), str(photos["chelsea"]),
                                 "--run", world["cnn"].run_id, "--out", str(out)])
    assert result.exit_code == 1, result.output
    error_lines = [line for line in result.output.splitlines() if "error" in line]
    assert len(error_lines) == 1 and "broken.jpg" in error_lines[0]
    assert "Traceback" not in result.output
    assert "astronaut.jpg" in result.output and "no face found in 1" in result.output
    rows = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text())))
    assert [r["file"] for r in rows] == [str(photos["astronaut"])]
    assert list(rows[0]) == ["file", "face", "x", "y", "w", "h", "emotion", *EMOTIONS]
    assert abs(sum(float(rows[0][e]) for e in EMOTIONS) - 1) < 1e-4
    x, y, w, h = (int(rows[0][k]) for k in "xywh")
    assert iou((x, y, w, h), ASTRONAUT_FACE) > 0.7
    # the annotated copy has the box drawn on it: the box's left edge is now yellow, the original was not
    annotated = np.asarray(Image.open(out / "astronaut.annotated.jpg").convert("RGB")).astype(int)
    original = astronaut_rgb().astype(int)
    edge = (slice(y + 5, y + h - 5), x)
    assert (annotated[edge][:, 0] > 200).all() and (annotated[edge][:, 2] < 130).all()
    assert not ((original[edge][:, 0] > 200) & (original[edge][:, 2] < 130)).all()
    assert (out / "chelsea.annotated.png").is_file() and not (out / "broken.annotated.jpg").exists()


def test_predict_cli_json_and_folders(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(world["runs"]))
    folder = tmp_path / "album"
    folder.mkdir()
    shutil.copy(world["photos"]["astronaut"], folder / "a.jpg")
    shutil.copy(world["photos"]["chelsea"], folder / "b.png")
    (folder / "readme.txt").write_text("not a photo: ignored inside a folder")
    result = runner.invoke(app, ["predict", str(folder), "--format", "json", "--run", world["cnn"].run_id])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [p["file"] for p in payload["photos"]] == [str(folder / "a.jpg"), str(folder / "b.png")]
    (face,) = payload["photos"][0]["faces"]
    assert len(face["box"]) == 4 and set(face["probabilities"]) == set(EMOTIONS)
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)
    assert payload["photos"][1]["faces"] == [] and payload["photos"][1]["message"] == "no face found"


def test_missing_files_and_empty_folders(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(world["runs"]))
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["predict", "nowhere.jpg", "empty", str(world["photos"]["astronaut"]),
                                 "--run", world["cnn"].run_id])
    assert result.exit_code == 1
    assert "nowhere.jpg: no such file" in result.output
    assert "empty: no images" in result.output and "1 face(s) in 1 photo(s)" in result.output
    result = runner.invoke(app, ["predict", "empty", "--run", world["cnn"].run_id])
    assert result.exit_code == 1 and "no photos to predict" in result.output


def test_run_without_a_model_is_one_clear_line(world, tmp_path, monkeypatch):
    monkeypatch.chdir(world["root"])  # its data/prepared: the run's split is the current one
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(tmp_path / "runs"))
    copy = tmp_path / "runs" / world["cnn"].run_id
    shutil.copytree(world["cnn"].dir, copy)
    (copy / "model.keras").unlink()
    result = runner.invoke(app, ["predict", str(world["photos"]["astronaut"]), "--run", world["cnn"].run_id])
    assert result.exit_code == 1
    assert "has no saved model" in result.output and "Traceback" not in result.output
    # `best` is that run (the only one): refused by name, with what to do instead
    result = runner.invoke(app, ["predict", str(world["photos"]["astronaut"])])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and f"`best` is run {world['cnn'].run_id}" in text, result.output
    assert "its model.keras is missing" in text and "--run <run id>" in text, result.output


def test_forest_run_predicts_with_its_saved_folds(world, detector):
    import joblib

    forest = world["forest"]
    result = predict_photo(world["photos"]["astronaut"], Predictor.from_run(forest), detector, margin=0.15)
    (face,) = result.faces
    rgb = np.asarray(Image.open(world["photos"]["astronaut"]).convert("RGB"))
    crop = own_crop(rgb, face.box, 0.15)
    folds = joblib.load(forest.dir / "model.joblib").models
    expected = np.mean([m.predict_proba(crop.reshape(1, -1).astype(np.float32) / 255)[0] for m in folds], axis=0)
    np.testing.assert_allclose(face.probabilities, expected, atol=1e-6)


def test_ensemble_uses_its_members_models(world, detector):
    ensemble, _ = run_ensemble([world["cnn"], world["forest"]], EnsembleConfig(method="mean"), runs_root=world["runs"])
    faces = np.asarray(world["prepared"].x_test[:6])
    combined = Predictor.from_run(ensemble).predict(faces)
    cnn = Predictor.from_run(world["cnn"]).predict(faces)
    forest = Predictor.from_run(world["forest"]).predict(faces)
    np.testing.assert_allclose(combined, (cnn + forest) / 2, atol=1e-6)
    # and those are the ensemble's own recorded test probabilities
    np.testing.assert_allclose(combined, ensemble.proba("test")[:6], atol=1e-5)
    shutil.rmtree(ensemble.dir)


def test_saved_models_reproduce_the_runs_test_probabilities(world):
    for run in (world["cnn"], world["forest"]):
        faces = np.asarray(world["prepared"].x_test)
        np.testing.assert_allclose(Predictor.from_run(run).predict(faces), run.proba("test"), atol=1e-5)


def test_best_that_cannot_predict_is_refused_not_replaced(world, tmp_path):
    """`best` is the run submit would use even when it has no model: predict names it and stops,
    it does not fall back to the next run that has one."""
    no_model = run_baseline(world["prepared"], BaselineConfig(n_estimators=12, n_jobs=1, save_model=False),
                            runs_root=tmp_path / "runs", show_progress=False)
    # make the model-less forest the top of the leaderboard, above a CNN that could predict
    metrics = dict(no_model.metrics, val_accuracy=0.99)
    (no_model.dir / "metrics.json").write_text(json.dumps(metrics))
    shutil.copytree(world["cnn"].dir, tmp_path / "runs" / world["cnn"].run_id)
    prepared_root = world["root"] / "data" / "prepared"
    assert select_run("best", tmp_path / "runs", prepared_root=prepared_root).run_id == no_model.run_id
    with pytest.raises(FerkaggleError, match=rf"`best` is run {no_model.run_id} .*cannot predict.*save_model = false"):
        select_predict_run("best", tmp_path / "runs", prepared_root=prepared_root)
    # named, the CNN is used; the forest named is refused the same way as before
    assert select_predict_run(world["cnn"].run_id, tmp_path / "runs").run_id == world["cnn"].run_id
    with pytest.raises(FerkaggleError, match="has no saved model .*save_model = false"):
        Predictor.from_run(read_run(no_model.dir))


# ----------------------------------------------------------------------------- export

def test_export_keras_and_tflite_equal_the_runs_probabilities(world, tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(world["runs"]))
    run = world["cnn"]
    faces = np.asarray(world["prepared"].x_test)
    expected = run.proba("test")  # what the run itself recorded, with its hflip TTA
    for fmt in ("keras", "tflite"):
        path = tmp_path / f"fer.{fmt}"
        result = runner.invoke(app, ["export", "-r", run.run_id, "--format", fmt, "--out", str(path)])
        if fmt == "tflite" and not tensorflow_backend():
            assert result.exit_code == 1 and "TFLite export needs the tensorflow backend" in result.output
            assert not path.exists()
            continue
        assert result.exit_code == 0, result.output
        if fmt == "keras":
            model = keras.models.load_model(path)
            got = model.predict(faces.reshape(-1, 48, 48, 1).astype("float32"), verbose=0)
        else:
            got = tflite_predict(path, faces)
        assert got.shape == (len(faces), 7)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=fmt)


def test_export_of_a_cnn_ensemble_is_one_model_with_its_weights(world, tmp_path):
    import dataclasses

    import keras

    cfg = dataclasses.replace(load_train_config("tiny"), name="tiny-b")
    second = train_config(world["prepared"], cfg, seed=1, root=world["runs"])
    ensemble, result = run_ensemble([world["cnn"], second], EnsembleConfig(method="weighted"), runs_root=world["runs"])
    try:
        path = export_run(ensemble, "keras", tmp_path / "ensemble.keras")
        faces = np.asarray(world["prepared"].x_test)
        got = keras.models.load_model(path).predict(faces.reshape(-1, 48, 48, 1).astype("float32"), verbose=0)
        # the ensemble's recorded test probabilities: its weights over the members' own saved ones
        np.testing.assert_allclose(got, ensemble.proba("test"), atol=1e-5)
        w = result.weights / result.weights.sum()
        np.testing.assert_allclose(got, w[0] * world["cnn"].proba("test") + w[1] * second.proba("test"), atol=1e-5)

        if tensorflow_backend():
            lite = tflite_predict(export_run(ensemble, "tflite", tmp_path / "ensemble.tflite"), faces)
            np.testing.assert_allclose(lite, ensemble.proba("test"), atol=1e-5)
    finally:
        shutil.rmtree(ensemble.dir)
        shutil.rmtree(second.dir)




def test_export_refuses_forest_runs_and_bad_formats(world, tmp_path, monkeypatch):
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(world["runs"]))
    result = runner.invoke(app, ["export", "-r", world["forest"].run_id, "--format", "keras", "--out", str(tmp_path / "f.keras")])
    assert result.exit_code == 1 and "cannot be exported" in result.output
    result = runner.invoke(app, ["export", "-r", world["cnn"].run_id, "--format", "onnx"])
    assert usage_error(result, "'onnx' is not one of 'keras', 'tflite'"), result.output


def test_export_best_is_the_best_run_it_can_export(world, tmp_path, monkeypatch):
    """A forest on top of the board: `ferkaggle export` (= --run best) names it and exports the
    best CNN run instead; with no CNN run left it stops with one line naming what it can export."""
    runs = tmp_path / "runs"
    for run in (world["cnn"], world["forest"]):
        shutil.copytree(run.dir, runs / run.run_id)
    metrics = json.loads((runs / world["forest"].run_id / "metrics.json").read_text())
    metrics["val_accuracy"] = 0.99  # the forest tops the board
    (runs / world["forest"].run_id / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.chdir(world["root"])  # its data/prepared/LATEST is the runs' split
    monkeypatch.setenv("FERKAGGLE_RUNS_DIR", str(runs))
    assert select_run("best").run_id == world["forest"].run_id
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "best.keras")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"`best` for export: run {world['cnn'].run_id}, the best run that can be exported" in text, text
    assert f"(the best run, {world['forest'].run_id}, is a baseline run with a scikit-learn model" in text, text
    assert f"from run {world['cnn'].run_id}:" in text and (tmp_path / "best.keras").is_file()
    shutil.rmtree(runs / world["cnn"].run_id)
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "none.keras")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "can be exported: export takes a CNN run" in lines[0] and "or an ensemble of CNN runs only" in lines[0]
    assert not (tmp_path / "none.keras").exists()
