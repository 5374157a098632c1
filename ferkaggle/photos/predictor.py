"""A run's saved models for inference: probabilities [n, 7] for uint8 faces [n, 48, 48] from a CNN
run (with its test-time views), a forest run (its fold models) or an ensemble of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.cnn.inference import load_keras_model, run_tta
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.runs.registry import Run, list_runs, load_run


class Predictor:
    """Probabilities [n, 7] for uint8 faces [n, 48, 48], from one run's saved model(s)."""

    def __init__(self, run: Run, parts: list[tuple[float, Any, str]]):
        self.run = run
        self.parts = parts  # (weight, model, tta) - model is a Keras model or a FoldEnsemble

    @property
    def description(self) -> str:
        return f"{self.run.run_id} ({self.run.kind}, {len(self.parts)} model{'s' if len(self.parts) != 1 else ''})"

    @classmethod
    def from_run(cls, run: Run) -> "Predictor":
        if run.kind == "ensemble":
            return cls(run, _ensemble_parts(run))
        return cls(run, [(1.0, *_load_single(run))])

    def predict(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces, np.uint8)
        if len(faces) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        total = np.zeros((len(faces), NUM_CLASSES), np.float64)
        for weight, model, tta in self.parts:
            if tta is None:  # a classical model
                total += weight * np.asarray(model.predict_proba(faces), np.float64)
            else:
                total += weight * predict_proba(model, faces, tta)
        return total.astype(np.float32)


def _load_single(run: Run) -> tuple[Any, str | None]:
    model_file = run.model_file()
    if model_file is None:
        if run.kind == "baseline":
            why = "it was run with save_model = false (`ferkaggle baseline --save-model`) or its model.joblib was deleted"
        else:
            why = "its model.keras is missing"
        raise FerkaggleError(f"run {run.run_id} has no saved model ({why}); predict needs a run with a model file")
    if model_file.suffix == ".keras":
        return load_keras_model(model_file), run_tta(run)
    import joblib

    try:
        model = joblib.load(model_file)
    except Exception as exc:
        raise FerkaggleError(f"{model_file}: cannot load the saved model ({type(exc).__name__}: {exc})") from None
    if not hasattr(model, "predict_proba"):
        raise FerkaggleError(f"{model_file}: holds a {type(model).__name__}, not a model with predict_proba")
    return model, None


def _ensemble_parts(run: Run) -> list[tuple[float, Any, str | None]]:
    members = run.info.get("config", {}).get("members") or []
    weights = run.metrics.get("weights") or {}
    if not members or not weights:
        raise FerkaggleError(f"ensemble run {run.run_id} does not record its members and weights")
    parts = []
    for member_id in members:
        weight = float(weights.get(member_id, 0.0))
        if weight <= 0:
            continue
        try:
            member = load_run(member_id, root=run.dir.parent)
        except FerkaggleError:
            raise FerkaggleError(f"ensemble run {run.run_id}: its member run {member_id} is gone from {run.dir.parent}/") from None
        try:
            parts.append((weight, *_load_single(member)))
        except FerkaggleError as exc:
            raise FerkaggleError(f"ensemble run {run.run_id}: member {exc}") from None
    total = sum(w for w, _, _ in parts)
    return [(w / total, m, t) for w, m, t in parts]


def can_predict(run: Run) -> bool:
    if run.kind == "ensemble":
        members = run.info.get("config", {}).get("members") or []
        weights = run.metrics.get("weights") or {}
        used = [m for m in members if float(weights.get(m, 0)) > 0]
        if not used:
            return False
        for member_id in used:
            try:
                if load_run(member_id, root=run.dir.parent).model_file() is None:
                    return False
            except FerkaggleError:
                return False
        return True
    return run.model_file() is not None


def resolve_predict_run(ref: str, root: str | Path | None = None, split_fingerprint: str | None = None) -> Run:
    """A run by id/prefix/path, or `best`: the highest holdout accuracy among runs that have a model to predict with
    (on the current prepared data when given its split fingerprint)."""
    if ref != "best":
        return load_run(ref, root)
    pool = [r for r in list_runs(root) if r.val_accuracy is not None
            and (split_fingerprint is None or r.split_fingerprint == split_fingerprint)]
    pool.sort(key=lambda r: (r.val_accuracy, r.metrics.get("val_macro_f1", 0.0)), reverse=True)
    for run in pool:
        if can_predict(run):
            return run
    raise FerkaggleError("no completed run with a saved model to predict with"
                         + (" on the current prepared data" if split_fingerprint and pool else "")
                         + ": train one with `ferkaggle train` (or `ferkaggle baseline` with its model saved)")
