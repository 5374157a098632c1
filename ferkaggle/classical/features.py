"""Features for the classical baselines: raw pixels or HOG, one row per face.

Inputs: uint8 faces [N, 48, 48] (as stored by the prepared-data store).
Outputs: float32 matrices [N, D]:

- ``pixels``: the 2,304 grey levels scaled to [0, 1] (D = 2304).
- ``hog``: scikit-image histograms of oriented gradients (D = 900 with the defaults:
  5 x 5 blocks of 2 x 2 cells of 8 x 8 pixels, 9 orientations, L2-Hys), computed in
  chunks across worker processes, since `skimage.feature.hog` works one image at a time.

Both are row-wise transforms with nothing fitted, so computing them once for every row
(train, holdout-val and test) leaks nothing between CV folds; anything fitted (PCA,
scaling) lives in the per-fold model pipeline instead (see baseline.py).

`prepared_features` computes features for a whole prepared set and keeps HOG features where
the prepared set says (`Prepared.cache_path`), keyed by the data fingerprint and HOG settings,
so repeated runs on the same prepared data skip the extraction (about 20 s on 2 cores for
FER2013). data/prepared.py owns that place and its lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ferkaggle.core.constants import IMAGE_SIZE
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_save_npy

FeatureKind = Literal["pixels", "hog"]


@dataclass(frozen=True)
class HogSettings:
    """scikit-image HOG parameters (the library's names; sizes in pixels / cells)."""

    orientations: int = 9  # orientation bins per cell
    pixels_per_cell: int = 8  # square cell side, pixels; 48 must be divisible by it for full coverage
    cells_per_block: int = 2  # square block side, cells (blocks are L2-Hys normalised)

    def tag(self) -> str:
        return f"hog-o{self.orientations}-p{self.pixels_per_cell}-c{self.cells_per_block}"


def pixel_features(x: np.ndarray) -> np.ndarray:
    """uint8 [N,48,48] -> float32 [N,2304] in [0, 1]."""
    x = np.asarray(x)
    return (x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0))


def _hog_chunk(x: np.ndarray, settings: HogSettings) -> np.ndarray:
    from skimage.feature import hog

    kwargs = dict(orientations=settings.orientations,
                  pixels_per_cell=(settings.pixels_per_cell,) * 2,
                  cells_per_block=(settings.cells_per_block,) * 2,
                  block_norm="L2-Hys", feature_vector=True)
    return np.stack([hog(image, **kwargs) for image in x]).astype(np.float32) if len(x) else np.zeros((0, hog_dim(settings)), np.float32)


def hog_dim(settings: HogSettings = HogSettings()) -> int:
    cells = IMAGE_SIZE // settings.pixels_per_cell
    blocks = cells - settings.cells_per_block + 1
    if blocks < 1:
        raise FerkaggleError(f"HOG: {settings.cells_per_block}x{settings.cells_per_block} blocks of "
                             f"{settings.pixels_per_cell}-pixel cells do not fit a {IMAGE_SIZE}-pixel face")
    return blocks * blocks * settings.cells_per_block ** 2 * settings.orientations


def hog_features(x: np.ndarray, settings: HogSettings = HogSettings(), n_jobs: int = -1,
                 chunk_size: int = 2000) -> np.ndarray:
    """uint8 [N,48,48] -> float32 [N, hog_dim] with scikit-image `hog`, chunks in parallel.

    Small inputs (one chunk) run in this process; larger ones go to joblib workers,
    which is where the time is on FER2013 (about 0.5 ms a face per core).
    """
    x = np.asarray(x)
    hog_dim(settings)  # fails early, with a readable message, on settings that do not fit
    if len(x) <= chunk_size or n_jobs == 1:
        return _hog_chunk(x, settings)
    from joblib import Parallel, delayed

    chunks = [x[i:i + chunk_size] for i in range(0, len(x), chunk_size)]
    parts = Parallel(n_jobs=n_jobs)(delayed(_hog_chunk)(np.ascontiguousarray(c), settings) for c in chunks)
    return np.concatenate(parts)


def compute_features(x: np.ndarray, kind: FeatureKind, hog: HogSettings = HogSettings(), n_jobs: int = -1) -> np.ndarray:
    """Features of the given kind for uint8 faces [N,48,48] (the kind is checked where a config is
    read: presets.from_dict)."""
    if kind == "pixels":
        return pixel_features(x)
    return hog_features(x, hog, n_jobs=n_jobs)


def prepared_features(prepared, kind: FeatureKind, hog: HogSettings = HogSettings(), n_jobs: int = -1,
                      cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(features of every labelled row `prepared.x`, features of `prepared.x_test`).

    Rows stay in the prepared order, so `prepared.train_idx` / `val_idx` index the first.
    HOG features are kept at `prepared.cache_path(...)`; pixels are cheap and never kept.
    """
    n = len(prepared.x)
    if kind != "hog" or not cache:
        both = compute_features(np.concatenate([prepared.x, prepared.x_test]), kind, hog, n_jobs)
        return both[:n], both[n:]
    path = prepared.cache_path(f"{hog.tag()}-{prepared.data_fingerprint}.npy")
    if path.is_file():
        try:
            both = np.load(path, allow_pickle=False)
            if both.shape == (n + len(prepared.x_test), hog_dim(hog)):
                return both[:n], both[n:]
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed and rewritten below
    both = compute_features(np.concatenate([prepared.x, prepared.x_test]), kind, hog, n_jobs)
    try:
        atomic_save_npy(path, both)
    except OSError:
        pass  # a read-only prepared folder only costs the recomputation next time
    return both[:n], both[n:]
