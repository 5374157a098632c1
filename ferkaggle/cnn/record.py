"""Turn a trained checkpoint folder into a completed CNN run.

Input: a checkpoint folder `fit.fit_trial` left (state.json, best.keras, and swa.npz or snapshots
where the config averages), the `Prepared` set and the `TrainConfig` it was trained with. Output,
in the run folder (`ferkaggle.runs.registry.RunWriter`): the kept model's (`averaging.final_model`:
best checkpoint, SWA weights or snapshot ensemble, chosen on the stop split) TTA probabilities on
holdout-val and test, metrics.json (holdout-val accuracy and macro-F1, the best epoch's stop-split
accuracy, history, train seconds, test figures where the test set is labelled, the SWA or snapshot
choice) and model.keras. `record_run` is what the search calls for every finished trial;
`train.train_config` writes its single-model run with `save_run_results` and its k-fold runs'
model.keras with `store_run_model`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.cnn.averaging import final_model
from ferkaggle.cnn.config import TrainConfig, summarize
from ferkaggle.cnn.fit import read_state, save_model_atomic
from ferkaggle.cnn.runtime import release_memory, runtime_info
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import labelled_test_scores, scores
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.checkpoints import checkpoint_file
from ferkaggle.runs.registry import RunWriter, read_run

SCORED_ON_HOLDOUT = {"scored_on": "holdout", "selected_on_score": False,
                     "selected_on": "stop split: 10% of the training rows (early stopping, best checkpoint)"}
"""What every CNN run's val_accuracy means, recorded in metrics.json (the leaderboard shows it)."""


def _metrics_from_state(state: dict, prepared: Prepared, val: np.ndarray, test: np.ndarray | None,
                        cfg: TrainConfig) -> dict[str, Any]:
    s = scores(prepared.y_val, val)
    best = [h for h in state["history"] if h["epoch"] == state["best_epoch"]]
    metrics: dict[str, Any] = {
        "val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"], **SCORED_ON_HOLDOUT,
        "stop_accuracy": best[0].get("stop_accuracy") if best else None,  # best epoch on the stop split, no TTA
        "best_epoch": state["best_epoch"], "epochs": state["epochs_done"], "stopped": state["stopped"],
        "train_seconds": state["train_seconds"], "history": state["history"], "tta": cfg.tta,
    }
    metrics.update(labelled_test_scores(prepared.y_test, test))
    return metrics


def record_run(prepared: Prepared, cfg: TrainConfig, state_dir: str | Path, *, seed: int = DEFAULT_SEED,
               root: str | Path | None = None, extra: dict[str, Any] | None = None):
    """Turn a trained state folder into a completed run: TTA probabilities, metrics, model.keras."""
    state_dir = Path(state_dir)
    state = read_state(state_dir)
    if not checkpoint_file(state_dir, "best").is_file():
        raise FerkaggleError(f"{state_dir}: no trained epoch to record")
    with RunWriter("cnn", cfg.name, to_dict(cfg), prepared, seed=seed, summary=summarize(cfg),
                   model=cfg.model.architecture, root=root, extra=extra) as writer:
        writer.update_info(runtime=runtime_info(cfg.precision))
        save_run_results(writer, state_dir, state, prepared, cfg, seed)
    release_memory()
    return read_run(writer.dir)


def save_run_results(writer: RunWriter, state_dir: Path, state: dict, prepared: Prepared, cfg: TrainConfig,
                     seed: int = DEFAULT_SEED) -> None:
    """Into the open run `writer`: the kept model's (`final_model`: best checkpoint, SWA weights or
    snapshot ensemble) TTA probabilities on holdout-val and test, metrics.json and model.keras.

    `state` is the checkpoint folder's state (`read_state`); `seed` gives the stop split that SWA
    and snapshot ensembles are chosen on (the one the fit early-stopped on)."""
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
    store_run_model(model, swa, state_dir, writer.model_path(".keras"))
    del model


def store_run_model(model, swa: dict | None, state_dir: Path, target: Path) -> None:
    """Write a run's model.keras at target: `model` where `final_model` chose the SWA weights or the
    snapshot ensemble (its report `swa` says used), else a copy of the checkpoint folder's best.keras."""
    if swa is not None and swa["used"]:
        save_model_atomic(model, target)
    else:
        shutil.copyfile(checkpoint_file(state_dir, "best"), target)
