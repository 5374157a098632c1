"""Augmentation: each transform does what it says (checked against numpy truth), the same seed
gives the same batch, and inference never sees any of it; for both implementations (the portable
NumPy one every backend trains with, and the TensorFlow ops of the tf.data fast path), which also
resample alike on the same transform and draw alike in distribution."""

import importlib.util

import numpy as np
import pytest

from ferkaggle.cnn.augment import AugmentConfig, Augmenter, project, transform_rows
from ferkaggle.cnn.config import TrainConfig, override
from ferkaggle.cnn.dataset import make_dataset
from ferkaggle.cnn.models import ModelConfig, build_model
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.data.synthetic import make_faces

OFF = dict(hflip=0.0, rotation=0.0, shift=0.0, zoom=0.0)
HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(not HAS_TF, reason="the TensorFlow augmentation needs tensorflow installed")


class NumpyImpl:
    """The portable augmentation, on NumPy arrays."""

    def __init__(self, cfg):
        self.aug = Augmenter(cfg)

    def images(self, x, seed=(0, 0)):
        return self.aug.images(x.astype(np.float32)[..., None], seed=seed)[..., 0]

    def __call__(self, x, y, seed):
        labels, weights = np.eye(7, dtype=np.float32)[y.astype(np.int64)], np.ones(len(x), np.float32)
        out, mixed, w = self.aug(x.astype(np.float32)[..., None], labels, weights, seed=seed)
        return out[..., 0], mixed, w


class TfImpl:
    """The TensorFlow ops of the tf.data pipeline, fed and read as NumPy."""

    def __init__(self, cfg):
        from ferkaggle.cnn.tf_augment import TfAugmenter

        self.aug = TfAugmenter(cfg)

    def images(self, x, seed=(0, 0)):
        import tensorflow as tf

        return self.aug.images(tf.constant(x.astype(np.float32)[..., None]), seed=seed).numpy()[..., 0]

    def __call__(self, x, y, seed):
        import tensorflow as tf

        labels, weights = tf.one_hot(y.astype(np.int64), 7), tf.ones([len(x)])
        out, mixed, w = self.aug(tf.constant(x.astype(np.float32)[..., None]), labels, weights, seed=seed)
        return out.numpy()[..., 0], mixed.numpy(), w.numpy()


@pytest.fixture(params=["numpy", pytest.param("tensorflow", marks=needs_tf)])
def impl(request):
    return NumpyImpl if request.param == "numpy" else TfImpl


@pytest.fixture(scope="module")
def faces():
    return make_faces(32, seed=3)


def test_hflip_half_mirrors_some_images_exactly_and_leaves_the_rest(faces, impl):
    x, _ = faces
    out = impl(AugmentConfig(hflip=0.5, **{k: v for k, v in OFF.items() if k != "hflip"})).images(x, seed=(1, 2))
    mirrored = np.array([np.allclose(o, im[:, ::-1], atol=1e-3) for o, im in zip(out, x)])
    untouched = np.array([np.allclose(o, im, atol=1e-3) for o, im in zip(out, x)])
    assert (mirrored | untouched).all()  # nothing else happens to an image
    assert 0 < mirrored.sum() < len(x)   # and both outcomes occur (32 draws at p=0.5)


def test_hflip_probability_one_is_an_exact_mirror(faces, impl):
    x, _ = faces
    out = impl(AugmentConfig(hflip=1.0, rotation=0, shift=0, zoom=0)).images(x)
    np.testing.assert_allclose(out, x[:, :, ::-1].astype(np.float32), atol=1e-3)


def test_crop_is_an_integer_shift_of_the_edge_padded_image(faces, impl):
    x, _ = faces
    pad = 3
    out = impl(AugmentConfig(crop=pad, **OFF)).images(x, seed=(0, 5))
    shifted = 0
    for o, im in zip(out, x):
        padded = np.pad(im.astype(np.float32), pad, mode="edge")
        windows = {(dy, dx): padded[pad + dy: pad + dy + 48, pad + dx: pad + dx + 48]
                   for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}
        match = [d for d, w in windows.items() if np.allclose(o, w, atol=1e-3)]
        assert match, "a crop output is no 48x48 window of the edge-padded image"
        shifted += (0, 0) not in match
    assert shifted > len(x) // 2


def test_erasing_replaces_one_rectangle_of_bounded_area(faces, impl):
    x, _ = faces
    cfg = AugmentConfig(erasing=1.0, erasing_area=0.25, **OFF)
    out = impl(cfg).images(x, seed=(4, 4))
    for o, im in zip(out, x):
        changed = np.abs(o - im) > 1e-3
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert len(rows) and len(cols)
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        # Noise fills the whole rectangle (a pixel keeps its value only by a ~1/255 fluke).
        assert changed.sum() >= 0.95 * box
        assert box <= 0.25 * 48 * 48 + 2 * 48 + 1  # area cap, plus the rounding of its two sides
        assert 0.0 <= o.min() and o.max() <= 255.0


def test_mixup_blends_each_image_with_its_partner_as_its_label_says(faces, impl):
    x, y = faces
    out, mixed, w = impl(AugmentConfig(mixup=0.4, **OFF))(x, y, seed=(9, 9))
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-5)
    partner = np.arange(len(x))[::-1]
    checked = 0
    for i, j in enumerate(partner):
        if y[i] == y[j]:
            continue
        lam = mixed[i, y[i]]
        assert lam >= 0.5 - 1e-6 and mixed[i, y[j]] == pytest.approx(1 - lam, abs=1e-5)
        np.testing.assert_allclose(out[i], lam * x[i] + (1 - lam) * x[j], atol=1e-2)
        checked += 1
    assert checked > 10 and (mixed.max(axis=1) < 0.999).any()


def test_same_seed_same_augmentation_other_seed_other(faces, impl):
    x, y = faces
    aug = impl(AugmentConfig(erasing=0.5, crop=2, mixup=0.3))  # every random op of the module
    a = aug(x, y, seed=(3, 11))
    b = aug(x, y, seed=(3, 11))
    c = aug(x, y, seed=(3, 12))[0]
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c)


def _inference_arrays(data):
    """make_dataset's inference data as NumPy: whole arrays on the portable path, batches under tf.data."""
    if isinstance(data, np.ndarray):
        return (data,)
    if isinstance(data, tuple):
        return data
    return tuple(np.concatenate(parts) for parts in zip(*[b if isinstance(b, tuple) else (b,)
                                                          for b in data.as_numpy_iterator()]))


def test_augmentation_is_off_at_inference(faces, impl):
    x, y = faces
    cfg = AugmentConfig(erasing=1.0, mixup=0.4, crop=4)
    images = x.astype(np.float32)[..., None]
    assert impl(cfg).aug.images(images, training=False) is images
    cfg = override(TrainConfig(), {"augment": {"erasing": 1.0, "crop": 4, "mixup": 0.4}})
    # The inference pipeline hands the model the untouched pixels, in order.
    (only,) = _inference_arrays(make_dataset(x, None, cfg, training=False, batch_size=10))
    np.testing.assert_array_equal(only[..., 0], x.astype(np.float32))
    val, onehot = _inference_arrays(make_dataset(x, y, cfg, training=False, batch_size=10))
    np.testing.assert_array_equal(val[..., 0], x.astype(np.float32))
    np.testing.assert_array_equal(onehot.argmax(axis=1), y)


def test_training_pipeline_applies_the_configured_augmentation(faces):
    x, y = faces
    keys = {im.astype(np.float32).tobytes(): k for k, im in enumerate(x)}
    plain = override(TrainConfig(), {"augment": {**OFF}})
    images, onehot, _ = (np.asarray(t) for t in next(iter(make_dataset(x, y, plain, training=True, batch_size=32))))
    # Augmentation off: the batch is the training images (shuffled), each with its own label.
    found = [keys.get(im[..., 0].tobytes()) for im in images]
    assert sorted(found) == list(range(32))
    assert [int(np.argmax(o)) for o in onehot] == [int(y[k]) for k in found]
    flip = override(TrainConfig(), {"augment": {**OFF, "hflip": 1.0}})
    images, onehot, _ = (np.asarray(t) for t in next(iter(make_dataset(x, y, flip, training=True, batch_size=32))))
    found = [keys.get(np.round(im[..., 0][:, ::-1]).astype(np.float32).tobytes()) for im in images]
    assert sorted(found) == list(range(32))  # every training image arrives mirrored


def test_training_stream_passes_over_every_row_once_per_epoch_in_a_new_order(faces):
    x, y = faces
    keys = {im.astype(np.float32).tobytes(): k for k, im in enumerate(x)}
    plain = override(TrainConfig(), {"augment": {**OFF}})
    stream = iter(make_dataset(x, y, plain, training=True, batch_size=10, seed=5))
    # 32 rows in batches of 10: each pass is 10, 10, 10, 2 (fit's steps_per_epoch = ceil(n / batch)).
    passes = [[keys[im[..., 0].tobytes()] for _ in range(4) for im in np.asarray(next(stream)[0])] for _ in range(2)]
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(32))
    assert passes[0] != passes[1]
    again = iter(make_dataset(x, y, plain, training=True, batch_size=10, seed=5))
    assert [keys[im[..., 0].tobytes()] for _ in range(4) for im in np.asarray(next(again)[0])] == passes[0]


@needs_tf
def test_numpy_and_tensorflow_resample_alike_on_the_same_transform(faces):
    """The portable resampling against TensorFlow's ImageProjectiveTransformV3 (what the tf.data path
    runs), on the same flip/rotation/zoom/shift matrices, several of which reach outside the image."""
    import tensorflow as tf

    x, _ = faces
    rng = np.random.default_rng(0)
    n = len(x)
    theta, scale = rng.uniform(-0.5, 0.5, n), rng.uniform(0.7, 1.3, n)
    rows = transform_rows((rng.random(n) < 0.5).astype(np.float32), (np.cos(theta) / scale).astype(np.float32),
                          (np.sin(theta) / scale).astype(np.float32), rng.uniform(-9, 9, n).astype(np.float32),
                          rng.uniform(-9, 9, n).astype(np.float32), 48, 48)
    images = x.astype(np.float32)[..., None]
    transforms = np.stack([*rows, np.zeros(n), np.zeros(n)], axis=1).astype(np.float32)
    want = tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[48, 48],
                                                 fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST").numpy()
    got = project(images, rows)
    np.testing.assert_allclose(got, want, atol=0.05)
    assert np.abs(got - images).mean() > 10  # the transforms did move the faces


@needs_tf
def test_numpy_and_tensorflow_draw_alike_in_distribution():
    """Both implementations' draws follow the same distributions: the share of mirrored faces, the mean
    pixel change of rotation, of shift and of zoom, the erased share and the mixup weights, on 2048 faces."""
    x, y = make_faces(2048, seed=8)
    cases = [(AugmentConfig(hflip=0.5, rotation=0, shift=0, zoom=0), lambda o, m: np.mean(
                 [np.allclose(a, b[:, ::-1], atol=1e-3) for a, b in zip(o, x)])),
             *[(AugmentConfig(**{**OFF, key: value}), lambda o, m: np.abs(o - x).mean())
               for key, value in [("rotation", 15.0), ("shift", 0.1), ("zoom", 0.15)]],
             (AugmentConfig(erasing=0.5, erasing_area=0.3, **OFF), lambda o, m: (np.abs(o - x) > 1e-3).mean()),
             (AugmentConfig(mixup=0.3, **OFF), lambda o, m: m.max(axis=1).mean())]
    for cfg, statistic in cases:
        got = [statistic(*impl(cfg)(x, y, seed=(2, 3))[:2]) for impl in (NumpyImpl, TfImpl)]
        assert got[0] == pytest.approx(got[1], rel=0.06), (cfg, got)


def test_predictions_are_deterministic_without_augmentation(faces):
    x, _ = faces
    model = build_model(ModelConfig(architecture="vgg", width=4, depth=1, convs_per_block=1, dense_units=8))
    a, b = predict_proba(model, x, tta="hflip"), predict_proba(model, x, tta="hflip")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
