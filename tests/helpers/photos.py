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
