"""bench/flops.py: FLOPs per image counted from a model's layers, against counts written out by hand."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from flops import TRAIN_FACTOR, model_flops, space_train_flops  # noqa: E402


def test_conv_separable_depthwise_dense_and_nested_layers_are_counted():
    import keras

    inner_in = keras.Input((4, 4, 8))
    inner = keras.Model(inner_in, keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(inner_in))
    x_in = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(x_in)            # 8x8 out
    x = keras.layers.SeparableConv2D(8, 3, strides=2, padding="same")(x)  # 4x4 out
    x = inner(x)                                                    # 4x4x16
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(5)(x)                                    # per position: 4x4 x (16 -> 5)
    x = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    model = keras.Model(x_in, x)
    conv = 2 * 3 * 3 * 2 * 4 * 64
    separable = 2 * 3 * 3 * 4 * 16 + 2 * 4 * 8 * 16
    depthwise = 2 * 3 * 3 * 8 * 2 * 16
    dense = 2 * 16 * 5 * (4 * 4) + 2 * (4 * 4 * 5) * 3
    assert model_flops(model) == conv + separable + depthwise + dense


def test_the_gpu_space_vgg_is_its_published_body():
    # 64/128/256/512, two 3x3 convs per block, 48 -> 24 -> 12 -> 6, then GAP, Dense 256, Dense 7
    forward, side, c_in = 0, 48, 1
    for width in (64, 128, 256, 512):
        forward += 2 * 9 * c_in * width * side * side + 2 * 9 * width * width * side * side
        c_in, side = width, side // 2
    forward += 2 * 512 * 256 + 2 * 256 * 7
    counted = space_train_flops("gpu")
    assert counted["gpu-vgg-w64-d4x2"] == TRAIN_FACTOR * forward
    assert counted["gpu-resnet18"] > counted["gpu-vgg-w64-d4x2"]
