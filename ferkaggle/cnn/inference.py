"""A CNN run's saved model for inference: model.keras loaded, and probabilities with the run's own
test-time views.

Input: a completed CNN run (`ferkaggle.runs.registry.Run`) and uint8 faces [n, 48, 48]. Output:
probabilities [n, 7], the mean over the views of the run's recorded `tta` mode, as its val/test
probabilities were made. Distillation's teachers and the photo predictor both load CNN runs
through here, so both see a run as it scored itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkaggle.cnn.tta import predict_proba
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.runs.registry import Run


def load_keras_model(model_file: Path):
    """The Keras model in model_file, not compiled; a file Keras cannot read is one readable line."""
    import keras

    try:
        return keras.models.load_model(model_file, compile=False)
    except Exception as exc:  # a damaged zip, a Keras version mismatch: one readable line
        raise FerkaggleError(f"{model_file}: cannot load the Keras model ({type(exc).__name__}: {exc})") from None


def run_tta(run: Run) -> str:
    """The test-time augmentation the run's own val/test probabilities were made with."""
    return run.info.get("config", {}).get("tta", "none")


def cnn_run_proba(run: Run, faces: np.ndarray) -> np.ndarray:
    """Probabilities [n, 7] of a CNN run's saved model on uint8 faces [n, 48, 48], with the run's TTA."""
    model_file = run.model_file()
    if model_file is None or model_file.suffix != ".keras":
        raise FerkaggleError(f"run {run.run_id} has no saved model.keras to predict with")
    return predict_proba(load_keras_model(model_file), faces, run_tta(run))
