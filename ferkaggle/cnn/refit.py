"""`ferkaggle refit`: a CNN run's recipe trained again on more rows, for the submission.

Input: a completed single-model CNN run (its recorded config and seed, the epochs it trained) and
the prepared set of the same split. Output: a new run, the source's recipe fitted for as many
epochs as the source trained, with no stop split and no early stopping, on all labelled rows
(rows="all": holdout included, so the new run carries the source's holdout probabilities and
figures, marked as such) or on every training row with the holdout still out (rows="train",
scored on the holdout as any run). Why: the final model for the submission sees every labelled
face; the recipe, and so its holdout figure, stays the one chosen without the holdout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ferkaggle.cnn.averaging import load_best, load_swa, snapshot_ensemble
from ferkaggle.cnn.config import TrainConfig, summarize
from ferkaggle.cnn.fit import fit_trial, save_model_atomic
from ferkaggle.cnn.runtime import release_memory, runtime_info
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.console import epoch_reporter, track
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import labelled_test_scores, scores
from ferkaggle.core.presets import from_dict, to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.checkpoints import checkpoint_dir, remove_checkpoint
from ferkaggle.runs.registry import RunWriter, read_run

REFIT_ROWS = {
    "all": "all labelled rows (training + holdout): for the submission; its holdout figure is the source run's",
    "train": "all training rows (fit + stop split), the holdout still out: scored on the holdout as any run",
}


def check_refit_rows(rows: str) -> None:
    """The one check of `--rows`: a key of REFIT_ROWS (the CLI calls it before loading anything)."""
    if rows not in REFIT_ROWS:
        raise FerkaggleError(f"--rows must be one of {', '.join(REFIT_ROWS)}, not {rows!r}")


def refit_config(source) -> TrainConfig:
    """The source CNN run's recipe (its recorded config), for as many epochs as it trained, no early stopping."""
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
    cfg = _checked_refit_config(source, prepared, rows)
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
        writer.update_info(runtime=runtime_info(cfg.precision))
        state_dir = checkpoint_dir(writer.dir)
        task = tracker.add(f"{cfg.name}", total=cfg.epochs)
        none = np.zeros(0, dtype=np.int64)
        state = fit_trial(prepared.x[idx], prepared.y[idx], prepared.x[none], prepared.y[none], cfg, state_dir,
                          seed=seed, on_epoch=epoch_reporter(tracker, task))
        model, kept = _refit_model(state_dir, cfg, source, prepared.x[idx])
        test = predict_proba(model, prepared.x_test, cfg.tta)
        common = _refit_record(source, state, cfg, rows, kept, len(idx))
        val, metrics = _holdout_figures(source, prepared, model, cfg, rows, common)
        metrics.update(labelled_test_scores(prepared.y_test, test))
        writer.save_probas(val=val, test=test)
        writer.save_metrics(metrics)
        save_model_atomic(model, writer.model_path(".keras"))
        del model
        remove_checkpoint(state_dir)
    release_memory()
    return read_run(writer.dir)


def _checked_refit_config(source, prepared: Prepared, rows: str) -> TrainConfig:
    """The refit's recipe (`refit_config`), once the rows, the split and the source's files allow it."""
    check_refit_rows(rows)
    cfg = refit_config(source)
    if prepared.split_fingerprint != source.split_fingerprint:
        raise FerkaggleError(f"run {source.run_id} was trained on split {source.split_fingerprint[:8]}, "
                             f"the prepared data {prepared.path} has split {prepared.split_fingerprint[:8]}")
    if rows == "all" and not source.has_proba("val"):
        raise FerkaggleError(f"run {source.run_id} has no holdout probabilities to carry over (val_proba.npy)")
    return cfg


def _refit_record(source, state: dict, cfg: TrainConfig, rows: str, kept: str, n_rows: int) -> dict:
    """The metrics.json entries of a refit that do not depend on the holdout: its training and what it kept."""
    refit = {"of": source.run_id, "rows": rows, "n_rows": int(n_rows), "epochs": state["epochs_done"],
             "model": kept, "rows_meaning": REFIT_ROWS[rows]}
    return {"epochs": state["epochs_done"], "best_epoch": state["epochs_done"], "stopped": state["stopped"],
            "train_seconds": state["train_seconds"], "history": state["history"], "tta": cfg.tta,
            "stop_accuracy": None, "refit": refit, "selected_on_score": False,
            "selected_on": "nothing: the last epoch of a fixed schedule (no stop split)"}


def _holdout_figures(source, prepared: Prepared, model, cfg: TrainConfig, rows: str, common: dict):
    """(val probabilities, metrics without the test figures): with rows="all" the source run's holdout
    probabilities and figures (the refit trained on the holdout), with rows="train" the refit model's."""
    if rows == "all":
        val = source.proba("val")
        metrics = {"val_accuracy": source.metrics.get("val_accuracy"),
                   "val_macro_f1": source.metrics.get("val_macro_f1"),
                   "scored_on": "holdout, by the recipe before the refit", **common}
    else:
        val = predict_proba(model, prepared.x_val, cfg.tta)
        s = scores(prepared.y_val, val)
        metrics = {"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], "scored_on": "holdout", **common}
    return val, metrics
