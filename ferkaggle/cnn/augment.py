"""Training-time augmentation: its settings (`AugmentConfig`) and the portable batched NumPy
implementation (`Augmenter`) every Keras backend trains with; the TensorFlow backend's tf.data
pipeline runs the same augmentation as TensorFlow ops (`tf_augment.TfAugmenter`).

Input: a batch of float32 faces [B, 48, 48, 1] in 0..255 (plus one-hot labels and sample
weights for mixup). Output: the same shapes and dtypes, augmented. Everything is vectorised
over the whole batch (no per-image Python): flip, rotation, shift, zoom and random crop are
fused into ONE projective transform per image (`transform_rows`: one bilinear resampling pass,
edge pixels repeated outside the image, instead of the three that chained transforms would
cost), then random erasing and mixup. Augmentation is a training-only step of the input
pipeline: models never contain it, so inference (val, test, TTA) always sees the untouched images.

Reproducible: every draw comes from a generator keyed by the seed pair the caller passes with
each batch (`dataset.make_dataset`: the run seed and the batch's position in the run), so the
same seed gives the same augmented batch whichever thread makes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
        """Whether any of the transforms fused into the one resampling (`transform_rows`) is on."""
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


def transform_rows(flip, cos, sin, tx, ty, height: int, width: int) -> list:
    """The six projective-transform coefficients [a0, a1, a2, b0, b1, b2] (each [B]) of flip (0/1),
    rotation and zoom (`cos`, `sin`: cos and sin of the angle, divided by the scale) and shift
    (tx, ty pixels): output pixel (x, y) reads input pixel (a0 x + a1 y + a2, b0 x + b1 y + b2), that is
    centre + R(theta) * (flip(x, y) - centre) / scale - shift. Plain arithmetic, so NumPy arrays and
    TensorFlow tensors both go through this one formula."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    f_sign, f_off = 1.0 - 2.0 * flip, flip * (width - 1)
    return [cos * f_sign, -sin, cx - tx + cos * (f_off - cx) + sin * cy,
            sin * f_sign, cos, cy - ty + sin * (f_off - cx) - cos * cy]


def project(images: np.ndarray, rows) -> np.ndarray:
    """Resample float images [B, H, W, C] by the transform `rows` (`transform_rows`): bilinear, and a
    coordinate outside the image reads the nearest edge pixel (TensorFlow's ImageProjectiveTransformV3
    with fill_mode NEAREST, computed the same way in float32)."""
    batch, height, width, channels = images.shape
    a0, a1, a2, b0, b1, b2 = (np.asarray(r, np.float32).reshape(batch, 1, 1) for r in rows)
    xs = np.arange(width, dtype=np.float32)[None, None, :]
    ys = np.arange(height, dtype=np.float32)[None, :, None]
    in_x = np.clip(a0 * xs + a1 * ys + a2, 0.0, width - 1)
    in_y = np.clip(b0 * xs + b1 * ys + b2, 0.0, height - 1)
    x0, y0 = np.floor(in_x), np.floor(in_y)
    fx, fy = (in_x - x0)[..., None], (in_y - y0)[..., None]
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    flat = images.reshape(batch * height * width, channels)
    base = (np.arange(batch) * (height * width))[:, None, None]
    top = (1.0 - fx) * flat[base + y0 * width + x0] + fx * flat[base + y0 * width + x1]
    bottom = (1.0 - fx) * flat[base + y1 * width + x0] + fx * flat[base + y1 * width + x1]
    return ((1.0 - fy) * top + fy * bottom).astype(np.float32)


def seeded_rng(seed) -> np.random.Generator:
    """The generator of one seed (an int or a pair of non-negative ints)."""
    key = [int(s) for s in np.atleast_1d(np.asarray(seed, np.int64))]
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(key)))


def _uniform(rng: np.random.Generator, size, low=0.0, high=1.0) -> np.ndarray:
    return rng.uniform(low, high, size).astype(np.float32)


def _affine(images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Flip, rotate, zoom, shift and crop in one resampling."""
    batch, height, width = images.shape[:3]
    flip = (_uniform(rng, batch) < cfg.hflip).astype(np.float32)
    theta = _uniform(rng, batch, -1.0, 1.0) * np.float32(cfg.rotation * math.pi / 180.0)
    scale = _uniform(rng, batch, 1.0 - cfg.zoom, 1.0 + cfg.zoom)  # >1 zooms in
    tx = _uniform(rng, batch, -1.0, 1.0) * np.float32(cfg.shift * width)
    ty = _uniform(rng, batch, -1.0, 1.0) * np.float32(cfg.shift * height)
    if cfg.crop:
        tx += np.round(_uniform(rng, batch, -cfg.crop - 0.5, cfg.crop + 0.5))
        ty += np.round(_uniform(rng, batch, -cfg.crop - 0.5, cfg.crop + 0.5))
    return project(images, transform_rows(flip, np.cos(theta) / scale, np.sin(theta) / scale, tx, ty, height, width))


def erase_mask(y0, x0, h, w, height: int, width: int) -> np.ndarray:
    """[B, H, W] bool: the rectangle of rows [y0, y0 + h) and columns [x0, x0 + w) of each image."""
    rows = np.arange(height, dtype=np.float32)[None, :, None]
    cols = np.arange(width, dtype=np.float32)[None, None, :]
    return ((rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
            & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None]))


def _erase(images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random erasing (Zhong et al.): one rectangle per chosen image filled with uniform noise."""
    batch, height, width = images.shape[:3]
    area = _uniform(rng, batch, 0.02, max(cfg.erasing_area, 0.021)) * np.float32(height * width)
    aspect = np.exp(_uniform(rng, batch, math.log(0.3), math.log(3.3)))
    h = np.clip(np.sqrt(area * aspect), 1.0, height)
    w = np.clip(np.sqrt(area / aspect), 1.0, width)
    y0 = _uniform(rng, batch) * (height - h)
    x0 = _uniform(rng, batch) * (width - w)
    chosen = _uniform(rng, batch) < cfg.erasing
    mask = (erase_mask(y0, x0, h, w, height, width) & chosen[:, None, None])[..., None]
    noise = _uniform(rng, images.shape, 0.0, 255.0)
    return np.where(mask, noise, images)


def _mixup(images, labels, weights, alpha: float, rng: np.random.Generator):
    """Mixup (Zhang et al.): each image blended with its partner in the reversed batch, per-sample Beta(a, a)."""
    batch = len(images)
    g1 = rng.standard_gamma(alpha, batch).astype(np.float32)
    g2 = rng.standard_gamma(alpha, batch).astype(np.float32)
    lam = g1 / (g1 + g2 + np.float32(1e-12))
    lam = np.maximum(lam, 1.0 - lam)  # keep the first image dominant, so its label mostly stands
    li = lam[:, None, None, None]
    images = images * li + images[::-1] * (1.0 - li)
    labels = labels * lam[:, None] + labels[::-1] * (1.0 - lam[:, None])
    weights = weights * lam + weights[::-1] * (1.0 - lam)
    return images.astype(np.float32), labels.astype(np.float32), weights.astype(np.float32)


class Augmenter:
    """`aug(images, labels, weights, training=True, seed=...)` on NumPy arrays; with training=False
    it returns its inputs untouched. `seed` (an int or a pair of ints) decides every random draw:
    the same images and seed give the same output."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def images(self, images, training: bool = True, seed=(0, 0), rng: np.random.Generator | None = None):
        """Image-only augmentation (no mixup): for tests and for looking at what the model sees."""
        if not training:
            return images
        rng = rng or seeded_rng(seed)
        images = np.asarray(images, np.float32)
        if self.cfg.geometric:
            images = _affine(images, self.cfg, rng)
        if self.cfg.erasing > 0:
            images = _erase(images, self.cfg, rng)
        return images

    def __call__(self, images, labels, weights, training: bool = True, seed=(0, 0)):
        if not training:
            return images, labels, weights
        rng = seeded_rng(seed)
        images = self.images(images, training=True, rng=rng)
        if self.cfg.mixup > 0:
            images, labels, weights = _mixup(images, np.asarray(labels, np.float32),
                                             np.asarray(weights, np.float32), self.cfg.mixup, rng)
        return images, labels, weights
