"""Keras model builders, one Functional-API function per architecture, registered by name.

`build_model(cfg.model, num_classes)` looks up `build_<architecture>(input_shape,
num_classes, cfg) -> keras.Model`. Every model takes float32 pixels in 0..255 of shape
[batch, 48, 48, 1] (it rescales to [0, 1] itself, so a saved `model.keras` needs no
preprocessing) and returns softmax probabilities [batch, num_classes] in float32, also
under the `mixed_bfloat16` policy. TensorFlow is imported lazily by the builders.

`pretrained` wraps a `keras.applications` backbone (`Backbone`): the grey face is resized inside the
model (a Resizing layer) and repeated to three channels, so it too takes [batch, 48, 48, 1]. Its
`weights` are ImageNet's (Keras downloads them into ~/.keras/models where it is online), a local
weights file of the same backbone, or "none" (random: trains from scratch). `set_trainable` gives the
two phases of transfer learning: backbone frozen, then its top `fine_tune_layers` layers trainable.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, get_args

from ferkaggle.core.constants import IMAGE_SIZE, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

Architecture = Literal["simple", "vgg", "resnet", "mlp", "lstm", "pretrained"]
"""A config's `model.architecture`: the name of a `build_<architecture>` function below (checked when
the config is read, by `ferkaggle.core.presets.from_dict`)."""

Backbone = Literal["vgg16", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]
"""A `pretrained` model's `keras.applications` backbone (see BACKBONES)."""

BACKBONES: dict[str, str] = {"vgg16": "VGG16", "mobilenet_v3_small": "MobileNetV3Small",
                             "mobilenet_v3_large": "MobileNetV3Large", "efficientnet_b0": "EfficientNetB0"}
"""Each `Backbone`'s function in keras.applications (built with include_top=False, pooling="avg")."""

VGG16_BGR_MEAN = (103.939, 116.779, 123.68)
"""VGG16's "caffe" preprocessing: BGR order, these ImageNet means subtracted, no scaling. The face is
grey (three equal channels), so the channel order changes nothing; MobileNetV3 and EfficientNet
carry their own preprocessing layers and take 0..255 as they are."""


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
    # pretrained only (the head is `depth` x Dense(dense_units), dropout, the classifier):
    backbone: Backbone = "mobilenet_v3_small"  # keras.applications network
    weights: str = "imagenet"    # "imagenet" (downloaded by Keras, cached in ~/.keras/models), "none" (random,
    #                              from scratch) or the path of the backbone's .weights.h5 / .keras file
    image_size: int = 96         # the face is resized to image_size x image_size inside the model (48 = as is)
    freeze_epochs: float = 0.0   # epochs with the backbone frozen first (< 1: a fraction of the run's epochs);
    #                              0 or weights = "none": the whole network trains from the first epoch
    fine_tune_layers: int = 0    # after the frozen phase: the backbone's top N layers train (0 = all); its
    #                              BatchNormalization layers stay frozen (inference mode), as Keras advises
    fine_tune_lr: float = 0.1    # the fine-tuning phase's learning rate, as a fraction of optim.learning_rate


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


def _backbone_weights(cfg: ModelConfig) -> str | None:
    """The `weights` argument of the keras.applications function: "imagenet", None, or a checked path."""
    if cfg.weights == "imagenet":
        return "imagenet"
    if cfg.weights == "none":
        return None
    path = Path(cfg.weights).expanduser()
    if not path.name.endswith((".weights.h5", ".keras")):
        raise FerkaggleError(f"model.weights: {cfg.weights!r} must be \"imagenet\", \"none\" or a .weights.h5 / "
                             ".keras file of the backbone")
    if not path.is_file():
        raise FerkaggleError(f"model.weights: {path}: no such weights file")
    return str(path)


def build_backbone(cfg: ModelConfig):
    """cfg.backbone from keras.applications (no top, global average pooling) at image_size x image_size x 3,
    with cfg.weights; one FerkaggleError line where the ImageNet weights cannot be downloaded or a
    weights file does not fit this backbone."""
    keras = _keras()
    weights = _backbone_weights(cfg)
    make = getattr(keras.applications, BACKBONES[cfg.backbone])
    size = (cfg.image_size, cfg.image_size, 3)
    try:
        with warnings.catch_warnings():  # MobileNetV3 warns at every size but 224; the weights fit any size
            warnings.filterwarnings("ignore", message=".*Weights for input shape.*")
            return make(include_top=False, weights=weights, input_shape=size, pooling="avg",
                        name="backbone")
    except Exception as exc:  # Keras raises a bare Exception for a failed download, ValueError for a bad file
        reason = " ".join(str(exc).split())
        if weights == "imagenet" and (isinstance(exc, OSError) or "URL fetch failure" in reason):
            raise FerkaggleError(f"model.weights = \"imagenet\": the ImageNet weights of {cfg.backbone} cannot be "
                                 f"downloaded here ({reason}); give a local weights file's path, or "
                                 f"weights = \"none\" to train from scratch") from None
        if weights not in (None, "imagenet"):
            raise FerkaggleError(f"model.weights: {weights} does not fit {cfg.backbone} "
                                 f"(include_top=False): {reason}") from None
        raise


def check_weights(cfg: ModelConfig) -> None:
    """Before a run starts: a pretrained model's weights can be had (ImageNet's downloaded into Keras'
    cache where it is online, a weights file read and fitted), else the one FerkaggleError line of
    `build_backbone`. Nothing to check for other architectures or weights = "none"."""
    if cfg.architecture == "pretrained" and cfg.weights != "none":
        build_backbone(cfg)
        _keras().backend.clear_session()


def build_pretrained(input_shape, num_classes: int, cfg: ModelConfig):
    """A keras.applications backbone (`build_backbone`) on the grey face resized to image_size and repeated
    to three channels, its own preprocessing (VGG16: the ImageNet mean subtracted), then `depth` x
    Dense(dense_units) + dropout and the classifier. The backbone is the layer named "backbone"; its
    BatchNormalization layers take cfg.bn_momentum; it is frozen here when the config has a frozen phase
    (see `set_trainable`)."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    if (cfg.image_size, cfg.image_size) != tuple(input_shape[:2]):
        x = layers.Resizing(cfg.image_size, cfg.image_size, name="resize")(x)
    x = layers.Concatenate(name="grey_to_rgb")([x, x, x]) if input_shape[-1] == 1 else x
    if cfg.backbone == "vgg16":
        x = layers.Normalization(mean=VGG16_BGR_MEAN, variance=(1.0, 1.0, 1.0), name="vgg16_preprocess")(x)
    backbone = build_backbone(cfg)
    for layer in backbone.layers:
        if type(layer).__name__ == "BatchNormalization":
            # MobileNetV3's 0.999 leaves the moving statistics unsettled for epochs when it trains from scratch
            # (seen: one class predicted at inference, 0.25 holdout, docs/benchmarks.md); pretrained ones stay frozen
            layer.momentum = cfg.bn_momentum
    x = backbone(x)
    for _ in range(max(cfg.depth, 0)):
        x = layers.Dense(cfg.dense_units or 256, activation="relu")(x)
    if cfg.dropout_rate > 0:
        x = layers.Dropout(cfg.dropout_rate)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"pretrained_{cfg.backbone}")
    set_trainable(model, cfg, fine_tuning=False)
    return model


def frozen_epochs(cfg: ModelConfig, epochs: int) -> int:
    """How many of a run's first `epochs` epochs train with the backbone frozen (0 without a frozen phase:
    other architectures, weights = "none", freeze_epochs = 0); a fraction below 1 is of `epochs`, rounded."""
    if cfg.architecture != "pretrained" or cfg.weights == "none" or cfg.freeze_epochs <= 0:
        return 0
    count = cfg.freeze_epochs * epochs if cfg.freeze_epochs < 1 else cfg.freeze_epochs
    return min(max(int(round(count)), 1), epochs)


def set_trainable(model, cfg: ModelConfig, *, fine_tuning: bool) -> None:
    """A pretrained model's phase: frozen (the backbone not trained; where the config has a frozen phase
    and fine_tuning is False) or fine-tuning (the backbone's top `fine_tune_layers` layers, or all,
    trained; its BatchNormalization layers stay in inference mode when the weights are pretrained).
    Other architectures: nothing to do. Recompile the model after a change."""
    if cfg.architecture != "pretrained":
        return
    backbone = model.get_layer("backbone")
    if frozen_epochs(cfg, 1) and not fine_tuning:
        backbone.trainable = False
        return
    backbone.trainable = True
    if cfg.weights == "none":
        return  # from scratch: everything trains, BatchNormalization included
    top = backbone.layers[-cfg.fine_tune_layers:] if cfg.fine_tune_layers > 0 else backbone.layers
    chosen = {id(layer) for layer in top}
    for layer in backbone.layers:
        is_bn = type(layer).__name__ == "BatchNormalization"
        layer.trainable = id(layer) in chosen and not is_bn


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
    if cfg.architecture == "pretrained":
        weights = cfg.weights if cfg.weights in ("imagenet", "none") else "file"
        tune = (f", frozen {cfg.freeze_epochs:g} ep then top {cfg.fine_tune_layers or 'all'} x{cfg.fine_tune_lr:g} lr"
                if frozen_epochs(cfg, 100) else "")
        return f"{cfg.backbone} {cfg.image_size}px {weights}{tune}"
    bits = [cfg.architecture, f"w{cfg.width}", f"d{cfg.depth}x{cfg.convs_per_block}"]
    bits += ["gap" if cfg.global_pool else "flatten"] + (["sep"] if cfg.separable else [])
    return " ".join(bits)
