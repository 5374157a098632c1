"""Training-time augmentation as batched TensorFlow ops, for the tf.data `map` of the TensorFlow
backend's input pipeline (`tf_dataset`): TensorFlow-only, like every `tf_*` module.

The same augmentation as the portable NumPy one (`augment.Augmenter`, which every other backend
trains with): the same draws from the same distributions in the same order, the same transform
matrix (`augment.transform_rows`), the same resampling (bilinear, edge pixels repeated) and the
same erasing and mixup; only the random streams differ (stateless TF ops here, NumPy's Philox
there). tests/cnn/test_augment.py checks each transform of both against NumPy truth, and the two
against each other on the same transform.

Reproducible: every random draw is a stateless op (`tf.random.stateless_*`) keyed by a seed
pair the caller passes with each batch (`dataset.make_dataset`: the run seed and the batch's
position in the run), so the same seed gives the same augmented batches however tf.data schedules its
parallel map; stateful `tf.random` ops would depend on which thread ran first.
"""

from __future__ import annotations

import math

from ferkaggle.cnn.augment import AugmentConfig, transform_rows


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

    def uniform(low, high):
        return draws.uniform([batch], low, high)

    flip = tf.cast(uniform(0.0, 1.0) < cfg.hflip, tf.float32)
    theta = uniform(-1.0, 1.0) * (cfg.rotation * math.pi / 180.0)
    scale = uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom)  # >1 zooms in
    tx = uniform(-1.0, 1.0) * cfg.shift * width
    ty = uniform(-1.0, 1.0) * cfg.shift * height
    if cfg.crop:
        tx += tf.round(uniform(-cfg.crop - 0.5, cfg.crop + 0.5))
        ty += tf.round(uniform(-cfg.crop - 0.5, cfg.crop + 0.5))
    rows = transform_rows(flip, tf.cos(theta) / scale, tf.sin(theta) / scale, tx, ty, height, width)
    zeros = tf.zeros_like(rows[0])
    transforms = tf.stack([*rows, zeros, zeros], axis=1)
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


class TfAugmenter:
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
