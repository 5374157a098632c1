"""Fit one CNN configuration on prepared data and record it as a run.

Inputs: a `Prepared` set (uint8 faces, labels, folds, holdout-val, test) and a
`TrainConfig` (a TOML preset from configs/, only the changed fields). Output: a completed
run in the registry (`ferkaggle.runs`): metrics.json (holdout-val accuracy/macro-F1 with
TTA, per-epoch history, train seconds, test accuracy when the test set is labelled,
cv_mean/cv_std for k-fold runs), val/test (and oof) probabilities, model.keras (the best
epoch's weights, or with `swa_epochs` the weights averaged over the schedule's last epochs
when the stop split prefers them: `final_model`).

Selection never looks at the holdout: a model fits on most of the training rows and
early-stops / keeps its best checkpoint on a group-aware stratified 10% of them (the "stop
split": `Prepared.stopping_split`, or for k-fold runs the same carve-out of each fold's
in-fold rows). Keras calls that set its validation data, so the per-epoch history records
its scores as `stop_loss` / `stop_accuracy`; `val_*` in metrics.json always means holdout-val.

Reproducible on the CPU: one seed (default `ferkaggle.DEFAULT_SEED`, recorded in run.json)
seeds Python, NumPy and Keras, the stop split, the shuffle order and, through stateless
random ops keyed by (seed, batch number), every augmentation draw.

The pieces, for the search to reuse: `fit_trial` trains (or resumes) a model in a state
folder toward a target epoch count, checkpointing after every epoch so an interrupt loses
at most the epoch in progress; `predict_proba` gives TTA probabilities (`tta_views`: the
views each mode averages, shared with export.py); `record_run` turns
a finished state folder into a run. The checkpoint folders and their file names belong to
`ferkaggle.runs` (`checkpoint_dir`, `checkpoint_file`). TensorFlow is imported inside the
functions. The configuration (`train_config`), the test-time views (`tta`) and the choice of the
kept model with weight averaging (`averaging`) are modules of their own; their public names are
re-exported here.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_json
from ferkaggle.runs.registry import checkpoint_dir, checkpoint_file, remove_checkpoint, snapshot_file
from ferkaggle.cnn.runtime import resolve_precision
from ferkaggle.cnn.schedules import cycle_ends, learning_rate_at
from ferkaggle.cnn.averaging import final_model, in_swa_window, load_best, load_swa, recompute_bn, swa_update  # noqa: F401
from ferkaggle.cnn.config import OptimConfig, TrainConfig, check_snapshots, load_train_config, override, summarize
from ferkaggle.cnn.tta import TTA_MODES, predict_proba, tta_views  # noqa: F401


# ----------------------------------------------------------------------------- runtime

def configure_threads(intra_op: int = 0, inter_op: int = 0) -> dict[str, Any]:
    """Set TensorFlow's thread pools (0 = TF's default); only possible before TF starts working."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TF already initialised in this process (tests, search): keep what it has
    return runtime_info()


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its CPU ops on oneDNN here (None where this TF cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def runtime_info(cfg: TrainConfig | None = None) -> dict[str, Any]:
    """TensorFlow's versions, threads and devices, and the precision `cfg` resolves to here."""
    import keras
    import tensorflow as tf

    info = {
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpus": os.cpu_count(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "onednn": onednn_enabled(),
    }
    if cfg is not None:
        info["precision"] = resolve_precision(cfg.precision)
    return info


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
    """tf.data over in-memory uint8 faces: (shuffle), batch, batched augmentation map, prefetch.

    Training batches are (float32 [B,48,48,1] in 0..255, one-hot [B,7], sample weight [B]) and
    repeat forever (fit with steps_per_epoch): the shuffle order comes from `seed`, and batch
    number i of the stream is augmented with the stateless seed (seed, i), so epochs differ from
    each other but the same seed gives the same stream. Inference batches are images only (or
    images + one-hot when y is given), in order, never augmented. `targets` (float [n, 7], training
    only) replaces the one-hot labels with soft targets (distillation); y still picks class weights.
    """
    import tensorflow as tf

    from ferkaggle.cnn.augment import Augmenter

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
    augmenter = Augmenter(cfg.augment)

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


def _optimizer(optim: OptimConfig):
    import keras

    if optim.optimizer == "adam":
        return keras.optimizers.Adam(optim.learning_rate)
    if optim.optimizer == "adamw":
        return keras.optimizers.AdamW(optim.learning_rate, weight_decay=optim.weight_decay)
    return keras.optimizers.SGD(optim.learning_rate, momentum=optim.momentum, nesterov=True)


def build_compiled(cfg: TrainConfig):
    import keras

    from ferkaggle.cnn.models import build_model

    keras.mixed_precision.set_global_policy(resolve_precision(cfg.precision))
    try:
        model = build_model(cfg.model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=_optimizer(cfg.optim),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    return model


# ----------------------------------------------------------------------------- fitting

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


def release_memory() -> None:
    """Keep memory flat across trials: drop Keras' graph state and collect."""
    import keras

    keras.backend.clear_session()
    gc.collect()


# ----------------------------------------------------------------------------- recording

def _metrics_from_state(state: dict, prepared: Prepared, val: np.ndarray, test: np.ndarray | None,
                        cfg: TrainConfig) -> dict[str, Any]:
    from ferkaggle.core.metrics import scores

    s = scores(prepared.y_val, val)
    best = [h for h in state["history"] if h["epoch"] == state["best_epoch"]]
    metrics: dict[str, Any] = {
        "val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], **SCORED_ON_HOLDOUT,
        "stop_accuracy": best[0].get("stop_accuracy") if best else None,  # best epoch on the stop split, no TTA
        "best_epoch": state["best_epoch"], "epochs": state["epochs_done"], "stopped": state["stopped"],
        "train_seconds": state["train_seconds"], "history": state["history"], "tta": cfg.tta,
    }
    if test is not None and prepared.y_test is not None and len(prepared.y_test):
        t = scores(prepared.y_test, test)
        metrics["test_accuracy"], metrics["test_macro_f1"] = t["accuracy"], t["macro_f1"]
    return metrics


SCORED_ON_HOLDOUT = {"scored_on": "holdout", "selected_on_score": False,
                     "selected_on": "stop split: 10% of the training rows (early stopping, best checkpoint)"}
"""What every CNN run's val_accuracy means, recorded in metrics.json (the leaderboard shows it)."""


def record_run(prepared: Prepared, cfg: TrainConfig, state_dir: str | Path, *, seed: int = DEFAULT_SEED,
               root: str | Path | None = None, extra: dict[str, Any] | None = None):
    """Turn a trained state folder into a completed run: TTA probabilities, metrics, model.keras."""
    from ferkaggle.runs.registry import RunWriter, read_run

    state_dir = Path(state_dir)
    state = read_state(state_dir)
    if not checkpoint_file(state_dir, "best").is_file():
        raise FerkaggleError(f"{state_dir}: no trained epoch to record")
    with RunWriter("cnn", cfg.name, to_dict(cfg), prepared, seed=seed, summary=summarize(cfg),
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg))
        _save_best(writer, state_dir, state, prepared, cfg, seed)
    release_memory()
    return read_run(writer.dir)


def _save_best(writer, state_dir: Path, state: dict, prepared: Prepared, cfg: TrainConfig,
               seed: int = DEFAULT_SEED) -> None:
    """Predict val/test with the run's final model (`final_model`: best checkpoint or SWA) with TTA and
    store probabilities, metrics and model in the run."""
    fit_idx, stop_idx = (prepared.stopping_split(seed) if cfg.swa_epochs or cfg.snapshots
                         else (np.zeros(0, int), np.zeros(0, int)))
    model, swa = final_model(state_dir, cfg, prepared.x[fit_idx], prepared.x[stop_idx], prepared.y[stop_idx])
    val = predict_proba(model, prepared.x_val, cfg.tta)
    test = predict_proba(model, prepared.x_test, cfg.tta)
    writer.save_probas(val=val, test=test)
    metrics = _metrics_from_state(state, prepared, val, test, cfg)
    if swa is not None:
        metrics["snapshots" if cfg.snapshots else "swa"] = swa
    writer.save_metrics(metrics)
    _store_model(model, swa, state_dir, writer.model_path(".keras"))
    del model


def _store_model(model, swa: dict | None, state_dir: Path, target: Path) -> None:
    """The run's model.keras: the model final_model chose (SWA or snapshot ensemble), else the best checkpoint."""
    if swa is not None and swa["used"]:
        _save_model(model, target)
    else:
        _copy(checkpoint_file(state_dir, "best"), target)


def _copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copyfile(source, target)


def train_config(prepared: Prepared, cfg: TrainConfig, *, seed: int = DEFAULT_SEED, epochs: int | None = None,
                 folds: bool = False, root: str | Path | None = None, tracker=None, extra: dict | None = None,
                 teachers: list | None = None, teacher_weight: float = 0.5):
    """The `ferkaggle train` stage: fit cfg (optionally k-fold) and record one run; returns the Run.

    `teachers` (CNN runs): knowledge distillation; the model fits on targets that mix the one-hot
    label (1 - teacher_weight) with the teachers' mean probabilities (teacher_weight), see
    `teacher_targets`."""
    from ferkaggle.core.console import track
    from ferkaggle.runs.registry import read_run

    if epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    if len(prepared.val_idx) == 0:
        raise FerkaggleError(f"{prepared.path}: no holdout-val rows to score the run on; "
                             "run `ferkaggle prepare` with a --val-size above 0")
    if teachers:
        if folds:
            raise FerkaggleError("distillation (--teacher) trains one model; it does not combine with --folds")
        check_teachers(teachers, prepared, teacher_weight)
        extra = {**(extra or {}), "teachers": [t.run_id for t in teachers], "teacher_weight": teacher_weight}
    if tracker is None:
        with track() as t:
            return train_config(prepared, cfg, seed=seed, folds=folds, root=root, tracker=t, extra=extra,
                                teachers=teachers, teacher_weight=teacher_weight)
    import keras

    keras.utils.set_random_seed(seed)
    if folds:
        return _train_kfold(prepared, cfg, seed=seed, root=root, tracker=tracker, extra=extra)
    from ferkaggle.runs.registry import RunWriter

    summary = summarize(cfg) + (f", distilled from {len(teachers)} run{'s' if len(teachers) > 1 else ''} "
                                 f"(weight {teacher_weight:g})" if teachers else "")
    with RunWriter("cnn", cfg.name, to_dict(cfg), prepared, seed=seed, summary=summary,
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg))
        state_dir = checkpoint_dir(writer.dir)
        fit_idx, stop_idx = prepared.stopping_split(seed)
        targets = teacher_targets(teachers, prepared.x[fit_idx], prepared.y[fit_idx], teacher_weight) if teachers else None
        task = tracker.add(f"{cfg.name}", total=cfg.epochs)
        state = fit_trial(prepared.x[fit_idx], prepared.y[fit_idx], prepared.x[stop_idx], prepared.y[stop_idx], cfg,
                          state_dir, seed=seed, on_epoch=epoch_reporter(tracker, task), targets=targets)
        _save_best(writer, state_dir, state, prepared, cfg, seed)
        remove_checkpoint(state_dir)
    release_memory()
    return read_run(writer.dir)


def epoch_reporter(tracker, task) -> Callable[[dict, dict], None]:
    def report(entry: dict, state: dict) -> None:
        stop = f"stop {entry['stop_accuracy']:.3f} " if "stop_accuracy" in entry else ""  # a refit has no stop split
        note = (f"epoch {entry['epoch']} loss {entry.get('loss', float('nan')):.3f} "
                f"{stop}lr {entry['lr']:.2g} {entry['seconds']:.0f}s")
        tracker.advance(task, 1, note)

    return report


def _train_kfold(prepared: Prepared, cfg: TrainConfig, *, seed: int, root, tracker, extra):
    """k models, one per held-out fold: out-of-fold probabilities on the training rows (train_idx order);
    val/test probabilities are the mean of the k models. Each fold model early-stops on its own stop
    split, a group-aware 10% of that fold's in-fold rows: never the held-out fold (its OOF rows) and
    never the holdout."""
    from ferkaggle.data.splits import stopping_mask
    from ferkaggle.core.metrics import scores
    from ferkaggle.runs.registry import RunWriter, read_run

    k = prepared.num_folds
    if k < 2:
        raise FerkaggleError(f"{prepared.path}: --folds needs at least 2 CV folds, the prepared data has {k}")
    fold_of_train = np.asarray(prepared.fold)[prepared.train_idx]
    x_tr, y_tr = prepared.x_train, np.asarray(prepared.y_train)
    groups_tr = prepared.groups[prepared.train_idx]
    with RunWriter("cnn", f"{cfg.name}-cv{k}", to_dict(cfg), prepared, seed=seed, summary=summarize(cfg) + f", {k}-fold",
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg))
        oof = np.zeros((len(y_tr), NUM_CLASSES), np.float32)
        val = np.zeros((len(prepared.val_idx), NUM_CLASSES), np.float32)
        test = np.zeros((len(prepared.x_test), NUM_CLASSES), np.float32)
        fold_scores, histories, seconds, swa_reports = [], [], 0.0, []
        for f in range(k):
            state_dir = checkpoint_dir(writer.dir, fold=f)
            task = tracker.add(f"{cfg.name} fold {f + 1}/{k}", total=cfg.epochs)
            inside = fold_of_train != f
            in_rows = np.flatnonzero(inside)
            stop = stopping_mask(y_tr[in_rows], groups_tr[in_rows], 0.1, seed + 1000 * f)
            fit_rows, stop_rows = in_rows[~stop], in_rows[stop]
            state = fit_trial(x_tr[fit_rows], y_tr[fit_rows], x_tr[stop_rows], y_tr[stop_rows], cfg, state_dir,
                              seed=seed + 1000 * f, on_epoch=epoch_reporter(tracker, task))
            model, swa = final_model(state_dir, cfg, x_tr[fit_rows], x_tr[stop_rows], y_tr[stop_rows])
            if swa is not None:
                swa_reports.append(swa)
            oof[~inside] = predict_proba(model, x_tr[~inside], cfg.tta)
            val += predict_proba(model, prepared.x_val, cfg.tta) / k
            test += predict_proba(model, prepared.x_test, cfg.tta) / k
            fold_scores.append(scores(y_tr[~inside], oof[~inside])["accuracy"])
            histories.append(state["history"])
            seconds += state["train_seconds"]
            if f == 0:
                _store_model(model, swa, state_dir, writer.model_path(".keras"))
            del model
            remove_checkpoint(state_dir)
            release_memory()
        writer.save_probas(val=val, test=test, oof=oof)
        s = scores(prepared.y_val, val)
        metrics = {"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], **SCORED_ON_HOLDOUT,
                   "selected_on": "per fold: a stop split of 10% of its in-fold rows", "cv_mean": float(np.mean(fold_scores)), "cv_std": float(np.std(fold_scores)),
                   "cv_scores": fold_scores, "folds": k, "epochs": int(sum(len(h) for h in histories)),
                   "train_seconds": round(seconds, 2), "history": histories[0], "fold_histories": histories,
                   "tta": cfg.tta, "model_file": "model.keras is the fold-1 model"}
        if swa_reports:
            metrics["snapshot_folds" if cfg.snapshots else "swa_folds"] = swa_reports
        if prepared.y_test is not None and len(prepared.y_test):
            t = scores(prepared.y_test, test)
            metrics["test_accuracy"], metrics["test_macro_f1"] = t["accuracy"], t["macro_f1"]
        writer.save_metrics(metrics)
    return read_run(writer.dir)


# ----------------------------------------------------------------------------- refit

REFIT_ROWS = {
    "all": "all labelled rows (training + holdout): for the submission; its holdout figure is the source run's",
    "train": "all training rows (fit + stop split), the holdout still out: scored on the holdout as any run",
}


def refit_config(source) -> TrainConfig:
    """The source CNN run's recipe (its recorded config), for as many epochs as it trained, no early stopping."""
    from ferkaggle.core.presets import from_dict

    if source.kind != "cnn":
        raise FerkaggleError(f"run {source.run_id} is a {source.kind or 'unknown'} run; refit takes a CNN run "
                             "(from `ferkaggle train` or `ferkaggle search`). For an ensemble, refit its CNN members, "
                             "then run `ferkaggle ensemble`: it takes each refit in place of its source")
    if "folds" in source.metrics:
        raise FerkaggleError(f"run {source.run_id} is a k-fold run (its val/test probabilities average "
                             f"{source.metrics['folds']} fold models); refit takes a single-model CNN run")
    if source.info.get("refit_of"):
        raise FerkaggleError(f"run {source.run_id} is already a refit (of {source.info['refit_of']}); "
                             "refit the source run instead")
    cfg = from_dict(TrainConfig, source.info.get("config", {}), f"run {source.run_id}: run.json config")
    epochs = int(source.metrics.get("epochs") or 0)
    if epochs < 1:
        raise FerkaggleError(f"run {source.run_id}: metrics.json records no trained epochs to repeat")
    return dataclasses.replace(cfg, epochs=epochs, patience=0)


def _refit_model(state_dir: Path, cfg: TrainConfig, source, x_fit: np.ndarray):
    """The refit's model: what the source kept, made the same way, with no stop split to choose on:
    the last epoch, or the SWA weights / snapshot ensemble where the source's stop split chose them."""
    if cfg.snapshots and source.metrics.get("snapshots", {}).get("used"):
        from ferkaggle.cnn.averaging import snapshot_ensemble

        model, _ = snapshot_ensemble(state_dir, cfg.snapshots)
        if model is not None:
            return model, "snapshot ensemble"
    if cfg.swa_epochs and source.metrics.get("swa", {}).get("used"):
        model, _ = load_swa(state_dir, cfg, x_fit)
        if model is not None:
            return model, "SWA weights"
    return load_best(state_dir), "last epoch"


def refit_run(source, prepared: Prepared, *, rows: str = "all", root: str | Path | None = None, tracker=None):
    """Train a CNN run's recipe again on more rows and record it as a new run (`ferkaggle refit`).

    The same config and seed, the same number of epochs with the schedule planned for them, no
    early stopping and no stop split: the model is the last epoch (or the SWA weights / snapshot
    ensemble where the source chose them). rows="all" trains on every labelled row, holdout
    included, so the holdout can no longer score it: its val probabilities and figures are the
    source run's (the identical recipe before the refit), marked as such, and its test
    probabilities are the refit model's. rows="train" leaves the holdout out and is scored on it.
    """
    from ferkaggle.core.console import track
    from ferkaggle.core.metrics import scores
    from ferkaggle.runs.registry import RunWriter, read_run

    if rows not in REFIT_ROWS:
        raise FerkaggleError(f"--rows must be one of {', '.join(REFIT_ROWS)}, not {rows!r}")
    cfg = refit_config(source)
    if prepared.split_fingerprint != source.split_fingerprint:
        raise FerkaggleError(f"run {source.run_id} was trained on split {source.split_fingerprint[:8]}, "
                             f"the prepared data {prepared.path} has split {prepared.split_fingerprint[:8]}")
    if rows == "all" and not source.has_proba("val"):
        raise FerkaggleError(f"run {source.run_id} has no holdout probabilities to carry over (val_proba.npy)")
    if tracker is None:
        with track() as t:
            return refit_run(source, prepared, rows=rows, root=root, tracker=t)
    seed = int(source.info.get("seed", DEFAULT_SEED))
    idx = np.sort(np.concatenate([prepared.train_idx, prepared.val_idx]) if rows == "all"
                  else np.asarray(prepared.train_idx))
    cfg = dataclasses.replace(cfg, name=f"{cfg.name}-refit" + ("" if rows == "all" else "-train"))
    import keras

    keras.utils.set_random_seed(seed)
    extra = {"refit_of": source.run_id, "refit_rows": rows}
    with RunWriter("cnn", cfg.name, to_dict(cfg), prepared, seed=seed, summary=summarize(cfg) + f", refit on {rows} rows",
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg))
        state_dir = checkpoint_dir(writer.dir)
        task = tracker.add(f"{cfg.name}", total=cfg.epochs)
        none = np.zeros(0, dtype=np.int64)
        state = fit_trial(prepared.x[idx], prepared.y[idx], prepared.x[none], prepared.y[none], cfg, state_dir,
                          seed=seed, on_epoch=epoch_reporter(tracker, task))
        model, kept = _refit_model(state_dir, cfg, source, prepared.x[idx])
        test = predict_proba(model, prepared.x_test, cfg.tta)
        refit = {"of": source.run_id, "rows": rows, "n_rows": int(len(idx)), "epochs": state["epochs_done"],
                 "model": kept, "rows_meaning": REFIT_ROWS[rows]}
        common = {"epochs": state["epochs_done"], "best_epoch": state["epochs_done"], "stopped": state["stopped"],
                  "train_seconds": state["train_seconds"], "history": state["history"], "tta": cfg.tta,
                  "stop_accuracy": None, "refit": refit, "selected_on_score": False,
                  "selected_on": "nothing: the last epoch of a fixed schedule (no stop split)"}
        if rows == "all":
            val = source.proba("val")
            metrics = {"val_accuracy": source.metrics.get("val_accuracy"),
                       "val_macro_f1": source.metrics.get("val_macro_f1"),
                       "scored_on": "holdout, by the recipe before the refit", **common}
        else:
            val = predict_proba(model, prepared.x_val, cfg.tta)
            s = scores(prepared.y_val, val)
            metrics = {"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], "scored_on": "holdout", **common}
        if prepared.y_test is not None and len(prepared.y_test):
            t = scores(prepared.y_test, test)
            metrics["test_accuracy"], metrics["test_macro_f1"] = t["accuracy"], t["macro_f1"]
        writer.save_probas(val=val, test=test)
        writer.save_metrics(metrics)
        _save_model(model, writer.model_path(".keras"))
        del model
        remove_checkpoint(state_dir)
    release_memory()
    return read_run(writer.dir)


# ----------------------------------------------------------------------------- distillation

def check_teachers(teachers: list, prepared: Prepared, weight: float) -> None:
    """Teachers must be CNN runs on this split that never trained on or chose anything by the holdout, so
    that the student's holdout figure stays a score nothing was fitted or chosen on."""
    from ferkaggle.runs.registry import refit_on_holdout

    if not 0.0 < weight <= 1.0:
        raise FerkaggleError(f"--teacher-weight must be in (0, 1], not {weight}")
    for t in teachers:
        if t.kind != "cnn":
            raise FerkaggleError(
                f"teacher {t.run_id} is a {t.kind or 'unknown'} run; teachers are CNN runs (name each member: "
                "an ensemble's weights were fitted on the holdout, which would then shape the student's targets)")
        if refit_on_holdout(t):
            raise FerkaggleError(f"teacher {t.run_id} was refit on the holdout rows; use its source "
                                 f"{t.info.get('refit_of')} as the teacher")
        if t.selected_on_score:
            raise FerkaggleError(f"teacher {t.run_id} chose its checkpoint on the holdout (an older run); "
                                 "retrain it, or choose another teacher")
        if t.split_fingerprint != prepared.split_fingerprint:
            raise FerkaggleError(f"teacher {t.run_id} was trained on split {t.split_fingerprint[:8]}, the prepared "
                                 f"data {prepared.path} has split {prepared.split_fingerprint[:8]}")


def teacher_targets(teachers: list, x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """Soft targets [n, 7]: (1 - weight) * one-hot(y) + weight * the teachers' mean probabilities on x
    (each teacher with its own test-time views)."""
    from ferkaggle.photos.predict import Predictor

    mean = np.zeros((len(x), NUM_CLASSES), np.float64)
    for t in teachers:
        mean += Predictor.from_run(t).predict(x) / len(teachers)
        release_memory()
    one_hot = np.eye(NUM_CLASSES)[np.asarray(y, np.int64)]
    return ((1.0 - weight) * one_hot + weight * mean).astype(np.float32)
