"""Augmentation: each transform does what it says (checked against numpy truth), the same seed
gives the same batch, and inference never sees any of it."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ferkaggle.cnn.augment import AugmentConfig, Augmenter  # noqa: E402
from ferkaggle.cnn.config import TrainConfig, override  # noqa: E402
from ferkaggle.cnn.dataset import make_dataset
from ferkaggle.cnn.models import ModelConfig, build_model
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.data.synthetic import make_faces

OFF = dict(hflip=0.0, rotation=0.0, shift=0.0, zoom=0.0)


@pytest.fixture(scope="module")
def faces():
    return make_faces(32, seed=3)


def _images(x):
    return tf.constant(x.astype(np.float32)[..., None])


def test_hflip_half_mirrors_some_images_exactly_and_leaves_the_rest(faces):
    x, _ = faces
    out = Augmenter(AugmentConfig(hflip=0.5, **{k: v for k, v in OFF.items() if k != "hflip"})).images(
        _images(x), seed=(1, 2)).numpy()[..., 0]
    mirrored = np.array([np.allclose(o, im[:, ::-1], atol=1e-3) for o, im in zip(out, x)])
    untouched = np.array([np.allclose(o, im, atol=1e-3) for o, im in zip(out, x)])
    assert (mirrored | untouched).all()  # nothing else happens to an image
    assert 0 < mirrored.sum() < len(x)   # and both outcomes occur (32 draws at p=0.5)


def test_hflip_probability_one_is_an_exact_mirror(faces):
    x, _ = faces
    out = Augmenter(AugmentConfig(hflip=1.0, rotation=0, shift=0, zoom=0)).images(_images(x)).numpy()
    np.testing.assert_allclose(out[..., 0], x[:, :, ::-1].astype(np.float32), atol=1e-3)


def test_crop_is_an_integer_shift_of_the_edge_padded_image(faces):
    x, _ = faces
    pad = 3
    out = Augmenter(AugmentConfig(crop=pad, **OFF)).images(_images(x), seed=(0, 5)).numpy()[..., 0]
    shifted = 0
    for o, im in zip(out, x):
        padded = np.pad(im.astype(np.float32), pad, mode="edge")
        windows = {(dy, dx): padded[pad + dy: pad + dy + 48, pad + dx: pad + dx + 48]
                   for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}
        match = [d for d, w in windows.items() if np.allclose(o, w, atol=1e-3)]
        assert match, "a crop output is no 48x48 window of the edge-padded image"
        shifted += (0, 0) not in match
    assert shifted > len(x) // 2


def test_erasing_replaces_one_rectangle_of_bounded_area(faces):
    x, _ = faces
    cfg = AugmentConfig(erasing=1.0, erasing_area=0.25, **OFF)
    out = Augmenter(cfg).images(_images(x), seed=(4, 4)).numpy()[..., 0]
    for o, im in zip(out, x):
        changed = np.abs(o - im) > 1e-3
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert len(rows) and len(cols)
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        # Noise fills the whole rectangle (a pixel keeps its value only by a ~1/255 fluke).
        assert changed.sum() >= 0.95 * box
        assert box <= 0.25 * 48 * 48 + 2 * 48 + 1  # area cap, plus the rounding of its two sides
        assert 0.0 <= o.min() and o.max() <= 255.0


def test_mixup_blends_each_image_with_its_partner_as_its_label_says(faces):
    x, y = faces
    labels = tf.one_hot(y.astype(np.int64), 7)
    out, mixed, w = Augmenter(AugmentConfig(mixup=0.4, **OFF))(_images(x), labels, tf.ones([len(x)]), seed=(9, 9))
    out, mixed = out.numpy()[..., 0], mixed.numpy()
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


def test_same_seed_same_augmentation_other_seed_other(faces):
    x, y = faces
    aug = Augmenter(AugmentConfig(erasing=0.5, crop=2, mixup=0.3))  # every random op of the module
    labels, weights = tf.one_hot(y.astype(np.int64), 7), tf.ones([len(x)])
    a = [t.numpy() for t in aug(_images(x), labels, weights, seed=(3, 11))]
    b = [t.numpy() for t in aug(_images(x), labels, weights, seed=(3, 11))]
    c = aug(_images(x), labels, weights, seed=(3, 12))[0].numpy()
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c)


def test_augmentation_is_off_at_inference(faces):
    x, y = faces
    aug = Augmenter(AugmentConfig(erasing=1.0, mixup=0.4, crop=4))
    images = _images(x)
    assert aug.images(images, training=False) is images
    cfg = override(TrainConfig(), {"augment": {"erasing": 1.0, "crop": 4, "mixup": 0.4}})
    # The inference pipeline hands the model the untouched pixels, in order.
    batches = [b.numpy() for b in make_dataset(x, None, cfg, training=False, batch_size=10)]
    np.testing.assert_array_equal(np.concatenate(batches)[..., 0], x.astype(np.float32))
    val = [b for b, _ in make_dataset(x, y, cfg, training=False, batch_size=10).as_numpy_iterator()]
    np.testing.assert_array_equal(np.concatenate(val)[..., 0], x.astype(np.float32))


def test_training_pipeline_applies_the_configured_augmentation(faces):
    x, y = faces
    keys = {im.astype(np.float32).tobytes(): k for k, im in enumerate(x)}
    plain = override(TrainConfig(), {"augment": {**OFF}})
    images, onehot, _ = next(iter(make_dataset(x, y, plain, training=True, batch_size=32)))
    # Augmentation off: the batch is the training images (shuffled), each with its own label.
    found = [keys.get(im[..., 0].numpy().tobytes()) for im in images]
    assert sorted(found) == list(range(32))
    assert [int(np.argmax(o)) for o in onehot.numpy()] == [int(y[k]) for k in found]
    flip = override(TrainConfig(), {"augment": {**OFF, "hflip": 1.0}})
    images, onehot, _ = next(iter(make_dataset(x, y, flip, training=True, batch_size=32)))
    found = [keys.get(np.round(im[..., 0].numpy()[:, ::-1]).astype(np.float32).tobytes()) for im in images]
    assert sorted(found) == list(range(32))  # every training image arrives mirrored


def test_predictions_are_deterministic_without_augmentation(faces):
    x, _ = faces
    model = build_model(ModelConfig(architecture="vgg", width=4, depth=1, convs_per_block=1, dense_units=8))
    a, b = predict_proba(model, x, tta="hflip"), predict_proba(model, x, tta="hflip")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
