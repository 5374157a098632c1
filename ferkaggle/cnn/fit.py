"""Fit one CNN configuration in a checkpoint folder, resumably.

Input: training rows (uint8 faces [n, 48, 48] and labels, or soft targets), the stop split (training
rows set aside: early stopping and the kept checkpoint look at them only, never at the holdout),
a `TrainConfig` and a checkpoint folder (`ferkaggle.runs.checkpoints` names its files). Output: the
folder's state (state.json: epochs done, per-epoch history, best score and epoch, why it stopped)
and models: best.keras, last.keras (with the optimizer, to resume), and with weight averaging or
snapshots on, swa.npz or snapshot-<epoch>.keras.

`fit_trial` trains (or resumes) toward a target epoch count and checkpoints after every epoch, so
an interrupt loses at most the epoch in progress; `train.py`, `refit.py` and the search all fit
through it. Two Keras callbacks drive each epoch: `ScheduledLearningRate` (the rate of
`schedules.learning_rate_at`, set before every batch; Keras' ReduceLROnPlateau in its place for
schedule = "plateau") and `EpochCheckpoint` (history, checkpoints, stop rules). A `pretrained`
model with a frozen phase fits in two `model.fit` calls, frozen then fine-tuning (`models.set_trainable`,
recompiled with a fresh optimizer at `fine_tune_lr` x the rate), the second as a resume at the switch would. Keras calls the stop split its validation data, so the history records its scores as
`stop_*`. Keras is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
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
from ferkaggle.cnn.models import build_model, frozen_epochs, set_trainable
from ferkaggle.cnn.runtime import release_memory, resolve_precision
from ferkaggle.cnn.schedules import cycle_ends, learning_rate_at
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.fsutil import atomic_write_json
from ferkaggle.runs.checkpoints import checkpoint_file, snapshot_file

STOP_BATCH = 256  # the stop split's evaluation batch size (fit_trial, and cnn/pace.py, which times it)

Horizon = float | Callable[[dict], float]
"""The epoch count an LR schedule is planned for, or a function of the fit state giving it (re-planned
at every epoch start)."""


def _optimizer(optim: OptimConfig):
    import keras

    if optim.optimizer == "adam":
        return keras.optimizers.Adam(optim.learning_rate)
    if optim.optimizer == "adamw":
        return keras.optimizers.AdamW(optim.learning_rate, weight_decay=optim.weight_decay)
    return keras.optimizers.SGD(optim.learning_rate, momentum=optim.momentum, nesterov=True)


def phase_config(cfg: TrainConfig, fine_tuning: bool) -> TrainConfig:
    """The config a fit phase trains with: cfg, or for the fine-tuning phase after a frozen one, cfg with
    its learning rate times model.fine_tune_lr."""
    if not fine_tuning:
        return cfg
    return dataclasses.replace(cfg, optim=dataclasses.replace(
        cfg.optim, learning_rate=cfg.optim.learning_rate * cfg.model.fine_tune_lr))


def compile_phase(model, cfg: TrainConfig, fine_tuning: bool = False) -> None:
    """Set the model's trainable layers for the phase (`models.set_trainable`) and compile it with a new
    optimizer at the phase's rate, label-smoothed cross-entropy and accuracy."""
    import keras

    set_trainable(model, cfg.model, fine_tuning=fine_tuning)
    model.compile(optimizer=_optimizer(phase_config(cfg, fine_tuning).optim),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])


def build_compiled(cfg: TrainConfig, fine_tuning: bool = False):
    """cfg's model built under its precision policy (the global policy is float32 again afterwards) and
    compiled for its phase (`compile_phase`; fine_tuning: the phase after a pretrained model's frozen one)."""
    import keras

    keras.mixed_precision.set_global_policy(resolve_precision(cfg.precision))
    try:
        model = build_model(cfg.model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    compile_phase(model, cfg, fine_tuning)
    return model


def new_state() -> dict[str, Any]:
    """The state of a fit that has not started."""
    return {"epochs_done": 0, "history": [], "best_score": None, "best_epoch": None,
            "since_best": 0, "stopped": None, "train_seconds": 0.0}


def read_state(state_dir: Path) -> dict[str, Any]:
    """A checkpoint folder's state.json, or `new_state()` where there is none."""
    path = checkpoint_file(state_dir, "state")
    if path.is_file():
        return json.loads(path.read_text())
    return new_state()


def save_model_atomic(model, path: Path) -> None:
    """Save a Keras model to path through a temporary file and a rename: an interrupt never leaves a
    half-written checkpoint or model.keras."""
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def monitored(monitor: str) -> str:
    """The history key early stopping watches: stop_accuracy or stop_loss (old names val_* map here)."""
    return "stop_" + monitor.split("_", 1)[1]


def _better(monitor: str, new: float, best: float | None) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return new > best if monitored(monitor) == "stop_accuracy" else new < best


def _planned(horizon: Horizon, state: dict) -> float:
    """The epoch count the schedule is planned for now (a callable horizon is re-planned from the state)."""
    return float(horizon(state)) if callable(horizon) else horizon


class ScheduledLearningRate:
    """Keras callback methods that set the optimizer's rate before every batch to `learning_rate_at`
    of the fractional epoch (epoch + batch / steps): warm-up and one-cycle ramps are smooth within
    an epoch, and a resumed fit lands on the same curve. `horizon` is re-planned at every epoch
    start when it is a function of `state` (the search's last trial: "end with the budget")."""

    def __init__(self, model, optim: OptimConfig, steps: int, horizon: Horizon, state: dict):
        self.model, self.optim, self.steps, self.horizon, self.state = model, optim, steps, horizon, state
        self.epoch, self.total = 0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.total = _planned(self.horizon, self.state)

    def on_train_batch_begin(self, batch, logs=None):
        lr = learning_rate_at(self.epoch + batch / self.steps, self.optim, self.total)
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            # JAX trains on a copy of the variables that it hands back only at the epoch's end; syncing
            # it here makes the next step read the variables, so the new rate reaches it.
            sync()
        self.model.optimizer.learning_rate.assign(lr)


# Keras' names for the per-epoch scores; its "val_*" are scores on its validation data: the stop split.
_HISTORY_NAMES = {"loss": "loss", "accuracy": "accuracy", "val_loss": "stop_loss", "val_accuracy": "stop_accuracy"}


class EpochCheckpoint:
    """Keras callback methods run after every epoch, in this order: the history entry and totals in
    `state`; best.keras when the stop-split score improved (every epoch when there are no stop rows:
    the kept model is then the last epoch); the SWA running mean, the snapshot at a cycle end and
    last.keras; the stop rules (patience on the stop split, the deadline); state.json; then
    `on_epoch(entry, state)` and `should_stop(state)`, so whatever they do the epoch is saved.

    `state` is the fit's state dict, updated in place; `deadline` (time.time()) stops cleanly when the
    next epoch, as long as this one, would pass it."""

    def __init__(self, model, cfg: TrainConfig, state_dir: Path, state: dict, horizon: Horizon, *,
                 has_stop: bool, deadline: float | None, on_epoch: Callable[[dict, dict], None] | None,
                 should_stop: Callable[[dict], bool] | None):
        self.model, self.cfg, self.state_dir, self.state, self.horizon = model, cfg, state_dir, state, horizon
        self.has_stop, self.deadline, self.on_epoch, self.should_stop = has_stop, deadline, on_epoch, should_stop
        self.t0 = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        import keras

        logs = logs or {}
        seconds = time.monotonic() - self.t0
        entry = {"epoch": epoch + 1, **{_HISTORY_NAMES[k]: float(logs[k]) for k in _HISTORY_NAMES if k in logs},
                 "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                 "seconds": round(seconds, 2)}
        state = self.state
        state["history"].append(entry)
        state["epochs_done"] = epoch + 1
        state["train_seconds"] = round(state["train_seconds"] + seconds, 2)
        self._keep_if_best(epoch + 1, entry)
        self._save_checkpoints(epoch + 1)
        self._apply_stop_rules(seconds)
        atomic_write_json(checkpoint_file(self.state_dir, "state"), state)
        if self.on_epoch:
            self.on_epoch(entry, state)
        if self.should_stop is not None and self.should_stop(state):
            self.model.stop_training = True

    def _keep_if_best(self, epoch: int, entry: dict) -> None:
        state = self.state
        score = entry.get(monitored(self.cfg.monitor), float("nan"))
        if not self.has_stop or _better(self.cfg.monitor, score, state["best_score"]):  # no stop rows: the last epoch
            state["best_score"], state["best_epoch"], state["since_best"] = score, epoch, 0
            save_model_atomic(self.model, checkpoint_file(self.state_dir, "best"))
        else:
            state["since_best"] += 1

    def _save_checkpoints(self, epoch: int) -> None:
        if in_swa_window(self.cfg, epoch):
            swa_update(self.state_dir, self.model, epoch)
        if self.cfg.snapshots:
            if epoch in cycle_ends(_planned(self.horizon, self.state), self.cfg.optim.cycles):
                save_model_atomic(self.model, snapshot_file(self.state_dir, epoch))
        save_model_atomic(self.model, checkpoint_file(self.state_dir, "last"))

    def _apply_stop_rules(self, seconds: float) -> None:
        if self.cfg.patience and self.has_stop and self.state["since_best"] >= self.cfg.patience:
            self.state["stopped"] = "early"
            self.model.stop_training = True
        elif self.deadline is not None and time.time() + seconds > self.deadline:
            self.state["stopped"] = "budget"  # the next epoch would overrun the budget: stop cleanly now
            self.model.stop_training = True


def epoch_callbacks(model, cfg: TrainConfig, state_dir: Path, state: dict, horizon: Horizon, steps: int, *,
                    has_stop: bool, deadline: float | None, on_epoch: Callable[[dict, dict], None] | None,
                    should_stop: Callable[[dict], bool] | None) -> list:
    """The Keras callbacks of one fit, in the order Keras runs them: the scheduled rate, the epoch
    checkpoint; with schedule = "plateau" Keras' ReduceLROnPlateau on the stop-split score instead
    of the scheduled rate (after the checkpoint, which records the rate the epoch trained with)."""
    import keras

    checkpoint = EpochCheckpoint(model, cfg, state_dir, state, horizon, has_stop=has_stop, deadline=deadline,
                                 on_epoch=on_epoch, should_stop=should_stop)
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_begin=checkpoint.on_epoch_begin,
                                                on_epoch_end=checkpoint.on_epoch_end)]
    if cfg.optim.schedule == "plateau":
        keras_name = "val_" + monitored(cfg.monitor).split("_", 1)[1]  # Keras' name for the stop-split score
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=keras_name, factor=cfg.optim.plateau_factor,
                                                           patience=cfg.optim.plateau_patience, min_lr=1e-6))
    else:
        rate = ScheduledLearningRate(model, cfg.optim, steps, horizon, state)
        callbacks.insert(0, keras.callbacks.LambdaCallback(on_epoch_begin=rate.on_epoch_begin,
                                                           on_train_batch_begin=rate.on_train_batch_begin))
    return callbacks


def _start_or_resume(cfg: TrainConfig, state_dir: Path, state: dict, seed: int, frozen: int = 0):
    """(compiled model, state): from last.keras where epochs are done (weights and optimizer state), else new.
    `frozen`: the epochs of a frozen phase; the model is built in the phase that wrote last.keras.

    Seeds Keras with seed + epochs done first, so a resumed fit draws as an uninterrupted one would."""
    import keras

    keras.utils.set_random_seed(seed + state["epochs_done"])
    if state["epochs_done"] > 0 and checkpoint_file(state_dir, "last").is_file():
        # Build as at the start, then load weights and optimizer state: `load_model` would rebuild the
        # optimizer without the LossScaleOptimizer that mixed_float16 needs, and drop its state.
        model = build_compiled(cfg, fine_tuning=0 < frozen < state["epochs_done"])
        model.optimizer.build(model.trainable_variables)
        model.load_weights(checkpoint_file(state_dir, "last"))
        return model, state
    return build_compiled(cfg), new_state()


def _start_fine_tuning(model, cfg: TrainConfig, seed: int) -> None:
    """Switch a model from its frozen phase to fine-tuning, seeded as a resume at the switch is."""
    import keras

    keras.utils.set_random_seed(seed)
    compile_phase(model, cfg, fine_tuning=True)


def fit_trial(x_train, y_train, x_stop, y_stop, cfg: TrainConfig, state_dir: str | Path, *, seed: int = DEFAULT_SEED,
              target_epochs: int | None = None, horizon: Horizon | None = None,
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
    check_snapshots(cfg, cfg.name)
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(state_dir)
    target = min(target_epochs or cfg.epochs, cfg.epochs)
    if state["stopped"] == "early" or state["epochs_done"] >= target:
        return state
    state["stopped"] = None
    frozen = frozen_epochs(cfg.model, cfg.epochs)
    model, state = _start_or_resume(cfg, state_dir, state, seed, frozen)
    weights = class_weight_vector(y_train, cfg.class_weights)
    has_stop = len(x_stop) > 0
    stop_ds = make_dataset(x_stop, y_stop, cfg, training=False, batch_size=STOP_BATCH) if has_stop else None
    steps = math.ceil(len(x_train) / cfg.batch_size)
    planned = horizon if callable(horizon) else float(horizon or cfg.epochs)
    # One phase (one model.fit) but for a pretrained model's frozen phase: frozen to `frozen`, then fine-tuning.
    for fine_tuning, end in ([(False, min(frozen, target)), (True, target)] if frozen else [(False, target)]):
        if state["epochs_done"] >= end:
            continue
        if fine_tuning and state["epochs_done"] == frozen:
            _start_fine_tuning(model, cfg, seed + state["epochs_done"])
        phase = phase_config(cfg, fine_tuning)
        train_ds = make_dataset(x_train, y_train, cfg, training=True, seed=seed + state["epochs_done"],
                                weights=weights, targets=targets)
        all_callbacks = epoch_callbacks(model, phase, state_dir, state, planned, steps, has_stop=has_stop,
                                        deadline=deadline, on_epoch=on_epoch, should_stop=should_stop)
        with warnings.catch_warnings():
            # Keras warns that its shuffle flag is ignored for datasets; ours shuffles itself.
            warnings.filterwarnings("ignore", message=".*shuffle=True.*")
            model.fit(train_ds, validation_data=stop_ds, validation_batch_size=STOP_BATCH, epochs=end, initial_epoch=state["epochs_done"],
                      steps_per_epoch=steps, callbacks=all_callbacks + list(callbacks or []), verbose=0)
        if model.stop_training or state["epochs_done"] < end:
            break
    atomic_write_json(checkpoint_file(state_dir, "state"), state)
    del model
    release_memory()
    return state
