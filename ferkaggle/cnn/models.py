"""Keras model builders, one Functional-API function per architecture, registered by name.

`build_model(cfg.model, num_classes)` looks up `build_<architecture>(input_shape,
num_classes, cfg) -> keras.Model`. Every model takes float32 pixels in 0..255 of shape
[batch, 48, 48, 1] (it rescales to [0, 1] itself, so a saved `model.keras` needs no
preprocessing) and returns softmax probabilities [batch, num_classes] in float32, also
under the `mixed_bfloat16` policy. TensorFlow is imported lazily by the builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, get_args

from ferkaggle.core.constants import IMAGE_SIZE, NUM_CLASSES

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

Architecture = Literal["simple", "vgg", "resnet", "mlp", "lstm"]
"""A config's `model.architecture`: the name of a `build_<architecture>` function below (checked when
the config is read, by `ferkaggle.core.presets.from_dict`)."""


@dataclass(frozen=True)
class ModelConfig:
    architecture: Architecture = "simple"  # builder name (see BUILDERS)
    width: int = 32              # filters of the first conv block, doubled per block (vgg, resnet); units (lstm)
    depth: int = 3               # conv blocks (vgg), residual stages (resnet), hidden layers (mlp)
    convs_per_block: int = 2     # 3x3 convs per vgg block, residual blocks per resnet stage
    max_width: int = 256         # cap on the doubled filter count (vgg, resnet)
    separable: bool = False      # vgg: depthwise-separable convs after the first block (fewer params/FLOPs)
    global_pool: bool = True     # vgg/resnet: global average pooling (lean) instead of Flatten (big dense)
    dense_units: int = 256       # units of the dense layer before the classifier; 0 = none
    dropout_rate: float = 0.5    # dropout before the classifier, 0..1
    block_dropout: float = 0.0   # vgg/resnet: dropout after each block, 0..1
    batch_norm: bool = True      # batch normalisation after convs (and dense layers in mlp)
    bn_momentum: float = 0.99    # BN moving-average momentum (Keras default); 0.9 settles faster on small data


def _keras():
    import keras

    return keras


def _head(x, num_classes: int, cfg: ModelConfig):
    layers = _keras().layers
    if cfg.dense_units > 0:
        x = layers.Dense(cfg.dense_units, activation="relu")(x)
    if cfg.dropout_rate > 0:
        x = layers.Dropout(cfg.dropout_rate)(x)
    # float32 output: softmax in bfloat16 loses too much precision for the loss.
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def _input(input_shape):
    keras = _keras()
    inputs = keras.Input(shape=input_shape, name="pixels")
    return inputs, keras.layers.Rescaling(1.0 / 255.0)(inputs)


def build_simple(input_shape, num_classes: int, cfg: ModelConfig):
    """The CS985 notebook's 3-block CNN, exactly (0.6M params); reads dropout_rate, dense_units, bn_momentum."""
    keras = _keras()
    layers = keras.layers
    inputs, x = _input(input_shape)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, _head(x, num_classes, cfg), name="simple")


def _conv_bn_relu(x, filters: int, cfg: ModelConfig, separable: bool = False, strides: int = 1):
    layers = _keras().layers
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    # No conv bias when BN follows: BN's beta does the same job.
    x = conv(filters, 3, strides=strides, padding="same", use_bias=not cfg.batch_norm)(x)
    if cfg.batch_norm:
        x = layers.BatchNormalization(momentum=cfg.bn_momentum)(x)
    return layers.Activation("relu")(x)


def build_vgg(input_shape, num_classes: int, cfg: ModelConfig):
    """VGG-style: `depth` blocks of `convs_per_block` 3x3 conv-BN-ReLU then 2x2 max-pool, widths doubling."""
    keras = _keras()
    layers = keras.layers
    inputs, x = _input(input_shape)
    for block in range(cfg.depth):
        filters = min(cfg.width * 2 ** block, cfg.max_width)
        for i in range(cfg.convs_per_block):
            x = _conv_bn_relu(x, filters, cfg, separable=cfg.separable and (block > 0 or i > 0))
        x = layers.MaxPooling2D(2)(x)
        if cfg.block_dropout > 0:
            x = layers.Dropout(cfg.block_dropout)(x)
    x = layers.GlobalAveragePooling2D()(x) if cfg.global_pool else layers.Flatten()(x)
    return keras.Model(inputs, _head(x, num_classes, cfg), name="vgg")


def build_resnet(input_shape, num_classes: int, cfg: ModelConfig):
    """A small pre-activation-free ResNet: stem conv, `depth` stages of basic blocks, stride-2 between stages."""
    keras = _keras()
    layers = keras.layers
    inputs, x = _input(input_shape)
    x = _conv_bn_relu(x, cfg.width, cfg)
    for stage in range(cfg.depth):
        filters = min(cfg.width * 2 ** stage, cfg.max_width)
        for block in range(max(cfg.convs_per_block, 1)):
            strides = 2 if (stage > 0 and block == 0) else 1
            shortcut = x
            y = _conv_bn_relu(x, filters, cfg, strides=strides)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=not cfg.batch_norm)(y)
            if cfg.batch_norm:
                y = layers.BatchNormalization(momentum=cfg.bn_momentum)(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
            x = layers.Activation("relu")(layers.Add()([y, shortcut]))
        if cfg.block_dropout > 0:
            x = layers.Dropout(cfg.block_dropout)(x)
    x = layers.GlobalAveragePooling2D()(x) if cfg.global_pool else layers.Flatten()(x)
    return keras.Model(inputs, _head(x, num_classes, cfg), name="resnet")


def build_mlp(input_shape, num_classes: int, cfg: ModelConfig):
    """UCLA's MLP: `depth` x Dense(dense_units) ReLU (+BN, dropout) on the flattened pixels."""
    keras = _keras()
    layers = keras.layers
    inputs, x = _input(input_shape)
    x = layers.Flatten()(x)
    units = cfg.dense_units or 256
    for _ in range(max(cfg.depth, 1)):
        x = layers.Dense(units, activation="relu")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(momentum=cfg.bn_momentum)(x)
        if cfg.block_dropout > 0:
            x = layers.Dropout(cfg.block_dropout)(x)
    if cfg.dropout_rate > 0:
        x = layers.Dropout(cfg.dropout_rate)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


def build_lstm(input_shape, num_classes: int, cfg: ModelConfig):
    """Row-wise LSTM: the 48 image rows are 48 time steps of 48 pixels; `width` LSTM units."""
    keras = _keras()
    layers = keras.layers
    inputs, x = _input(input_shape)
    x = layers.Reshape((input_shape[0], input_shape[1] * input_shape[2]))(x)
    x = layers.LSTM(cfg.width)(x)
    return keras.Model(inputs, _head(x, num_classes, cfg), name="lstm")


BUILDERS: dict[str, Callable] = {name: globals()[f"build_{name}"] for name in get_args(Architecture)}
"""The builder of every `Architecture`: build_<name>(input_shape, num_classes, cfg) -> keras.Model."""


def build_model(cfg: ModelConfig, num_classes: int = NUM_CLASSES, input_shape=INPUT_SHAPE):
    """The Keras model of cfg.architecture (not compiled): float32 pixels [B, 48, 48, 1] in, probabilities out."""
    return BUILDERS[cfg.architecture](input_shape, num_classes, cfg)


def describe(cfg: ModelConfig) -> str:
    """A short human label for summaries: `vgg w32 d4x2 gap sep`."""
    if cfg.architecture == "simple":
        return "simple 3-block CNN"
    if cfg.architecture == "mlp":
        return f"mlp {cfg.depth}x{cfg.dense_units}"
    if cfg.architecture == "lstm":
        return f"lstm {cfg.width}"
    bits = [cfg.architecture, f"w{cfg.width}", f"d{cfg.depth}x{cfg.convs_per_block}"]
    bits += ["gap" if cfg.global_pool else "flatten"] + (["sep"] if cfg.separable else [])
    return " ".join(bits)
