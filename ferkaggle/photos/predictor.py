"""The run that predicts on new faces, and its saved models loaded for inference.

`select_predict_run` turns the run argument of `predict`, `serve` and `export` into a run exactly
as `submit` does (`ferkaggle.runs.select.select_run`: `best` and `latest` on the current prepared
split), and stops with one line when the run `best` or `latest` chooses cannot predict (no saved
model, or an ensemble with a member that has none); it never picks another run instead.

`Predictor.from_run` loads what a run predicts with, and `Predictor.predict` gives probabilities
[n, 7] for uint8 faces [n, 48, 48] (crops as `ferkaggle prepare` makes them; CNNs rescale to
[0, 1] inside):
- a CNN run (kind ``cnn``): its model.keras with the run's test-time augmentation (`tta`: the
  mean over the face and its mirror for "hflip", over ten views for "tencrop" / "shift",
  `ferkaggle.cnn.tta`), exactly as it scored the holdout; for a k-fold CNN run model.keras is
  the fold-1 model (what the run saved);
- a classical run (kind ``baseline``, e.g. the random forest) whose model.joblib was saved: the
  fold pipelines' mean on the run's features (pixels or HOG) of the crop;
- an ensemble run: its members' models with the weights it recorded (those fitted on the whole
  holdout, as for its test probabilities); members with weight 0 are not loaded.
A run without a saved model (`save_model = false`, or the file deleted) is refused in one line
(`model_problem` says why). model.joblib files pickled before the classical models moved into
`ferkaggle.classical` load too (`MOVED_MODULES`).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ferkaggle.cnn.inference import load_keras_model, run_tta
from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.runs.registry import SELECTORS, Run, load_run
from ferkaggle.runs.select import select_run

MOVED_MODULES = {"ferkaggle.baseline": "ferkaggle.classical.baseline",
                 "ferkaggle.features": "ferkaggle.classical.features"}
"""Old module -> the module that holds its classes now, for the classes model.joblib pickles:
`FoldEnsemble` (ferkaggle.baseline) and the `HogSettings` it keeps (ferkaggle.features)."""


class Predictor:
    """Probabilities [n, 7] for uint8 faces [n, 48, 48], from one run's saved model(s)."""

    def __init__(self, run: Run, parts: list[tuple[float, Any, str | None]]):
        self.run = run
        self.parts = parts  # (weight, model, tta): a Keras model and its TTA, or a FoldEnsemble and None

    @property
    def description(self) -> str:
        return f"{self.run.run_id} ({self.run.kind}, {len(self.parts)} model{'s' if len(self.parts) != 1 else ''})"

    @classmethod
    def from_run(cls, run: Run) -> "Predictor":
        """The run's model (an ensemble: its members' models with weight > 0); one line when one is missing."""
        problem = model_problem(run)
        if problem:
            raise FerkaggleError(f"run {run.run_id} {problem}; predict needs a run with a model file")
        if run.kind == "ensemble":
            return cls(run, [(weight, *load_model(member)) for weight, member in ensemble_members(run)])
        return cls(run, [(1.0, *load_model(run))])

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


def select_predict_run(ref: str, root: str | Path | None = None, *, prepared_root: str | Path | None = None) -> Run:
    """The run `predict`, `serve` and `export` use: `select_run(ref)`, the run `submit` would use.
    When `best` or `latest` chooses a run that cannot predict, one FerkaggleError that names it."""
    run = select_run(ref, root, prepared_root=prepared_root)
    if ref in SELECTORS:
        problem = model_problem(run)
        if problem:
            raise FerkaggleError(
                f"`{ref}` is run {run.run_id} (the run `ferkaggle submit --run {ref}` uses), which cannot "
                f"predict: it {problem}. Name a run that can (--run <run id>; `ferkaggle leaderboard` lists "
                "them), or save this run's model")
    return run


def model_problem(run: Run) -> str | None:
    """Why the run cannot predict, as what follows "run <id>" in a sentence; None when every model it needs is saved."""
    return ensemble_problem(run) if run.kind == "ensemble" else saved_model_problem(run)


def saved_model_problem(run: Run) -> str | None:
    """Why a single run has no model to load (its own model.keras / model.joblib); None when it has one."""
    if run.model_file() is not None:
        return None
    if run.kind == "baseline":
        return ("has no saved model (it was run with save_model = false (`ferkaggle baseline --save-model`) "
                "or its model.joblib was deleted)")
    return "has no saved model (its model.keras is missing)"


def ensemble_problem(run: Run) -> str | None:
    """Why an ensemble run cannot predict (its members, or one of them with weight > 0); None when it can."""
    members = recorded_members(run)
    if not members:
        return "is an ensemble that does not record its members and weights"
    for member_id in members:
        try:
            member = load_run(member_id, root=run.dir.parent)
        except FerkaggleError:
            return f"is an ensemble whose member run {member_id} is gone from {run.dir.parent}/"
        problem = saved_model_problem(member)
        if problem:
            return f"is an ensemble whose member run {member_id} {problem}"
    return None


def recorded_members(run: Run) -> dict[str, float]:
    """{member run id: weight} of an ensemble run's members with weight > 0, as its test probabilities used."""
    members = run.ensemble_members()
    weights = run.metrics.get("weights") or {}
    recorded = {member_id: float(weights.get(member_id, 0.0)) for member_id in members}
    return {member_id: weight for member_id, weight in recorded.items() if weight > 0}


def ensemble_members(run: Run) -> list[tuple[float, Run]]:
    """(weight, member run) of an ensemble's members with weight > 0, the weights summing to 1."""
    used = recorded_members(run)
    total = sum(used.values())
    return [(weight / total, load_run(member_id, root=run.dir.parent)) for member_id, weight in used.items()]


def load_model(run: Run) -> tuple[Any, str | None]:
    """(model, tta) of a single run with a saved model: Keras and the run's TTA, or a joblib model and None."""
    model_file = run.model_file()
    if model_file is None:
        raise FerkaggleError(f"run {run.run_id} has no saved model")
    if model_file.suffix == ".keras":
        return load_keras_model(model_file), run_tta(run)
    return load_joblib_model(model_file), None


def load_joblib_model(model_file: Path) -> Any:
    """A classical run's model.joblib, also one pickled when its classes lived in `MOVED_MODULES`' old modules."""
    import joblib

    try:
        with old_module_names():
            model = joblib.load(model_file)
    except Exception as exc:
        raise FerkaggleError(f"{model_file}: cannot load the saved model ({type(exc).__name__}: {exc})") from None
    if not hasattr(model, "predict_proba"):
        raise FerkaggleError(f"{model_file}: holds a {type(model).__name__}, not a model with predict_proba")
    return model


@contextlib.contextmanager
def old_module_names() -> Iterator[None]:
    """While it lasts, each old name in MOVED_MODULES imports as the module that holds its classes now
    (what an old pickle asks for); afterwards the old names are gone again."""
    added = []
    for old, new in MOVED_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)  # loaded only here: the model needs it anyway
            added.append(old)
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
