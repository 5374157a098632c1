"""Emotions of the faces in photos, with a run's `Predictor`.

`predict_photo` reads one photo (a path or bytes), finds its faces and cuts each to a 48x48
grey crop (`ferkaggle.photos.faces`), and gives the crops to the predictor. The result is a
`PhotoResult`: per face its box (x, y, w, h in the photo's pixels), its seven probabilities
(EMOTIONS order) and the emotion, plus timings and, on request, the photo itself for
annotation. `predict_photos` does a batch: an unreadable photo becomes a result with `error`
set and the others go on. `ferkaggle predict` (with `ferkaggle.photos.outputs` for the files it
writes) and `ferkaggle serve` both call these.
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


@dataclass
class Face:
    """One face found in a photo: its box and the run's probabilities for its crop."""

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
    """What one photo gave: its faces, or the one-line error when it could not be read."""

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


