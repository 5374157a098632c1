"""Test-time augmentation: a model's probabilities averaged over views of each face.

`tta_views` makes the views with keras.ops, so eager inference (`predict_proba`: val/test
probabilities, `ferkaggle predict`/`serve`) and the graph `ferkaggle export` builds average
exactly the same views. Measured effect on FER2013 in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError

TtaMode = Literal["none", "hflip", "tencrop", "shift"]
"""Test-time augmentation: the probabilities are the mean of the model's outputs over views of each face.
none: the face; hflip: the face and its mirror; tencrop: the anchors' ten-crop, five 44x44 crops (the four
corners and the centre) each resized back to 48x48 (bilinear) and each with its mirror; shift: the face
shifted by 2 pixels toward each corner (edge pixels repeated) and unshifted, each with its mirror (10 views,
all at the original scale). Every view is 48x48, so Flatten and global-pooling models take them alike."""

TENCROP_SIZE = 44  # tencrop: side of the crops before they are resized back to 48
SHIFT_PIXELS = 2   # shift: pixels moved along each axis


def _corners(step: int) -> list[tuple[int, int]]:
    """(top, left) offsets of the 4 corners and the centre of windows `step` pixels smaller than the image."""
    half = step // 2
    return [(0, 0), (0, step), (step, 0), (step, step), (half, half)]


def _pad_edges(images, pixels: int, axis: int):
    """Repeat the first and last row (axis 1) or column (axis 2) `pixels` times (TF has no "edge" pad mode)."""
    from keras import ops

    first = ops.take(images, [0] * pixels, axis=axis)
    last = ops.take(images, [images.shape[axis] - 1] * pixels, axis=axis)
    return ops.concatenate([first, images, last], axis=axis)


def tta_views(images, tta: TtaMode):
    """The views of a float batch [B, 48, 48, 1] that mode `tta` averages over: a list of [B, 48, 48, 1].

    Written with keras.ops, so the same function serves eager inference (predict_proba) and the
    exported model's graph (`ferkaggle.photos.export`): both average exactly the same views. Every
    mode passes through here, also those read back from a run's run.json (`inference.run_tta`),
    which no config loading checked: an unknown one is refused here.
    """
    from keras import ops

    if tta not in get_args(TtaMode):
        raise FerkaggleError(f"unknown tta {tta!r}; one of {', '.join(get_args(TtaMode))}")
    if tta == "none":
        return [images]
    if tta == "hflip":
        return [images, ops.flip(images, axis=2)]
    side = images.shape[1]
    if tta == "tencrop":
        size = TENCROP_SIZE
        bases = [ops.image.resize(images[:, top:top + size, left:left + size, :], (side, side),
                                  interpolation="bilinear", antialias=False, data_format="channels_last")
                 for top, left in _corners(side - size)]
    else:  # shift: pad with the edge pixels, then take 48x48 windows at the corners and the centre
        step = 2 * SHIFT_PIXELS
        padded = _pad_edges(_pad_edges(images, SHIFT_PIXELS, axis=1), SHIFT_PIXELS, axis=2)
        bases = [padded[:, top:top + side, left:left + side, :] for top, left in _corners(step)]
    return [view for base in bases for view in (base, ops.flip(base, axis=2))]


def predict_proba(model, x: np.ndarray, tta: TtaMode = "hflip", batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities [n, 7]: the mean of the model's outputs over the `tta` views (`tta_views`)."""
    from keras import ops

    x = np.asarray(x, np.uint8)
    if len(x) == 0:
        return np.zeros((0, NUM_CLASSES), np.float32)
    images = x.astype(np.float32)[..., None]
    total = np.zeros((len(x), NUM_CLASSES), np.float64)
    views = 0
    for i in range(0, len(images), batch_size):
        batch = tta_views(images[i:i + batch_size], tta)
        views = len(batch)
        for view in batch:
            total[i:i + batch_size] += ops.convert_to_numpy(model(view, training=False)).astype(np.float64)
    return (total / views).astype(np.float32)
