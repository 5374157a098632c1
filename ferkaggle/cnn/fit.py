"""Fit one CNN configuration in a state folder: compile, the callbacks (schedule, checkpoints,
early stopping, weight averaging, snapshots), and the resumable fit loop.

`fit_trial` trains (or resumes) toward a target epoch count and checkpoints after every epoch,
so an interrupt loses at most the epoch in progress. Early stopping and the kept checkpoint look
at the stop split only (Keras' validation data, recorded as `stop_*`), never at the holdout."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ferkaggle.cnn.averaging import in_swa_window, swa_update
from ferkaggle.cnn.config import OptimConfig, TrainConfig, check_snapshots
from ferkaggle.cnn.dataset import class_weight_vector, make_dataset
from ferkaggle.cnn.models import build_model
from ferkaggle.cnn.runtime import release_memory, resolve_precision
from ferkaggle.cnn.schedules import cycle_ends, learning_rate_at
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.fsutil import atomic_write_json
from ferkaggle.runs.checkpoints import checkpoint_file, snapshot_file


def _optimizer(optim: OptimConfig):
    import keras

    if optim.optimizer == "adam":
        return keras.optimizers.Adam(optim.learning_rate)
    if optim.optimizer == "adamw":
        return keras.optimizers.AdamW(optim.learning_rate, weight_decay=optim.weight_decay)
    return keras.optimizers.SGD(optim.learning_rate, momentum=optim.momentum, nesterov=True)


def build_compiled(cfg: TrainConfig):
    import keras


    keras.mixed_precision.set_global_policy(resolve_precision(cfg.precision))
    try:
        model = build_model(cfg.model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=_optimizer(cfg.optim),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    return model


def read_state(state_dir: Path) -> dict[str, Any]:
    path = checkpoint_file(state_dir, "state")
    if path.is_file():
        return json.loads(path.read_text())
    return {"epochs_done": 0, "history": [], "best_score": None, "best_epoch": None,
            "since_best": 0, "stopped": None, "train_seconds": 0.0}


def monitored(monitor: str) -> str:
    """The history key early stopping watches: stop_accuracy or stop_loss (old names val_* map here)."""
    return "stop_" + monitor.split("_", 1)[1]


def _better(monitor: str, new: float, best: float | None) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return new > best if monitored(monitor) == "stop_accuracy" else new < best


def _planned(horizon, state: dict) -> float:
    """The epoch count the schedule is planned for now (a callable horizon is re-planned from the state)."""
    return float(horizon(state)) if callable(horizon) else horizon


def _make_callbacks(cfg: TrainConfig, state_dir: Path, state: dict, horizon, steps: int,
                    deadline: float | None, on_epoch: Callable[[dict, dict], None] | None,
                    should_stop: Callable[[dict], bool] | None, has_stop: bool = True):
    import keras

    class LearningRate(keras.callbacks.Callback):
        """Sets the scheduled rate before every batch (schedules are functions of fractional epochs)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            # A callable horizon is re-planned every epoch (the search's last trial: "end with the budget").
            self.total = _planned(horizon, state)

        def on_train_batch_begin(self, batch, logs=None):
            lr = learning_rate_at(self.epoch + batch / steps, cfg.optim, self.total)
            self.model.optimizer.learning_rate.assign(lr)

    class Checkpoint(keras.callbacks.Callback):
        """After every epoch: history, best model, last model (with optimizer), state.json; stop rules."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            seconds = time.monotonic() - self.t0
            # Keras' "val_*" are scores on its validation data, which here is the stop split.
            names = {"loss": "loss", "accuracy": "accuracy", "val_loss": "stop_loss", "val_accuracy": "stop_accuracy"}
            entry = {"epoch": epoch + 1, **{names[k]: float(logs[k]) for k in names if k in logs},
                     "lr": float(np.asarray(self.model.optimizer.learning_rate)),
                     "seconds": round(seconds, 2)}
            state["history"].append(entry)
            state["epochs_done"] = epoch + 1
            state["train_seconds"] = round(state["train_seconds"] + seconds, 2)
            score = entry.get(monitored(cfg.monitor), float("nan"))
            if not has_stop or _better(cfg.monitor, score, state["best_score"]):  # no stop rows: the last epoch
                state["best_score"], state["best_epoch"], state["since_best"] = score, epoch + 1, 0
                _save_model(self.model, checkpoint_file(state_dir, "best"))
            else:
                state["since_best"] += 1
            if in_swa_window(cfg, epoch + 1):
                swa_update(state_dir, self.model, epoch + 1)
            if cfg.snapshots:
                if epoch + 1 in cycle_ends(_planned(horizon, state), cfg.optim.cycles):
                    _save_model(self.model, snapshot_file(state_dir, epoch + 1))
            _save_model(self.model, checkpoint_file(state_dir, "last"))
            if cfg.patience and has_stop and state["since_best"] >= cfg.patience:
                state["stopped"] = "early"
                self.model.stop_training = True
            elif deadline is not None and time.time() + seconds > deadline:
                state["stopped"] = "budget"  # the next epoch would overrun the budget: stop cleanly now
                self.model.stop_training = True
            atomic_write_json(checkpoint_file(state_dir, "state"), state)
            if on_epoch:
                on_epoch(entry, state)
            if should_stop is not None and should_stop(state):
                self.model.stop_training = True

    callbacks = [Checkpoint()]
    if cfg.optim.schedule == "plateau":
        keras_name = "val_" + monitored(cfg.monitor).split("_", 1)[1]  # Keras' name for the stop-split score
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=keras_name, factor=cfg.optim.plateau_factor,
                                                           patience=cfg.optim.plateau_patience, min_lr=1e-6))
    else:
        callbacks.insert(0, LearningRate())
    return callbacks


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)  # atomic: an interrupt never leaves a half-written checkpoint


def fit_trial(x_train, y_train, x_stop, y_stop, cfg: TrainConfig, state_dir: str | Path, *, seed: int = DEFAULT_SEED,
              target_epochs: int | None = None, horizon: float | Callable[[dict], float] | None = None,
              deadline: float | None = None,
              on_epoch: Callable[[dict, dict], None] | None = None,
              should_stop: Callable[[dict], bool] | None = None,
              callbacks: list | None = None, targets: np.ndarray | None = None) -> dict[str, Any]:
    """Train toward `target_epochs` (default cfg.epochs), resuming from state_dir's last checkpoint.

    Fits on (x_train, y_train); early stopping and the best checkpoint watch (x_stop, y_stop),
    which must be training rows set aside (never the holdout the run is scored on). With no stop
    rows (a refit) there is no early stopping and the "best" checkpoint is the last epoch.

    `horizon` is the epoch count the LR schedule is planned for (default cfg.epochs), or a
    function of the state re-evaluated at every epoch start;
    `deadline` (time.time()) stops cleanly when the next epoch would pass it. Returns the
    state: epochs_done, history, best_score/best_epoch, stopped ('early', 'budget' or None).
    `callbacks` (Keras callbacks, e.g. the search's pruning callback) run after the epoch's
    checkpoint is written, so an exception they raise never loses the finished epoch.
    `targets` (float [len(x_train), 7]): soft training targets in place of the one-hot labels.
    """
    import keras

    check_snapshots(cfg, cfg.name)
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(state_dir)
    target = min(target_epochs or cfg.epochs, cfg.epochs)
    if state["stopped"] == "early" or state["epochs_done"] >= target:
        return state
    state["stopped"] = None
    keras.utils.set_random_seed(seed + state["epochs_done"])
    if state["epochs_done"] > 0 and checkpoint_file(state_dir, "last").is_file():
        # Build as at the start, then load weights and optimizer state: `load_model` would rebuild the
        # optimizer without the LossScaleOptimizer that mixed_float16 needs, and drop its state.
        model = build_compiled(cfg)
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint_file(state_dir, "last"))
    else:
        state = read_state(state_dir / "__none__")
        model = build_compiled(cfg)
    weights = class_weight_vector(y_train, cfg.class_weights)
    train_ds = make_dataset(x_train, y_train, cfg, training=True, seed=seed + state["epochs_done"], weights=weights,
                            targets=targets)
    has_stop = len(x_stop) > 0
    stop_ds = make_dataset(x_stop, y_stop, cfg, training=False, batch_size=256) if has_stop else None
    steps = math.ceil(len(x_train) / cfg.batch_size)
    extra_callbacks = list(callbacks or [])
    callbacks = _make_callbacks(cfg, state_dir, state, horizon if callable(horizon) else float(horizon or cfg.epochs),
                                steps, deadline, on_epoch, should_stop, has_stop) + extra_callbacks
    with warnings.catch_warnings():
        # Keras warns that its shuffle flag is ignored for datasets; ours shuffles itself.
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        model.fit(train_ds, validation_data=stop_ds, epochs=target, initial_epoch=state["epochs_done"],
                  steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    atomic_write_json(checkpoint_file(state_dir, "state"), state)
    del model
    release_memory()
    return state
