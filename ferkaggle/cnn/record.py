"""Turn a trained state folder into a completed CNN run: the kept model's TTA probabilities
on holdout-val and test, metrics.json and model.keras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.cnn.averaging import final_model
from ferkaggle.cnn.config import TrainConfig, summarize
from ferkaggle.cnn.fit import _save_model, read_state
from ferkaggle.cnn.runtime import release_memory, runtime_info
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import labelled_test_scores, scores
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.checkpoints import checkpoint_file
from ferkaggle.runs.registry import RunWriter, read_run


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


SCORED_ON_HOLDOUT = {"scored_on": "holdout", "selected_on_score": False,
                     "selected_on": "stop split: 10% of the training rows (early stopping, best checkpoint)"}
"""What every CNN run's val_accuracy means, recorded in metrics.json (the leaderboard shows it)."""


def record_run(prepared: Prepared, cfg: TrainConfig, state_dir: str | Path, *, seed: int = DEFAULT_SEED,
               root: str | Path | None = None, extra: dict[str, Any] | None = None):
    """Turn a trained state folder into a completed run: TTA probabilities, metrics, model.keras."""
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
