"""`ferkaggle train`: fit one CNN configuration on prepared data and record it as a run.

Inputs: a `Prepared` set (uint8 faces, labels, folds, holdout-val, test), a `TrainConfig` (a TOML
preset from ferkaggle/configs/, only the changed fields), a seed, and optionally teacher runs
(distillation, and pseudo-labelled test faces: `distill.py`). Output: one completed run in the registry
(`ferkaggle.runs.registry`): metrics.json, val/test (and for k-fold runs oof) probabilities with the
config's TTA, and model.keras. `train_config` is the whole stage; the parts it is made of live in
their own modules: `fit.fit_trial` (the resumable fit), `record.save_run_results` (the kept model's
probabilities, metrics and model file), `averaging.final_model` (best checkpoint, SWA weights or
snapshot ensemble), `tta.predict_proba` (the test-time views).

Selection never looks at the holdout: a model fits on most of the training rows and
early-stops / keeps its best checkpoint on a group-aware stratified 10% of them (the "stop
split": `Prepared.stopping_split`, or for k-fold runs the same carve-out of each fold's
in-fold rows). Keras calls that set its validation data, so the per-epoch history records
its scores as `stop_loss` / `stop_accuracy`; `val_*` in metrics.json always means holdout-val.
A k-fold run (`folds=True`) fits one model per CV fold: out-of-fold probabilities on the training
rows, cv_mean/cv_std, and holdout-val/test probabilities that are the mean of the fold models.

Reproducible on the CPU: one seed (default `ferkaggle.core.constants.DEFAULT_SEED`, recorded in
run.json) seeds Python, NumPy and Keras, the stop split, the shuffle order and, through stateless
random ops keyed by (seed, batch number), every augmentation draw. Keras is imported inside the
functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ferkaggle.cnn.averaging import final_model
from ferkaggle.cnn.config import TrainConfig, summarize
from ferkaggle.cnn.distill import check_distillation, pseudo_labels, teacher_targets, teacher_weight_or_default
from ferkaggle.cnn.fit import fit_trial
from ferkaggle.cnn.models import check_weights
from ferkaggle.cnn.record import SCORED_ON_HOLDOUT, save_run_results, store_run_model
from ferkaggle.cnn.runtime import release_memory, runtime_info
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.console import epoch_reporter, track
from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import labelled_test_scores, scores
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.data.splits import stopping_mask
from ferkaggle.runs.checkpoints import checkpoint_dir, remove_checkpoint
from ferkaggle.runs.registry import RunWriter, read_run


def train_config(prepared: Prepared, cfg: TrainConfig, *, seed: int = DEFAULT_SEED, epochs: int | None = None,
                 folds: bool = False, root: str | Path | None = None, tracker=None, extra: dict | None = None,
                 teachers: list | None = None, teacher_weight: float | None = None,
                 pseudo_threshold: float | None = None):
    """The `ferkaggle train` stage: fit cfg (optionally k-fold) and record one run; returns the Run.

    `teachers` (CNN runs): knowledge distillation; the model fits on targets that mix the one-hot
    label (1 - teacher_weight) with the teachers' mean probabilities (teacher_weight), see
    `teacher_targets`. With `pseudo_threshold` the test faces the teachers give one class at least
    that probability join the fit rows with that class as their label (`distill.pseudo_labels`; never
    the stop split, never a copy of a holdout face); teacher_weight may then be 0 (labels as they are).
    teacher_weight None: 0.5, or 0 with pseudo-labels (`distill.teacher_weight_or_default`)."""
    if epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    if len(prepared.val_idx) == 0:
        raise FerkaggleError(f"{prepared.path}: no holdout-val rows to score the run on; "
                             "run `ferkaggle prepare` with a --val-size above 0")
    teacher_weight = teacher_weight_or_default(teacher_weight, pseudo_threshold)
    check_distillation(teachers, prepared, teacher_weight, pseudo_threshold, folds)
    if teachers:
        extra = {**(extra or {}), "teachers": [t.run_id for t in teachers], "teacher_weight": teacher_weight}
    if tracker is None:
        with track() as t:
            return train_config(prepared, cfg, seed=seed, folds=folds, root=root, tracker=t, extra=extra,
                                teachers=teachers, teacher_weight=teacher_weight, pseudo_threshold=pseudo_threshold)
    import keras

    check_weights(cfg.model)  # a pretrained backbone's weights, before anything is written
    keras.utils.set_random_seed(seed)
    if folds:
        return _train_kfold(prepared, cfg, seed=seed, root=root, tracker=tracker, extra=extra)

    pseudo = pseudo_labels(teachers, prepared, pseudo_threshold) if pseudo_threshold is not None else None
    summary = summarize(cfg)
    if teachers and teacher_weight > 0:
        summary += f", distilled from {len(teachers)} run{'s' if len(teachers) > 1 else ''} (weight {teacher_weight:g})"
    if pseudo is not None:
        summary += f", pseudo-labels on {len(pseudo.rows):,} test faces (>= {pseudo.threshold:g})"
        extra = {**extra, "pseudo_labels": pseudo.report()}
    with RunWriter("cnn", cfg.name, to_dict(cfg), prepared, seed=seed, summary=summary,
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg.precision))
        state_dir = checkpoint_dir(writer.dir)
        fit_idx, stop_idx = prepared.stopping_split(seed)
        x_fit, y_fit = prepared.x[fit_idx], prepared.y[fit_idx]
        targets = teacher_targets(teachers, x_fit, y_fit, teacher_weight) if teachers else None
        if pseudo is not None:  # the pseudo-labelled test faces join the fit rows, never the stop split
            x_fit = np.concatenate([x_fit, prepared.x_test[pseudo.rows]])
            y_fit = np.concatenate([y_fit, pseudo.labels.astype(y_fit.dtype)])
            targets = np.concatenate([targets, np.eye(NUM_CLASSES, dtype=np.float32)[pseudo.labels]])
        task = tracker.add(f"{cfg.name}", total=cfg.epochs)
        state = fit_trial(x_fit, y_fit, prepared.x[stop_idx], prepared.y[stop_idx], cfg,
                          state_dir, seed=seed, on_epoch=epoch_reporter(tracker, task), targets=targets)
        save_run_results(writer, state_dir, state, prepared, cfg, seed)
        remove_checkpoint(state_dir)
    release_memory()
    return read_run(writer.dir)


def _train_kfold(prepared: Prepared, cfg: TrainConfig, *, seed: int, root, tracker, extra):
    """k models, one per held-out fold: out-of-fold probabilities on the training rows (train_idx order);
    val/test probabilities are the mean of the k models. Each fold model early-stops on its own stop
    split, a group-aware 10% of that fold's in-fold rows: never the held-out fold (its OOF rows) and
    never the holdout."""
    k = prepared.num_folds
    if k < 2:
        raise FerkaggleError(f"{prepared.path}: --folds needs at least 2 CV folds, the prepared data has {k}")
    rows = _TrainingRows(np.asarray(prepared.fold)[prepared.train_idx], prepared.x_train,
                         np.asarray(prepared.y_train), prepared.groups[prepared.train_idx])
    with RunWriter("cnn", f"{cfg.name}-cv{k}", to_dict(cfg), prepared, seed=seed, summary=summarize(cfg) + f", {k}-fold",
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg.precision))
        oof = np.zeros((len(rows.y), NUM_CLASSES), np.float32)
        val = np.zeros((len(prepared.val_idx), NUM_CLASSES), np.float32)
        test = np.zeros((len(prepared.x_test), NUM_CLASSES), np.float32)
        folds = [_fit_fold(prepared, cfg, rows, f, seed=seed, writer=writer, tracker=tracker,
                           oof=oof, val=val, test=test) for f in range(k)]
        writer.save_probas(val=val, test=test, oof=oof)
        metrics = _kfold_metrics(prepared, cfg, val, folds)
        metrics.update(labelled_test_scores(prepared.y_test, test))
        writer.save_metrics(metrics)
    return read_run(writer.dir)


@dataclasses.dataclass(frozen=True)
class _TrainingRows:
    """The training rows of a k-fold run, in train_idx order: CV fold, face, label and group of each."""
    fold: np.ndarray
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray


def _fit_fold(prepared: Prepared, cfg: TrainConfig, rows: _TrainingRows, f: int, *, seed: int, writer: RunWriter,
              tracker, oof: np.ndarray, val: np.ndarray, test: np.ndarray) -> dict:
    """Fit fold f's model on the other folds' rows (less its stop split), write its out-of-fold
    probabilities into oof and add its 1/k share of the holdout-val and test probabilities to val and
    test; fold 0's model is the run's model.keras. Returns the fold's CV accuracy, history, train
    seconds and SWA / snapshot report (None without either)."""
    k = prepared.num_folds
    state_dir = checkpoint_dir(writer.dir, fold=f)
    task = tracker.add(f"{cfg.name} fold {f + 1}/{k}", total=cfg.epochs)
    inside = rows.fold != f
    in_rows = np.flatnonzero(inside)
    stop = stopping_mask(rows.y[in_rows], rows.groups[in_rows], 0.1, seed + 1000 * f)
    fit_rows, stop_rows = in_rows[~stop], in_rows[stop]
    x_tr, y_tr = rows.x, rows.y
    state = fit_trial(x_tr[fit_rows], y_tr[fit_rows], x_tr[stop_rows], y_tr[stop_rows], cfg, state_dir,
                      seed=seed + 1000 * f, on_epoch=epoch_reporter(tracker, task))
    model, swa = final_model(state_dir, cfg, x_tr[fit_rows], x_tr[stop_rows], y_tr[stop_rows])
    oof[~inside] = predict_proba(model, x_tr[~inside], cfg.tta)
    val += predict_proba(model, prepared.x_val, cfg.tta) / k
    test += predict_proba(model, prepared.x_test, cfg.tta) / k
    result = {"score": scores(y_tr[~inside], oof[~inside])["accuracy"], "history": state["history"],
              "seconds": state["train_seconds"], "swa": swa}
    if f == 0:
        store_run_model(model, swa, state_dir, writer.model_path(".keras"))
    del model
    remove_checkpoint(state_dir)
    release_memory()
    return result


def _kfold_metrics(prepared: Prepared, cfg: TrainConfig, val: np.ndarray, folds: list[dict]) -> dict:
    """A k-fold run's metrics.json but its test figures: the fold models' mean on holdout-val, the folds'
    CV accuracies, epochs, histories and train seconds, and each fold's SWA / snapshot choice."""
    fold_scores = [fold["score"] for fold in folds]
    histories = [fold["history"] for fold in folds]
    seconds = sum((fold["seconds"] for fold in folds), 0.0)
    swa_reports = [fold["swa"] for fold in folds if fold["swa"] is not None]
    s = scores(prepared.y_val, val)
    metrics = {"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], **SCORED_ON_HOLDOUT,
               "selected_on": "per fold: a stop split of 10% of its in-fold rows", "cv_mean": float(np.mean(fold_scores)), "cv_std": float(np.std(fold_scores)),
               "cv_scores": fold_scores, "folds": len(folds), "epochs": int(sum(len(h) for h in histories)),
               "train_seconds": round(seconds, 2), "history": histories[0], "fold_histories": histories,
               "tta": cfg.tta, "model_file": "model.keras is the fold-1 model"}
    if swa_reports:
        metrics["snapshot_folds" if cfg.snapshots else "swa_folds"] = swa_reports
    return metrics
