"""The `pretrained` family: keras.applications backbones on the grey 48x48 face, weights from a local file
(saved by the test itself: nothing is downloaded), the one line when ImageNet's cannot be had, and the
frozen-then-fine-tuned fit."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ferkaggle.cnn.config import TrainConfig, load_train_config, override  # noqa: E402
from ferkaggle.cnn.fit import fit_trial  # noqa: E402
from ferkaggle.cnn.models import (  # noqa: E402
    BACKBONES,
    ModelConfig,
    build_backbone,
    build_model,
    check_weights,
    frozen_epochs,
)
from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from helpers.fakes import to_numpy

TINY = ModelConfig(architecture="pretrained", backbone="mobilenet_v3_small", weights="none", image_size=32,
                   depth=1, dense_units=8, dropout_rate=0.0)
FAKE_OFFLINE = ("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/x.h5: "
                "None -- [Errno -3] Temporary failure in name resolution")


def _saved_backbone(tmp_path, suffix: str):
    """A random TINY backbone saved as suffix (.weights.h5 or .keras); returns (path, its weights)."""
    backbone = build_backbone(TINY)
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".keras":
        backbone.save(path)
    else:
        backbone.save_weights(path)
    return path, backbone.get_weights()


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_a_weights_file_is_loaded_into_the_backbone(tmp_path, suffix):
    path, saved = _saved_backbone(tmp_path, suffix)
    model = build_model(dataclasses.replace(TINY, weights=str(path)))
    loaded = model.get_layer("backbone").get_weights()
    assert len(loaded) == len(saved) > 10
    for got, want in zip(loaded, saved):
        np.testing.assert_array_equal(got, want)
    fresh = build_model(TINY).get_layer("backbone").get_weights()  # "none": random, not the file's
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, saved))


def test_the_face_is_resized_and_made_rgb_inside_the_model():
    model = build_model(TINY)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.get_layer("resize").output.shape[1:] == (32, 32, 1)
    assert model.get_layer("grey_to_rgb").output.shape[1:] == (32, 32, 3)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    out = to_numpy(model(x, training=False))
    assert out.shape == (3, 7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_the_backbone_batch_norm_takes_the_configs_momentum():
    model = build_model(dataclasses.replace(TINY, backbone="mobilenet_v3_small", bn_momentum=0.9))
    momenta = {layer.momentum for layer in model.get_layer("backbone").layers
               if type(layer).__name__ == "BatchNormalization"}
    assert momenta == {0.9}  # keras.applications' MobileNetV3 builds them with 0.999


def test_vgg16_subtracts_the_imagenet_bgr_mean():
    model = build_model(ModelConfig(architecture="pretrained", backbone="vgg16", weights="none", image_size=48))
    assert "resize" not in [layer.name for layer in model.layers]  # 48 is the face's own size
    import keras

    probe = keras.Model(model.input, model.get_layer("vgg16_preprocess").output)
    out = np.asarray(probe(np.full((1, 48, 48, 1), 200.0, np.float32)))
    np.testing.assert_allclose(out[0, 0, 0], [200 - 103.939, 200 - 116.779, 200 - 123.68], rtol=1e-5)


def test_offline_imagenet_weights_are_one_clear_line(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception(FAKE_OFFLINE)

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(FerkaggleError) as caught:
        check_weights(dataclasses.replace(TINY, weights="imagenet"))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith('model.weights = "imagenet": the ImageNet weights of mobilenet_v3_small cannot be '
                              "downloaded here (URL fetch failure")
    assert message.endswith('give a local weights file\'s path, or weights = "none" to train from scratch')
    check_weights(TINY)  # "none" asks for nothing


def test_train_stops_before_writing_a_run_when_imagenet_weights_cannot_be_had(tiny_prepared, in_tmp, monkeypatch):
    from keras.src.utils import file_utils
    from typer.testing import CliRunner

    from ferkaggle.cli.app import app

    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(Exception(FAKE_OFFLINE)))
    cfg = in_tmp / "imagenet.toml"
    cfg.write_text('name = "p"\nepochs = 1\n[model]\narchitecture = "pretrained"\nimage_size = 32\n')
    result = CliRunner().invoke(app, ["train", "--config", str(cfg), "--data", str(tiny_prepared.path)])
    assert result.exit_code == 1, result.output
    assert "cannot be downloaded here" in result.output and "Traceback" not in result.output
    assert not (in_tmp / "runs").exists() or not any((in_tmp / "runs").rglob("run.json"))


@pytest.mark.parametrize("weights, expected", [("nowhere.weights.h5", "nowhere.weights.h5: no such weights file"),
                                               ("model.h5", "must be \"imagenet\", \"none\" or a .weights.h5")])
def test_a_bad_weights_path_is_one_line(weights, expected):
    with pytest.raises(FerkaggleError, match=expected.replace(".", r"\.")):
        check_weights(dataclasses.replace(TINY, weights=weights))


def test_frozen_phase_length():
    cfg = dataclasses.replace(TINY, weights="imagenet", freeze_epochs=0.25)
    assert [frozen_epochs(cfg, n) for n in (1, 4, 7, 10, 20)] == [1, 1, 2, 2, 5]  # 1.75 rounds to 2
    assert frozen_epochs(dataclasses.replace(cfg, freeze_epochs=3.0), 20) == 3
    assert frozen_epochs(dataclasses.replace(cfg, freeze_epochs=3.0), 2) == 2
    assert frozen_epochs(dataclasses.replace(cfg, weights="none"), 20) == 0  # nothing to keep: train it all
    assert frozen_epochs(ModelConfig(freeze_epochs=3.0), 20) == 0             # not a pretrained model


def test_frozen_then_fine_tuned_fit(prepared, tmp_path):
    """Epoch 1 frozen: the backbone's weights stay the file's; epoch 2 (fit after a stop at the switch, as a
    resumed run does) trains its top layers at fine_tune_lr x the rate, its BatchNormalization statistics kept."""
    import keras

    path, saved = _saved_backbone(tmp_path, ".weights.h5")
    model_cfg = dataclasses.replace(TINY, weights=str(path), freeze_epochs=1.0, fine_tune_layers=10, fine_tune_lr=0.5)
    cfg = override(dataclasses.replace(TrainConfig(), model=model_cfg),
                   {"epochs": 2, "batch_size": 32, "patience": 0, "tta": "none",
                    "optim": {"schedule": "constant", "learning_rate": 1e-3}})
    fit, stop = prepared.stopping_split(0)
    args = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop], cfg, tmp_path / "ck")

    def backbone_after(n):
        state = fit_trial(*args, target_epochs=n)
        assert state["epochs_done"] == n
        model = keras.models.load_model(tmp_path / "ck" / "last.keras", compile=False)
        return state, model.get_layer("backbone")

    _, frozen = backbone_after(1)
    for got, want in zip(frozen.get_weights(), saved):
        np.testing.assert_array_equal(got, want)
    state, tuned = backbone_after(2)
    assert [round(h["lr"], 8) for h in state["history"]] == [1e-3, 5e-4]
    first_top = len(tuned.layers) - 10
    moved = []
    for i, (layer, before) in enumerate(zip(tuned.layers, frozen.layers)):  # a loaded model renumbers some names
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before.get_weights()))
        if i >= first_top and type(layer).__name__ != "BatchNormalization":
            moved += [] if same else [i]
        else:
            assert same, layer.name  # below the top 10, and every BatchNormalization (inference mode): kept
    assert moved  # the top layers that hold weights trained


@pytest.mark.parametrize("preset", ["pretrained-vgg16", "pretrained-mobilenet-small", "pretrained-mobilenet-large",
                                    "pretrained-efficientnet-b0"])
def test_presets_name_their_backbone_and_imagenet(preset):
    cfg = load_train_config(preset)
    assert cfg.name == preset and cfg.model.architecture == "pretrained" and cfg.model.weights == "imagenet"
    assert cfg.model.backbone in BACKBONES and frozen_epochs(cfg.model, cfg.epochs) > 0
