"""Augmentation: changes training images, keeps shape and dtype, never touches inference."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ferkaggle.augment import AugmentConfig, Augmenter  # noqa: E402
from ferkaggle.train import TrainConfig, make_dataset, override, predict_proba  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    from ferkaggle.data.synthetic import make_faces

    return make_faces(32, seed=3)


@pytest.mark.parametrize("cfg", [
    AugmentConfig(),  # the notebooks' rotation/shift/zoom/flip
    AugmentConfig(hflip=1.0, rotation=0, shift=0, zoom=0),
    AugmentConfig(hflip=0, rotation=0, shift=0, zoom=0, crop=4),
    AugmentConfig(hflip=0, rotation=0, shift=0, zoom=0, erasing=1.0),
], ids=["notebook", "flip", "crop", "erasing"])
def test_training_augmentation_changes_images_keeps_shape_and_dtype(faces, cfg):
    x, _ = faces
    images = tf.constant(x.astype(np.float32)[..., None])
    out = Augmenter(cfg).images(images, training=True)
    assert out.shape == images.shape and out.dtype == images.dtype
    changed = np.abs(out.numpy() - images.numpy()).reshape(len(x), -1).max(axis=1) > 1.0
    assert changed.mean() > 0.5
    assert 0.0 <= out.numpy().min() and out.numpy().max() <= 255.0


def test_hflip_probability_one_is_an_exact_mirror(faces):
    x, _ = faces
    images = tf.constant(x.astype(np.float32)[..., None])
    out = Augmenter(AugmentConfig(hflip=1.0, rotation=0, shift=0, zoom=0)).images(images).numpy()
    np.testing.assert_allclose(out, images.numpy()[:, :, ::-1], atol=1e-3)


def test_mixup_mixes_labels_and_keeps_shapes(faces):
    x, y = faces
    images = tf.constant(x.astype(np.float32)[..., None])
    labels = tf.one_hot(y.astype(np.int64), 7)
    weights = tf.ones([len(x)])
    out, mixed, w = Augmenter(AugmentConfig(hflip=0, rotation=0, shift=0, zoom=0, mixup=0.4))(images, labels, weights)
    assert out.shape == images.shape and mixed.shape == labels.shape and w.shape == weights.shape
    np.testing.assert_allclose(mixed.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert (mixed.numpy().max(axis=1) < 1.0).any()


def test_augmentation_is_off_at_inference(faces):
    x, y = faces
    aug = Augmenter(AugmentConfig(erasing=1.0, mixup=0.4, crop=4))
    images = tf.constant(x.astype(np.float32)[..., None])
    assert aug.images(images, training=False) is images
    cfg = override(TrainConfig(), {"augment": {"erasing": 1.0, "crop": 4, "mixup": 0.4}})
    # The inference pipeline hands the model the untouched pixels, in order.
    batches = [b.numpy() for b in make_dataset(x, None, cfg, training=False, batch_size=10)]
    np.testing.assert_array_equal(np.concatenate(batches)[..., 0], x.astype(np.float32))
    val = [b for b, _ in make_dataset(x, y, cfg, training=False, batch_size=10).as_numpy_iterator()]
    np.testing.assert_array_equal(np.concatenate(val)[..., 0], x.astype(np.float32))
    # The training pipeline, with the same config, does change them.
    train = next(iter(make_dataset(x, y, cfg, training=True, batch_size=32)))
    assert train[0].shape == (32, 48, 48, 1) and train[0].dtype == tf.float32


def test_predictions_are_deterministic_without_augmentation(faces):
    from ferkaggle.models import ModelConfig, build_model

    x, _ = faces
    model = build_model(ModelConfig(architecture="vgg", width=4, depth=1, convs_per_block=1, dense_units=8))
    a, b = predict_proba(model, x, tta="hflip"), predict_proba(model, x, tta="hflip")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
