"""Emotions of the faces in photos, with a trained run's model.

Inputs: a run (`runs.Run`) and photos (paths or bytes). Outputs: per photo, each face's box
(x, y, w, h in the photo's pixels), its seven probabilities (EMOTIONS order) and the emotion;
optionally `predictions.csv` and annotated copies of the photos.

Which runs can predict (`Predictor.from_run`):
- a CNN run (kind ``cnn``): its `model.keras` with the run's test-time augmentation (the mean
  over the face and its mirror when the run used `tta = "hflip"`, over ten views with
  "tencrop" / "shift": `train.tta_views`), exactly as it scored the holdout. For a k-fold CNN run model.keras is the fold-1 model (what the run saved);
- a classical baseline (kind ``baseline``, e.g. the random forest) whose `model.joblib` was
  saved: the fold pipelines' mean on the run's features (pixels or HOG) of the 48x48 crop;
- an ensemble run: its members' models combined with the weights the ensemble recorded
  (those fitted on the whole holdout, as for its test probabilities); members with weight 0
  are not loaded.
A run without a saved model (`save_model = false`, or the file deleted) is refused with one line.

A face crop is 48x48 grey uint8 made as `ferkaggle prepare` makes image-folder faces (see
faces.py); the models take those pixels as they are (CNNs rescale to [0, 1] inside).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.faces import DEFAULT_MARGIN, Box, Detector, find_faces, read_photo
from ferkaggle.photos.predictor import Predictor

# ----------------------------------------------------------------------------- photos


@dataclass
class Face:
    box: Box
    probabilities: np.ndarray  # float32 [7]

    @property
    def emotion(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def to_json(self) -> dict[str, Any]:
        return {"box": [int(v) for v in self.box], "emotion": self.emotion,
                "probabilities": {name: round(float(p), 6) for name, p in zip(EMOTIONS, self.probabilities)}}


@dataclass
class PhotoResult:
    file: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None      # one line when the file could not be read
    size: tuple[int, int] | None = None  # width, height
    detect_seconds: float = 0.0
    predict_seconds: float = 0.0
    image: np.ndarray | None = field(default=None, repr=False)  # the RGB photo, kept for annotation

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "faces": [f.to_json() for f in self.faces]}
        if self.size:
            out["width"], out["height"] = self.size
        if self.error:
            out["error"] = self.error
        elif not self.faces:
            out["message"] = "no face found"
        return out


def predict_photo(source: bytes | str | Path, predictor: Predictor, detector: Detector, *, name: str | None = None,
                  margin: float = DEFAULT_MARGIN, keep_image: bool = False) -> PhotoResult:
    """Detect, crop and predict one photo; a FerkaggleError when it is not a readable image."""
    label = name or str(source)
    rgb = read_photo(source, label)
    found = find_faces(rgb, detector, margin)
    t0 = time.perf_counter()
    proba = predictor.predict(found.crops)
    seconds = time.perf_counter() - t0 if len(found.crops) else 0.0
    faces = [Face(box, p) for box, p in zip(found.boxes, proba)]
    return PhotoResult(label, faces, size=(rgb.shape[1], rgb.shape[0]), detect_seconds=found.seconds,
                       predict_seconds=seconds, image=rgb if keep_image else None)


def predict_photos(paths: list[Path], predictor: Predictor, detector: Detector, *, margin: float = DEFAULT_MARGIN,
                   keep_images: bool = False) -> list[PhotoResult]:
    """Every photo in order; an unreadable one becomes a result with `error` set, and the batch goes on."""
    results = []
    for path in paths:
        try:
            results.append(predict_photo(Path(path), predictor, detector, name=str(path), margin=margin,
                                         keep_image=keep_images))
        except FerkaggleError as exc:
            results.append(PhotoResult(str(path), error=str(exc)))
    return results


