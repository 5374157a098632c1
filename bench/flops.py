"""Floating-point operations per image of a Keras model, counted from its layers, and of a search space's
named trials: the numerator of "throughput as a share of the chip's matrix rate" (docs/benchmarks.md,
"The GPU proof").

Forward FLOPs (one multiply-add = 2 FLOPs) of the layers that do the matrix work: Conv2D
2*k_h*k_w*(c_in/groups)*c_out*H_out*W_out, DepthwiseConv2D 2*k_h*k_w*c_in*multiplier*H_out*W_out,
SeparableConv2D its depthwise plus its 1x1 pointwise part, Dense 2*d_in*d_out per output position;
nested models are walked into. Bias adds, BatchNorm, activations and pooling are left out (a few
percent, and not matrix-unit work). Training is counted as 3x forward (forward, and the backward pass's
two products: gradients of inputs and of weights). Run as a script it prints the table:

    python bench/flops.py --space gpu
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAIN_FACTOR = 3


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_flops(layer) -> int:
    """Forward FLOPs per image of one layer (0 for the layers not counted)."""
    kind = type(layer).__name__
    if kind in ("Functional", "Sequential", "Model") or hasattr(layer, "layers") and kind != "InputLayer":
        return model_flops(layer)
    if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
        return 0
    c_in = int(layer.input.shape[-1])
    out_positions = _spatial(layer.output.shape)
    if kind == "Dense":
        return 2 * c_in * int(layer.units) * max(out_positions, 1)
    kh, kw = layer.kernel_size
    if kind == "Conv2D":
        return 2 * kh * kw * (c_in // layer.groups) * int(layer.filters) * out_positions
    multiplier = int(layer.depth_multiplier)
    depthwise = 2 * kh * kw * c_in * multiplier * out_positions
    if kind == "DepthwiseConv2D":
        return depthwise
    return depthwise + 2 * c_in * multiplier * int(layer.filters) * out_positions


def model_flops(model) -> int:
    """Forward FLOPs per image of a model: the sum over its layers (nested models walked into)."""
    return sum(layer_flops(layer) for layer in model.layers)


def space_train_flops(space: str = "gpu") -> dict[str, int]:
    """Training FLOPs per image (TRAIN_FACTOR x forward) of each named trial of a search space."""
    from ferkaggle.cnn.models import build_model
    from ferkaggle.search.spaces import base_config, load_space, named_trials

    cfg_space, path = load_space(space)
    out = {}
    for name, cfg in named_trials(cfg_space, base_config(cfg_space, str(path)), str(path)):
        out[name] = TRAIN_FACTOR * model_flops(build_model(cfg.model))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FLOPs per image of a search space's named trials.")
    parser.add_argument("--space", default="gpu")
    parser.add_argument("--peak", type=float, default=989e12, help="FLOP/s of the chip (H200 dense bf16: 989e12)")
    args = parser.parse_args(argv)
    for name, flops in space_train_flops(args.space).items():
        print(f"{name:<28} {flops / 3 / 1e9:7.3f} GFLOP forward, {flops / 1e9:7.3f} training per image; "
              f"at peak {args.peak / flops:,.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
