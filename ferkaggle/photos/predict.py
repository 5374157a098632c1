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

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.core.constants import EMOTIONS, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.faces import DEFAULT_MARGIN, Box, Detector, find_faces, read_photo
from ferkaggle.runs.registry import Run, load_run, list_runs


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
                from ferkaggle.cnn.tta import predict_proba

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
        import keras

        try:
            model = keras.models.load_model(model_file, compile=False)
        except Exception as exc:  # a damaged zip, a Keras version mismatch: one readable line
            raise FerkaggleError(f"{model_file}: cannot load the Keras model ({type(exc).__name__}: {exc})") from None
        return model, run.info.get("config", {}).get("tta", "none")
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


# ----------------------------------------------------------------------------- outputs

CSV_HEADER = ["file", "face", "x", "y", "w", "h", "emotion", *EMOTIONS]


def predictions_csv(results: list[PhotoResult]) -> str:
    """One row per face (photos without faces or unreadable ones have none): file, face index from 0, box, emotion, 7 probabilities."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for result in results:
        for index, face in enumerate(result.faces):
            writer.writerow([result.file, index, *face.box, face.emotion, *(f"{p:.6f}" for p in face.probabilities)])
    return buffer.getvalue()


def annotate(rgb: np.ndarray, faces: list[Face]):
    """A PIL image of the photo with each face's box and "emotion probability" label."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    side = max(rgb.shape[:2])
    line = max(2, side // 300)
    font_size = max(12, side // 40)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow without FreeType sizing
        font = ImageFont.load_default()
    for face in faces:
        x, y, w, h = face.box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 215, 0), width=line)
        text = f"{face.emotion} {face.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_h = bottom - top + 2 * line
        ty = y - text_h if y - text_h >= 0 else y + h
        draw.rectangle([x, ty, x + (right - left) + 2 * line, ty + text_h], fill=(255, 215, 0))
        draw.text((x + line, ty + line - top), text, fill=(0, 0, 0), font=font)
    return image


def annotated_name(file: str, taken: set[str]) -> str:
    """`<stem>.annotated.<jpg|png>`, unique within one output folder."""
    path = Path(file)
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"
    name, n = f"{path.stem}.annotated{suffix}", 2
    while name in taken:
        name, n = f"{path.stem}-{n}.annotated{suffix}", n + 1
    taken.add(name)
    return name


def write_outputs(results: list[PhotoResult], out_dir: str | Path) -> list[Path]:
    """predictions.csv and an annotated copy of every readable photo under out_dir (atomic writes)."""
    from ferkaggle.core.fsutil import atomic_write_bytes, atomic_write_text

    out_dir = Path(out_dir)
    inputs = {Path(r.file).resolve() for r in results}
    csv_path = out_dir / "predictions.csv"
    if csv_path.resolve() in inputs:
        raise FerkaggleError(f"{csv_path}: is one of the inputs; choose another --out folder")
    written = []
    taken: set[str] = set()
    for result in results:
        if result.image is None:
            continue
        target = out_dir / annotated_name(result.file, taken)
        if target.resolve() in inputs:
            raise FerkaggleError(f"{target}: is one of the input photos; choose another --out folder")
        buffer = io.BytesIO()
        image = annotate(result.image, result.faces)
        if target.suffix == ".jpg":
            image.save(buffer, format="JPEG", quality=90)
        else:
            image.save(buffer, format="PNG")
        written.append(atomic_write_bytes(target, buffer.getvalue()))
    written.insert(0, atomic_write_text(csv_path, predictions_csv(results)))
    return written
