"""Every registered builder builds and outputs [batch, 7] softmax; `simple` is the notebook's CNN."""

import numpy as np
import pytest

from ferkaggle.cnn.config import TrainConfig, load_train_config, override  # noqa: E402
from ferkaggle.cnn.fit import build_compiled
from ferkaggle.cnn.models import (  # noqa: E402
    BUILDERS,
    ModelConfig,
    build_lstm,
    build_mlp,
    build_model,
    build_pretrained,
    build_resnet,
    build_simple,
    build_vgg,
)
from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from helpers.fakes import to_numpy

SMALL = {
    "simple": ModelConfig(),
    "vgg": ModelConfig(architecture="vgg", width=8, depth=2, dense_units=16),
    "resnet": ModelConfig(architecture="resnet", width=8, depth=2, dense_units=16),
    "mlp": ModelConfig(architecture="mlp", depth=2, dense_units=32),
    "lstm": ModelConfig(architecture="lstm", width=8, dense_units=8),
    "pretrained": ModelConfig(architecture="pretrained", backbone="mobilenet_v3_small", weights="none", image_size=32,
                              dense_units=8),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_outputs_softmax_over_seven_classes(name):
    model = build_model(SMALL[name])
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    out = to_numpy(model(x, training=False))
    assert out.shape == (3, 7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert (out >= 0).all()


def test_simple_is_the_notebook_cnn():
    model = build_model(ModelConfig())
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Rescaling",
                     "Conv2D", "MaxPooling2D", "BatchNormalization",
                     "Conv2D", "MaxPooling2D", "BatchNormalization",
                     "Conv2D", "MaxPooling2D", "BatchNormalization",
                     "Flatten", "Dense", "Dropout", "Dense"]
    assert [layer.filters for layer in model.layers if type(layer).__name__ == "Conv2D"] == [32, 64, 128]
    assert model.count_params() == 619_911


def test_vgg_options_change_the_network():
    lean = build_model(ModelConfig(architecture="vgg", width=16, depth=3, separable=True))
    wide = build_model(ModelConfig(architecture="vgg", width=16, depth=3, global_pool=False))
    assert lean.count_params() < wide.count_params()
    assert any(type(layer).__name__ == "SeparableConv2D" for layer in lean.layers)


def test_bfloat16_policy_keeps_float32_probabilities():
    model = build_compiled(override(TrainConfig(), {"precision": "mixed_bfloat16", "model": {"architecture": "vgg", "width": 8, "depth": 1}}))
    import keras

    out = model(np.zeros((2, 48, 48, 1), np.float32), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"  # tf.float32, jnp float32 or torch.float32

    assert keras.mixed_precision.global_policy().name == "float32"  # building does not leak the policy


def test_unknown_architecture_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\narchitecture = "alexnet"\n')
    with pytest.raises(FerkaggleError) as caught:
        load_train_config(bad)
    assert str(caught.value) == (f"{bad}.model: 'architecture' must be one of 'simple', 'vgg', 'resnet', 'mlp', "
                                 "'lstm', 'pretrained', not 'alexnet'")


def test_every_architecture_has_its_builder():
    assert BUILDERS == {"simple": build_simple, "vgg": build_vgg, "resnet": build_resnet, "mlp": build_mlp,
                        "lstm": build_lstm, "pretrained": build_pretrained}
