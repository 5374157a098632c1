"""The input pipeline of a fit: in-memory uint8 faces into batches Keras trains or scores on, on
whichever Keras backend runs (KERAS_BACKEND: tensorflow, jax or torch).

Inputs: faces [n, 48, 48] uint8, labels (or soft targets), the config (batch size, augmentation,
class weights) and a seed. Output: float32 images in 0..255 (the models rescale themselves),
one-hot or soft targets and per-sample class weights; training streams are shuffled, augmented
batch by batch and repeat forever, the same seed giving the same stream.

Under TensorFlow the batches come from tf.data (`tf_dataset`, a parallel graph map: the fast path
on the CPU); under any other backend from the portable feeder here: a Python generator of
vectorised NumPy batches (`augment.Augmenter`) made one batch ahead in a background thread. Both
run the same augmentation (tests/cnn/test_augment.py holds them to the same transforms).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

from ferkaggle.cnn.augment import Augmenter, seeded_rng
from ferkaggle.cnn.runtime import tensorflow_backend
from ferkaggle.cnn.config import TrainConfig
from ferkaggle.cnn.tf_dataset import make_tf_dataset
from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES

PREFETCH = 4  # batches the feeder's thread makes ahead of the training step


def class_weight_vector(y: np.ndarray, mode: str) -> np.ndarray:
    """Per-class sample weights: ones, 'balanced' (n / (k * count)) or its square root."""
    if mode == "none":
        return np.ones(NUM_CLASSES, np.float32)
    counts = np.bincount(np.asarray(y, np.int64), minlength=NUM_CLASSES).astype(np.float64)
    w = len(y) / (NUM_CLASSES * np.maximum(counts, 1.0))
    return (np.sqrt(w) if mode == "sqrt" else w).astype(np.float32)


def make_dataset(x: np.ndarray, y: np.ndarray | None, cfg: TrainConfig, *, training: bool,
                 seed: int = DEFAULT_SEED, weights: np.ndarray | None = None, batch_size: int | None = None,
                 targets: np.ndarray | None = None):
    """What `model.fit` / `evaluate` take for in-memory uint8 faces, on the backend that runs.

    Training batches are (float32 [B,48,48,1] in 0..255, one-hot [B,7], sample weight [B]) and
    repeat forever (fit with steps_per_epoch = ceil(n / batch size): one pass, the last batch
    short): the shuffle order of each pass comes from `seed`, and batch number i of the stream is
    augmented with the seed (seed, i), so epochs differ from each other but the same seed gives the
    same stream. Inference data is the images only (or images + one-hot when y is given), in order,
    never augmented: a tf.data.Dataset of batches under TensorFlow, whole float32 arrays elsewhere
    (fit's `validation_batch_size` batches them). `targets` (float [n, 7], training only) replaces
    the one-hot labels with soft targets (distillation); y still picks class weights.
    """
    if tensorflow_backend():
        return make_tf_dataset(x, y, cfg, training=training, seed=seed, weights=weights, batch_size=batch_size,
                               targets=targets)
    x = np.asarray(x, np.uint8)
    if y is None:
        return x.astype(np.float32)[..., None]
    y = np.asarray(y, np.int64)
    if not training:
        return x.astype(np.float32)[..., None], np.eye(NUM_CLASSES, dtype=np.float32)[y]
    class_w = np.asarray(weights if weights is not None else np.ones(NUM_CLASSES), np.float32)
    soft = None if targets is None else np.asarray(targets, np.float32)
    batches = _training_batches(x, y, soft, class_w, Augmenter(cfg.augment), batch_size or cfg.batch_size,
                                int(seed) % (2**31 - 1))
    return _prefetched(batches)


def _training_batches(x, y, soft, class_w, augmenter: Augmenter, batch_size: int,
                      run_seed: int) -> Callable[[], Iterator[tuple]]:
    """The endless stream of augmented training batches: each pass over the rows in its own order."""
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)

    def stream():
        step = 0
        for pass_number in range(2**62):
            order = seeded_rng((run_seed, pass_number, 1)).permutation(len(x))
            for start in range(0, len(x), batch_size):
                rows = order[start:start + batch_size]
                labels = onehot[y[rows]] if soft is None else soft[rows]
                images = x[rows].astype(np.float32)[..., None]
                yield augmenter(images, labels, class_w[y[rows]], training=True, seed=(run_seed, step))
                step += 1

    return stream


def _prefetched(make: Callable[[], Iterator[tuple]], depth: int = PREFETCH) -> Iterator[tuple]:
    """`make()`'s items, produced `depth` ahead in a background thread (NumPy releases the GIL in
    its array loops, so augmentation overlaps the training step). One producer keeps the order, so
    the stream is the same as without the thread; the thread ends when the consumer drops the stream."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce():
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        ready.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except Exception as exc:  # handed to the consumer, which raises it in the training loop
            ready.put((False, exc))

    threading.Thread(target=produce, name="ferkaggle-feeder", daemon=True).start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            yield item
    finally:
        stop.set()
