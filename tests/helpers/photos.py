"""Helpers for the photo tests: a tiny trained CNN run, real photos that scikit-image ships, a corrupt file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The astronaut's face, checked by eye on skimage.data.astronaut() (512x512): forehead to chin,
# ear to ear. A detected box must overlap it well.
ASTRONAUT_FACE = (180, 70, 90, 95)  # x, y, w, h


def train_tiny_run(root: Path, seed: int = 0):
    """A 1-epoch tiny VGG (the `tiny` preset) on 240 synthetic faces, recorded under root/runs (a few seconds)."""
    from ferkaggle.cnn.config import load_train_config
    from ferkaggle.cnn.train import train_config
    from helpers.fakes import make_tiny_prepared

    prepared = make_tiny_prepared(root / "data" / "prepared", seed=seed)
    cfg = load_train_config("tiny")
    return train_config(prepared, cfg, seed=seed, root=root / "runs")


def write_photos(folder: Path) -> dict[str, Path]:
    """astronaut.jpg (one face), chelsea.png (a cat: no human face), broken.jpg (not an image)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"astronaut": folder / "astronaut.jpg", "chelsea": folder / "chelsea.png", "broken": folder / "broken.jpg"}
    Image.fromarray(data.astronaut()).save(paths["astronaut"], quality=95)
    Image.fromarray(data.chelsea()).save(paths["chelsea"])
    paths["broken"].write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(range(256)))
    return paths


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


# The astronaut's head with some hair, suit and background around it (x0, y0, x1, y1 in
# skimage.data.astronaut()), pasted into group photos; ASTRONAUT_FACE lies inside it.
ASTRONAUT_HEAD = (135, 25, 315, 215)


def group_photo(widths=(30, 36, 42, *range(50, 141, 6)), size=(2048, 1536), seed: int = 0):
    """A 2048x1536 "group photo" and its true face boxes: the astronaut's head (a real photo's face)
    pasted once per face width in `widths` (19 faces 30 to 140 px wide; mirrored, lighter or darker by
    turns) on a smooth background, in a jittered grid so that no two heads overlap. The faces are
    counted by construction: box i is ASTRONAUT_FACE scaled and moved with head i."""
    from PIL import Image, ImageEnhance, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 150 - 50 * xx / width], axis=-1)
    background += rng.normal(0, 6, background.shape)
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    x0, y0, x1, y1 = ASTRONAUT_HEAD
    head = Image.fromarray(astronaut_rgb()).crop(ASTRONAUT_HEAD)
    fx, fy, fw, fh = ASTRONAUT_FACE
    cols = 5
    rows = -(-len(widths) // cols)
    cell_w, cell_h = width // cols, height // rows
    boxes = []
    for i, face_w in enumerate(rng.permutation(np.asarray(widths))):
        scale = face_w / fw
        piece = head.resize((round(head.width * scale), round(head.height * scale)), Image.Resampling.LANCZOS)
        if i % 2:
            piece = piece.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        piece = ImageEnhance.Brightness(piece).enhance((0.8, 1.0, 1.2)[i % 3])
        row, col = divmod(i, cols)
        left = col * cell_w + int(rng.integers(0, max(1, cell_w - piece.width)))
        top = row * cell_h + int(rng.integers(0, max(1, cell_h - piece.height)))
        canvas.paste(piece, (left, top))
        face_x = (fx - x0) * scale if i % 2 == 0 else (x1 - fx - fw) * scale
        boxes.append((round(left + face_x), round(top + (fy - y0) * scale), round(fw * scale), round(fh * scale)))
    return np.asarray(canvas), boxes


def true_faces_found(found, truth, min_iou: float = 0.4) -> int:
    """How many true boxes a detection matches (IoU >= min_iou), each detection used at most once."""
    left = list(found)
    matched = 0
    for box in truth:
        best = max(left, key=lambda b: iou(b, box), default=None)
        if best is not None and iou(best, box) >= min_iou:
            left.remove(best)
            matched += 1
    return matched


def encode_png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
