"""The model a CNN run keeps: its best checkpoint, or weights averaged over the schedule's last
epochs (SWA), or the snapshot ensemble (the mean of the models that end each cosine cycle), when
the stop split prefers them.

`swa_update` folds each epoch of the averaging window into a running mean (swa.npz in the
checkpoint folder: an interrupted epoch counts once); `recompute_bn` re-estimates BatchNorm
statistics for the averaged weights; `final_model` chooses between the averaged weights and the
best checkpoint on the stop split, never on the holdout; `snapshot_ensemble` builds one Keras
model that outputs the mean of the snapshots' probabilities (so predict, serve and export take it
as any model). Checkpoint paths come from `ferkaggle.runs`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkaggle.cnn.tta import predict_proba
from ferkaggle.runs.checkpoints import checkpoint_file, snapshot_files

if TYPE_CHECKING:
    from ferkaggle.cnn.config import TrainConfig


def load_best(state_dir: str | Path):
    import keras

    # For inference only (the run's file is a copy of the checkpoint): compiling would rebuild an
    # optimizer and, under mixed_float16, warn that the saved LossScaleOptimizer's variables are skipped.
    return keras.models.load_model(checkpoint_file(state_dir, "best"), compile=False)


def in_swa_window(cfg: TrainConfig, epoch: int) -> bool:
    """Whether epoch (1-based) is one of the last `swa_epochs` of the planned `epochs` (the cosine tail)."""
    return cfg.swa_epochs > 0 and epoch > cfg.epochs - cfg.swa_epochs


def swa_update(state_dir: str | Path, model, epoch: int) -> None:
    """Fold the model's current weights into the running mean in swa.npz (atomic; an epoch counts once)."""
    path = checkpoint_file(state_dir, "swa")
    weights = [np.asarray(w, np.float64) for w in model.get_weights()]
    epochs: list[int] = []
    if path.is_file():
        with np.load(path) as saved:
            epochs = [int(e) for e in saved["epochs"]]
            if epoch in epochs:
                return  # already averaged in (an interrupted epoch end that is being replayed)
            n = len(epochs)
            weights = [(saved[f"w{i}"] * n + w) / (n + 1) for i, w in enumerate(weights)]
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    tmp = path.with_name(path.stem + ".tmp.npz")
    with open(tmp, "wb") as handle:
        np.savez(handle, epochs=np.asarray(epochs + [epoch], np.int64), **arrays)
    os.replace(tmp, path)


def recompute_bn(model, x: np.ndarray, batch_size: int = 256) -> int:
    """Re-estimate every BatchNorm layer's moving mean/variance on the images x (uint8 [n, 48, 48]).

    Averaged weights need statistics of their own (the epochs' averaged statistics belong to other
    weights). One pass in training mode with dropout off, each layer's momentum set so the moving
    values end as the batch-size-weighted mean of the per-batch statistics (PyTorch's `update_bn`).
    Returns the number of BatchNorm layers.
    """
    import keras

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    if not norms or len(x) == 0:
        return len(norms)
    momenta, rates = [n.momentum for n in norms], [d.rate for d in drops]
    x = np.asarray(x, np.uint8)
    try:
        for d in drops:
            d.rate = 0.0
        seen = 0
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size].astype(np.float32)[..., None]
            seen += len(batch)
            for n in norms:
                n.momentum = 1.0 - len(batch) / seen  # 0 on the first batch: its statistics replace the old
            model(batch, training=True)
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m
        for d, r in zip(drops, rates):
            d.rate = r
    return len(norms)


def load_swa(state_dir: str | Path, cfg: TrainConfig, x_fit: np.ndarray | None = None):
    """(model with the averaged weights, averaged epochs), or (None, []) when no epoch was averaged.
    With swa_bn = "recompute" the BatchNorm statistics are re-estimated on x_fit."""
    import keras

    path = checkpoint_file(state_dir, "swa")
    if not path.is_file():
        return None, []
    model = keras.models.load_model(checkpoint_file(state_dir, "last"), compile=False)
    with np.load(path) as saved:
        epochs = [int(e) for e in saved["epochs"]]
        current = model.get_weights()
        model.set_weights([saved[f"w{i}"].astype(w.dtype) for i, w in enumerate(current)])
    if cfg.swa_bn == "recompute" and x_fit is not None:
        recompute_bn(model, x_fit)
    return model, epochs


def snapshot_ensemble(state_dir: str | Path, count: int):
    """(one model outputting the mean of the last `count` snapshots' outputs, their epochs), or
    (None, epochs) when fewer than 2 snapshots were saved (a run stopped before its second cycle ended)."""
    import keras

    files = snapshot_files(state_dir)
    epochs = list(files)[-count:]
    if len(epochs) < 2:
        return None, epochs
    members = []
    for epoch in epochs:
        member = keras.models.load_model(files[epoch], compile=False)
        member.name = f"snapshot_epoch_{epoch}"  # unique names: the ensemble nests them
        members.append(member)
    inputs = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="face")
    mean = keras.layers.Average(name="snapshot_mean")([m(inputs) for m in members])
    return keras.Model(inputs, mean, name=f"snapshot_ensemble_{len(members)}"), epochs


def _stop_accuracy(model, x_stop: np.ndarray, y_stop: np.ndarray) -> float:
    return float(np.mean(predict_proba(model, x_stop, "none").argmax(1) == y_stop)) if len(y_stop) else float("nan")


def _final_snapshots(state_dir: str | Path, cfg: TrainConfig, best, x_stop: np.ndarray, y_stop: np.ndarray):
    ensemble, epochs = snapshot_ensemble(state_dir, cfg.snapshots)
    if ensemble is None:
        return best, {"epochs": epochs, "used": False,
                      "why": "fewer than 2 cycles ended (stopped early?): nothing to average"}
    y_stop = np.asarray(y_stop)
    ens_acc, best_acc = _stop_accuracy(ensemble, x_stop, y_stop), _stop_accuracy(best, x_stop, y_stop)
    members = [_stop_accuracy(m, x_stop, y_stop) for m in ensemble.layers if m.name.startswith("snapshot_epoch_")]
    used = bool(ens_acc >= best_acc)
    report = {"epochs": epochs, "used": used, "stop_accuracy": ens_acc, "best_checkpoint_stop_accuracy": best_acc,
              "member_stop_accuracy": members,
              "why": "chosen on the stop split: " + ("snapshot ensemble >= best checkpoint" if used
                                                     else "best checkpoint > snapshot ensemble")}
    return (ensemble, report) if used else (best, report)


def final_model(state_dir: str | Path, cfg: TrainConfig, x_fit: np.ndarray, x_stop: np.ndarray,
                y_stop: np.ndarray):
    """The model a run keeps: (model, report of the SWA or snapshot choice, or None).

    Without SWA or snapshots: the best checkpoint. With one of them: the averaged weights (or the
    snapshot ensemble) when its stop-split accuracy (no TTA) is at least the best checkpoint's,
    else the best checkpoint. The choice looks only at the stop split, never at the holdout. The
    report says which and why.
    """
    best = load_best(state_dir)
    if cfg.snapshots:
        return _final_snapshots(state_dir, cfg, best, x_stop, y_stop)
    if not cfg.swa_epochs:
        return best, None
    swa, epochs = load_swa(state_dir, cfg, x_fit)
    if swa is None:
        return best, {"epochs": [], "bn": cfg.swa_bn, "used": False,
                      "why": "no epoch of the averaging window was trained (stopped early?)"}
    y_stop = np.asarray(y_stop)
    swa_acc, best_acc = _stop_accuracy(swa, x_stop, y_stop), _stop_accuracy(best, x_stop, y_stop)
    used = bool(swa_acc >= best_acc)
    report = {"epochs": epochs, "bn": cfg.swa_bn, "used": used, "stop_accuracy": swa_acc,
              "best_checkpoint_stop_accuracy": best_acc,
              "why": "chosen on the stop split: " + ("averaged weights >= best checkpoint" if used
                                                     else "best checkpoint > averaged weights")}
    if used:
        del best
        return swa, report
    del swa
    return best, report
