"""Pixel and HOG features: shapes, scaling, agreement with scikit-image, the HOG cache."""

from __future__ import annotations

import numpy as np
import pytest

from ferkaggle.classical import features
from ferkaggle.classical.features import (
    HogSettings,
    hog_dim,
    hog_features,
    pixel_features,
    prepared_features,
)
from ferkaggle.core.errors import FerkaggleError


def _faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def test_pixels_are_flat_float32_in_unit_range():
    x = _faces(3)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    f = pixel_features(x)
    assert f.shape == (3, 2304) and f.dtype == np.float32
    assert f[0, 0] == 0.0 and f[0, 1] == 1.0
    np.testing.assert_allclose(f[2], x[2].ravel() / 255.0, rtol=1e-6)


def test_hog_matches_scikit_image_one_face_at_a_time():
    from skimage.feature import hog

    x = _faces(4)
    f = hog_features(x)
    assert f.shape == (4, hog_dim()) == (4, 900)
    expected = hog(x[2], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    np.testing.assert_allclose(f[2], expected, rtol=1e-5, atol=1e-6)


def test_hog_in_parallel_chunks_equals_one_pass():
    x = _faces(9, seed=1)
    settings = HogSettings(orientations=6, pixels_per_cell=12, cells_per_block=1)
    serial = hog_features(x, settings, n_jobs=1)
    chunked = hog_features(x, settings, n_jobs=2, chunk_size=4)
    assert serial.shape == (9, 4 * 4 * 6)
    np.testing.assert_array_equal(serial, chunked)


def test_hog_settings_that_do_not_fit_the_face_fail_readably():
    with pytest.raises(FerkaggleError, match="do not fit"):
        hog_features(_faces(1), HogSettings(pixels_per_cell=32, cells_per_block=2))


def test_hog_is_cached_per_prepared_set(tiny_prepared, monkeypatch):
    x, x_test = prepared_features(tiny_prepared, "hog")
    assert x.shape == (len(tiny_prepared.x), 900) and x_test.shape == (len(tiny_prepared.x_test), 900)
    assert list(tiny_prepared.cache_dir.glob("hog-*.npy"))

    def boom(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(features, "compute_features", boom)
    x2, x_test2 = prepared_features(tiny_prepared, "hog")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(x_test, x_test2)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings are another cache entry
        prepared_features(tiny_prepared, "hog", HogSettings(orientations=8))
