"""How long one training epoch of a configuration takes on this machine, measured in a few seconds.

Boxes of one kind differ: the same lean VGG trained at about 20 s an epoch on one 2-core box and at
38-48 s on others (docs/benchmarks.md). `epoch_seconds` builds the configuration's model under its
precision, traces its training and evaluation steps, then times `steps` training steps on the
real, augmented training stream and one pass over the stop split, and scales the steps to a whole
epoch. The search plans its trials with it (search/plan.py). Keras is imported inside.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ferkaggle.cnn.config import TrainConfig
from ferkaggle.cnn.dataset import make_dataset
from ferkaggle.cnn.fit import STOP_BATCH, build_compiled
from ferkaggle.cnn.runtime import release_memory
from ferkaggle.core.constants import DEFAULT_SEED


def step_clock():
    """A Keras callback that records the time (perf_counter) at the end of each training batch of a fit,
    in `.ends`; `step_seconds()` is the mean step from the end of the first batch to the end of the last
    (at least two batches), which leaves out what the call costs before its first batch and after its last."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def step_seconds(self) -> float:
            return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)

    return StepClock()


def _evaluate(model, data) -> None:
    if isinstance(data, tuple):  # JAX / PyTorch: whole arrays
        model.evaluate(data[0], data[1], batch_size=STOP_BATCH, verbose=0)
    else:  # TensorFlow: a tf.data.Dataset of batches
        model.evaluate(data, verbose=0)


def epoch_seconds(cfg: TrainConfig, x_fit: np.ndarray, y_fit: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray,
                  *, steps: int = 40, seed: int = DEFAULT_SEED) -> float:
    """Seconds one epoch of `cfg` on (x_fit, y_fit) with the stop split (x_stop, y_stop) takes here now:
    the mean time of `steps` training steps (after a few that trace and warm the pipeline; timed from batch
    end to batch end) times the epoch's steps, plus one timed pass over the stop split. The per-epoch
    checkpoint writes are not counted (well under a second). Uses the same data pipeline and precision as `fit_trial`; the fit
    that follows reseeds everything, so measuring first changes no run."""
    model = build_compiled(cfg)
    try:
        train = make_dataset(x_fit, y_fit, cfg, training=True, seed=seed)
        per_epoch = math.ceil(len(x_fit) / cfg.batch_size)
        steps = max(2, min(steps, per_epoch))  # the stream is endless: two steps even in a one-step epoch
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # ours shuffles itself (as in fit_trial)
            model.fit(train, epochs=1, steps_per_epoch=max(2, steps // 4), verbose=0)  # trace, fill the pipeline
            clock = step_clock()
            model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
        # The steps' own rate, from the end of the first batch to the end of the last: a trial trains in one
        # fit call, so what a call costs before its first batch and after its last (on one box, 2 s after
        # the last batch whenever the model measured before was a VGG: the third trial measured at 47 s an
        # epoch, then trained at 27) is paid once per trial, not once per epoch.
        step_s = clock.step_seconds()
        stop_s = 0.0
        if len(x_stop):
            stop = make_dataset(x_stop, y_stop, cfg, training=False, batch_size=STOP_BATCH)
            _evaluate(model, stop if isinstance(stop, tuple) else stop.take(1))  # trace
            t0 = time.perf_counter()
            _evaluate(model, stop)
            stop_s = time.perf_counter() - t0
    finally:
        del model
        release_memory()
    return step_s * per_epoch + stop_s
