"""Training-time augmentation as batched TensorFlow ops, for a tf.data `map`.

Input: a batch of float32 faces [B, 48, 48, 1] in 0..255 (plus one-hot labels and sample
weights for mixup). Output: the same shapes and dtypes, augmented. Everything runs on the
whole batch inside the tf.data graph (no per-image Python): flip, rotation, shift, zoom
and random crop are fused into ONE projective transform per image (one resampling pass
instead of the three that chained Random* layers would cost), then random erasing and
mixup. Augmentation is a training-only step of the input pipeline: models never contain
it, so inference (val, test, TTA) always sees the untouched images.

Reproducible: every random draw is a stateless op (`tf.random.stateless_*`) keyed by a seed
pair the caller passes with each batch (`dataset.make_dataset`: the run seed and the batch's
position in the run), so the same seed gives the same augmented batches however tf.data schedules its
parallel map; stateful `tf.random` ops would depend on which thread ran first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5         # probability of a horizontal flip, 0..1 (0 = off)
    rotation: float = 10.0     # max rotation in degrees, uniform in [-r, r] (0 = off)
    shift: float = 0.1         # max shift as a fraction of the side, per axis (0 = off)
    zoom: float = 0.1          # max zoom as a fraction: scale uniform in [1-z, 1+z] (0 = off)
    crop: int = 0              # random crop: pad this many pixels (edge-replicated), take a random 48x48 window
    erasing: float = 0.0       # probability of erasing one random rectangle with noise, 0..1 (0 = off)
    erasing_area: float = 0.25  # max area of the erased rectangle as a fraction of the image, 0..1
    mixup: float = 0.0         # mixup Beta(alpha, alpha) strength alpha; 0 = off (typical 0.2)

    @property
    def geometric(self) -> bool:
        """Whether any of the transforms fused into the one resampling (`_affine`) is on."""
        return self.hflip > 0 or self.rotation > 0 or self.shift > 0 or self.zoom > 0 or self.crop > 0


def describe(cfg: AugmentConfig) -> str:
    bits = []
    if cfg.hflip:
        bits.append("flip")
    if cfg.rotation:
        bits.append(f"rot{cfg.rotation:g}")
    if cfg.shift:
        bits.append(f"shift{cfg.shift:g}")
    if cfg.zoom:
        bits.append(f"zoom{cfg.zoom:g}")
    if cfg.crop:
        bits.append(f"crop{cfg.crop}")
    if cfg.erasing:
        bits.append(f"erase{cfg.erasing:g}")
    if cfg.mixup:
        bits.append(f"mixup{cfg.mixup:g}")
    return "+".join(bits) or "no aug"


def _seed_pair(seed):
    """A [2] int32 stateless seed from an int, a pair, or a tensor."""
    import tensorflow as tf

    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([tf.zeros([], seed.dtype), seed])
    return tf.cast(seed, tf.int32)


class _Draws:
    """Independent stateless streams from one seed pair: every call gets the next sub-seed."""

    def __init__(self, seed):
        self.seed, self.n = _seed_pair(seed), 0

    def next(self):
        import tensorflow as tf

        self.n += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.n)

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, self.next(), low, high, dtype=dtype or tf.float32)

    def gamma(self, shape, alpha):
        import tensorflow as tf

        return tf.random.stateless_gamma(shape, self.next(), alpha)


def _affine(images, cfg: AugmentConfig, draws: _Draws):
    """Flip, rotate, zoom, shift and crop in one resampling (ImageProjectiveTransformV3)."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0

    def uniform(low, high):
        return draws.uniform([batch], low, high)

    flip = tf.cast(uniform(0.0, 1.0) < cfg.hflip, tf.float32)
    f_sign, f_off = 1.0 - 2.0 * flip, flip * (width - 1)
    theta = uniform(-1.0, 1.0) * (cfg.rotation * math.pi / 180.0)
    scale = uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom)  # >1 zooms in
    tx = uniform(-1.0, 1.0) * cfg.shift * width
    ty = uniform(-1.0, 1.0) * cfg.shift * height
    if cfg.crop:
        tx += tf.round(uniform(-cfg.crop - 0.5, cfg.crop + 0.5))
        ty += tf.round(uniform(-cfg.crop - 0.5, cfg.crop + 0.5))
    cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
    # Output pixel (x, y) reads input pixel: centre + R(theta) * (flip(x, y) - centre) / scale - shift.
    a0, a1 = cos * f_sign, -sin
    a2 = cx - tx + cos * (f_off - cx) + sin * cy
    b0, b1 = sin * f_sign, cos
    b2 = cy - ty + sin * (f_off - cx) - cos * cy
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST",
    )


def _erase(images, cfg: AugmentConfig, draws: _Draws):
    """Random erasing (Zhong et al.): one rectangle per chosen image filled with uniform noise."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    area = draws.uniform([batch], 0.02, max(cfg.erasing_area, 0.021)) * (height * width)
    aspect = tf.exp(draws.uniform([batch], math.log(0.3), math.log(3.3)))
    h = tf.clip_by_value(tf.sqrt(area * aspect), 1.0, height)
    w = tf.clip_by_value(tf.sqrt(area / aspect), 1.0, width)
    y0 = draws.uniform([batch]) * (height - h)
    x0 = draws.uniform([batch]) * (width - w)
    rows = tf.range(height, dtype=tf.float32)[None, :, None]
    cols = tf.range(width, dtype=tf.float32)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None]))
    chosen = draws.uniform([batch]) < cfg.erasing
    mask = tf.cast(inside & chosen[:, None, None], images.dtype)[..., None]
    noise = draws.uniform(tf.shape(images), 0.0, 255.0, dtype=images.dtype)
    return images * (1.0 - mask) + noise * mask


def _mixup(images, labels, weights, alpha: float, draws: _Draws):
    """Mixup (Zhang et al.): each image blended with its partner in the reversed batch, per-sample Beta(a, a)."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    g1 = draws.gamma([batch], alpha)
    g2 = draws.gamma([batch], alpha)
    lam = g1 / (g1 + g2 + 1e-12)
    lam = tf.maximum(lam, 1.0 - lam)  # keep the first image dominant, so its label mostly stands
    partner = tf.reverse(tf.range(batch), [0])
    li = lam[:, None, None, None]
    images = images * li + tf.gather(images, partner) * (1.0 - li)
    labels = labels * lam[:, None] + tf.gather(labels, partner) * (1.0 - lam[:, None])
    weights = weights * lam + tf.gather(weights, partner) * (1.0 - lam)
    return images, labels, weights


class Augmenter:
    """`aug(images, labels, weights, training=True, seed=...)`; with training=False it returns its
    inputs untouched. `seed` (an int or a pair of ints, may be a tensor) decides every random draw:
    the same images and seed give the same output."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def images(self, images, training: bool = True, seed=(0, 0), draws: _Draws | None = None):
        """Image-only augmentation (no mixup): for tests and for looking at what the model sees."""
        if not training:
            return images
        draws = draws or _Draws(seed)
        if self.cfg.geometric:
            images = _affine(images, self.cfg, draws)
        if self.cfg.erasing > 0:
            images = _erase(images, self.cfg, draws)
        return images

    def __call__(self, images, labels, weights, training: bool = True, seed=(0, 0)):
        if not training:
            return images, labels, weights
        draws = _Draws(seed)
        images = self.images(images, training=True, draws=draws)
        if self.cfg.mixup > 0:
            images, labels, weights = _mixup(images, labels, weights, self.cfg.mixup, draws)
        return images, labels, weights
