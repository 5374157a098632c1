"""The TensorFlow backend's input pipeline (TensorFlow-only, like every `tf_*` module): tf.data over
in-memory uint8 faces, the fast path `dataset.make_dataset` takes under KERAS_BACKEND=tensorflow.

Inputs: faces [n, 48, 48] uint8, labels (or soft targets), the config (batch size, augmentation),
per-class weights and a seed. Output: a `tf.data.Dataset` of float32 images in 0..255 (the models
rescale themselves), one-hot or soft targets and per-sample class weights; training streams are
shuffled, augmented batch by batch (`tf_augment.TfAugmenter`, in a parallel map) and repeat forever,
the same seed giving the same stream. The same batches as the portable feeder
(`dataset.make_dataset` on other backends), from other random streams. TensorFlow is imported inside
the functions.
"""

from __future__ import annotations

import numpy as np

from ferkaggle.cnn.config import TrainConfig
from ferkaggle.cnn.tf_augment import TfAugmenter
from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES


def make_tf_dataset(x: np.ndarray, y: np.ndarray | None, cfg: TrainConfig, *, training: bool,
                    seed: int = DEFAULT_SEED, weights: np.ndarray | None = None, batch_size: int | None = None,
                    targets: np.ndarray | None = None):
    """tf.data over in-memory uint8 faces: (shuffle), batch, batched augmentation map, prefetch.
    `make_dataset`'s contract (see there); `weights` is the per-class weight vector.

    Training batches are (float32 [B,48,48,1] in 0..255, one-hot [B,7], sample weight [B]) and
    repeat forever (fit with steps_per_epoch): the shuffle order comes from `seed`, and batch
    number i of the stream is augmented with the stateless seed (seed, i), so epochs differ from
    each other but the same seed gives the same stream. Inference batches are images only (or
    images + one-hot when y is given), in order, never augmented. `targets` (float [n, 7], training
    only) replaces the one-hot labels with soft targets (distillation); y still picks class weights.
    """
    import tensorflow as tf

    batch_size = batch_size or cfg.batch_size
    x = np.asarray(x, np.uint8)
    if y is None:
        ds = tf.data.Dataset.from_tensor_slices(x)
        ds = ds.batch(batch_size).map(lambda im: tf.cast(im, tf.float32)[..., None], num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)
    y = np.asarray(y, np.int64)
    if not training:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        ds = ds.map(lambda im, lab: (tf.cast(im, tf.float32)[..., None], tf.one_hot(lab, NUM_CLASSES)),
                    num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)
    class_w = tf.constant(weights if weights is not None else np.ones(NUM_CLASSES, np.float32))
    augmenter = TfAugmenter(cfg.augment)

    run_seed = int(seed) % (2**31 - 1)

    def prepare(step, batch):
        im, lab, soft = batch if targets is not None else (*batch, None)
        images = tf.cast(im, tf.float32)[..., None]
        pair = tf.stack([tf.constant(run_seed, tf.int64), step])
        labels = tf.one_hot(lab, NUM_CLASSES) if soft is None else soft
        return augmenter(images, labels, tf.gather(class_w, lab), training=True, seed=pair)

    columns = (x, y) if targets is None else (x, y, np.asarray(targets, np.float32))
    ds = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(x), seed=run_seed, reshuffle_each_iteration=True)
    # Batch first, then augment whole batches: one graph op per batch instead of one per image.
    ds = ds.batch(batch_size).repeat().enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
