"""What `ferkaggle predict --out` writes: predictions.csv (one row per face: file, face index, box,
emotion, the seven probabilities) and `<stem>.annotated.<jpg|png>`, a copy of each readable photo
with every face's box and label drawn on it. Each file is written atomically and never over an input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_bytes, atomic_write_text
from ferkaggle.photos.predict import Face, PhotoResult

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
