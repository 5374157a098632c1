"""Procedural 48x48 faces whose expression sets the label: a demo competition and test data.

What: `make_faces(n, seed)` draws grayscale cartoon faces with numpy distance fields over a
coordinate grid (no per-pixel Python). The expression (mouth curve and opening, eyebrow tilt and
height, eye opening, nose wrinkle, smile folds) follows the label; pose (rotation, shift, scale),
lighting gradients, contrast, hair, noise and occluders (bars, blobs) are random nuisances.
Classes follow FER2013's imbalance (disgust rare, happy most common).

It is meant to be a real learning problem, not a toy: per-face jitter of every expression
parameter makes neighbouring classes overlap (fear vs surprise, sad vs angry vs neutral), and
pose jitter hurts pixel models much more than convolutional ones. Measured on 3,000 faces
(20% holdout): a 200-tree pixel random forest 0.46, a 3-conv Keras CNN 0.85 after 12 epochs.

`write_demo_competition(out_dir, ...)` writes the Kaggle layout (train.csv emotion,pixels;
test.csv id,pixels; test_labels.csv id,emotion for local scoring), each file atomically.

Inputs: a count and a seed. Outputs: x uint8 [n,48,48], y int8 [n]; the same seed and n always
give the same faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkaggle.core.constants import IMAGE_SIZE, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_text

# FER2013 training-set class counts: angry, disgust, fear, happy, sad, surprise, neutral.
FER2013_COUNTS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], dtype=np.float64)
CLASS_PROBS = FER2013_COUNTS / FER2013_COUNTS.sum()

# Expression parameters per class (rows = labels 0..6). Face coordinates run over about
# [-1, 1] with y pointing down. Columns:
#   mouth_curve  >0 corners up (smile), <0 corners down
#   mouth_open   height of the open mouth (0 = closed)
#   mouth_width  half width of the mouth
#   brow_tilt    >0 inner ends down (frown), <0 inner ends up (worry)
#   brow_raise   >0 brows higher
#   eye_open     eye half-height scale (1 = relaxed)
#   wrinkle      nose-bridge wrinkle strength (disgust)
#   folds        nasolabial fold strength (smile / sneer)
#   asym         mouth asymmetry (one corner raised: sneer)
_PARAMS = ("mouth_curve", "mouth_open", "mouth_width", "brow_tilt", "brow_raise",
           "eye_open", "wrinkle", "folds", "asym")
_MEANS = np.array([
    #  curve  open   width  tilt   raise  eye   wrinkle folds asym
    [-0.06, 0.03, 0.20, 0.11, -0.05, 0.85, 0.15, 0.10, 0.00],  # 0 angry
    [-0.08, 0.04, 0.18, 0.06, -0.04, 0.70, 0.80, 0.55, 0.07],  # 1 disgust
    [-0.02, 0.10, 0.24, -0.07, 0.07, 1.35, 0.05, 0.05, 0.00],  # 2 fear
    [0.14, 0.06, 0.27, 0.00, 0.01, 0.80, 0.05, 0.60, 0.00],    # 3 happy
    [-0.11, 0.01, 0.19, -0.09, 0.02, 0.80, 0.05, 0.05, 0.00],  # 4 sad
    [0.00, 0.17, 0.15, -0.02, 0.12, 1.45, 0.00, 0.00, 0.00],   # 5 surprise
    [0.00, 0.00, 0.20, 0.00, 0.00, 1.00, 0.00, 0.05, 0.00],    # 6 neutral
])
# Per-face jitter (standard deviation) of each parameter: large enough that classes overlap.
_JITTER = np.array([0.045, 0.035, 0.03, 0.045, 0.04, 0.22, 0.20, 0.18, 0.04])

_CHUNK = 256  # faces rendered per vectorised batch: ~2.4 MB per float32 field


def _soft(d: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Antialiased coverage of a shape from its signed distance (negative inside)."""
    return np.clip(0.5 - d / width, 0.0, 1.0)


def _ellipse(u, v, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse (in face units)."""
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _curve(u, v, x0, y0, half_width, bend, tilt=0.0):
    """Distance to the arc y = y0 + bend*t^2 + tilt*t, t = (x-x0)/half_width in [-1, 1]."""
    t = (u - x0) / half_width
    tc = np.clip(t, -1.0, 1.0)
    y = y0 + bend * tc ** 2 + tilt * tc
    slope = (2 * bend * tc + tilt) / half_width
    dv = np.abs(v - y) / np.sqrt(1.0 + slope ** 2)
    du = np.abs(t - tc) * half_width  # beyond the ends: distance to the end point
    return np.sqrt(dv ** 2 + du ** 2)


def _col(a: np.ndarray) -> np.ndarray:
    """Per-face values shaped [n,1,1] to broadcast over the pixel grid."""
    return np.asarray(a, np.float32)[:, None, None]


def _draw_params(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    y = rng.choice(NUM_CLASSES, size=n, p=CLASS_PROBS).astype(np.int8)
    expr = _MEANS[y] + rng.normal(size=(n, len(_PARAMS))) * _JITTER
    p = {name: expr[:, i] for i, name in enumerate(_PARAMS)}
    p["eye_open"] = np.clip(p["eye_open"], 0.25, 2.0)
    p["mouth_open"] = np.clip(p["mouth_open"], 0.0, None)
    p["mouth_width"] = np.clip(p["mouth_width"], 0.10, 0.34)
    p["wrinkle"] = np.clip(p["wrinkle"], 0.0, None)
    p["folds"] = np.clip(p["folds"], 0.0, None)
    p["asym"] *= rng.choice([-1.0, 1.0], size=n)  # sneer on either side
    p["y"] = y
    # Identity: face shape, feature placement, skin and hair vary from person to person.
    p["face_a"] = rng.uniform(0.66, 0.82, n)
    p["face_b"] = rng.uniform(0.86, 1.0, n)
    p["eye_y"] = rng.normal(-0.18, 0.04, n)
    p["eye_dx"] = rng.normal(0.30, 0.025, n)
    p["mouth_y"] = rng.normal(0.50, 0.04, n)
    p["skin"] = rng.uniform(0.45, 0.85, n)
    p["bg"] = rng.uniform(0.0, 1.0, n)
    p["hair"] = rng.uniform(0.0, 0.5, n)
    p["hairline"] = rng.normal(-0.62, 0.08, n)
    p["feature_dark"] = rng.uniform(0.3, 0.6, n)
    # Pose and camera.
    p["angle"] = rng.normal(0.0, np.deg2rad(5.0), n)
    p["scale"] = rng.uniform(0.9, 1.08, n)
    p["tx"] = rng.normal(0.0, 0.03, n)
    p["ty"] = rng.normal(0.0, 0.03, n)
    p["flip"] = rng.random(n) < 0.5
    # Lighting, contrast and sensor noise.
    p["light_dir"] = rng.uniform(0, 2 * np.pi, n)
    p["light_amp"] = rng.uniform(0.0, 0.25, n)
    p["contrast"] = rng.uniform(0.55, 1.15, n)
    p["brightness"] = rng.normal(0.0, 0.08, n)
    p["noise"] = rng.uniform(0.01, 0.05, n)
    # Occluders: a bar (hand, glasses arm, watermark) and/or a blob.
    p["bar_on"] = rng.random(n) < 0.30
    p["bar_x0"], p["bar_y0"] = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    p["bar_angle"] = rng.uniform(0, np.pi, n)
    p["bar_width"] = rng.uniform(0.04, 0.14, n)
    p["bar_level"] = rng.uniform(0.0, 1.0, n)
    p["blob_on"] = rng.random(n) < 0.25
    p["blob_x"], p["blob_y"] = rng.uniform(-0.9, 0.9, n), rng.uniform(-0.9, 0.9, n)
    p["blob_r"] = rng.uniform(0.10, 0.28, n)
    p["blob_level"] = rng.uniform(0.0, 1.0, n)
    return p


def _render(p: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Draw the faces [n, 48, 48] uint8 whose parameters are p, layer by layer in face coordinates."""
    n = len(p["y"])
    c = {k: _col(v) for k, v in p.items() if k != "y"}
    gx, gy, u, v, px = _face_coordinates(c)
    img = _face_and_hair(c, u, v, px, n)
    dark = c["feature_dark"]
    img = _eyes_and_brows(img, c, u, v, px, dark)
    img = _nose(img, c, u, v, px, dark)
    img = _mouth(img, c, u, v, px, dark)
    img = _occluders(img, c, gx, gy)
    img = _lighting_and_noise(img, c, gx, gy, rng)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _face_coordinates(c: dict[str, np.ndarray]):
    """The image grid (gx, gy), each pixel's face coordinates (u, v) and one pixel in face units."""
    grid = (np.arange(IMAGE_SIZE, dtype=np.float32) - (IMAGE_SIZE - 1) / 2) / (IMAGE_SIZE / 2)
    gx, gy = grid[None, None, :], grid[None, :, None]
    # Image -> face coordinates: undo shift, rotation and scale (and mirror half of the faces).
    cos, sin = np.cos(c["angle"]), np.sin(c["angle"])
    dx, dy = gx - c["tx"], gy - c["ty"]
    u = (cos * dx + sin * dy) / c["scale"]
    v = (-sin * dx + cos * dy) / c["scale"]
    u = np.where(c["flip"] > 0, -u, u)
    px = 1.0 / (IMAGE_SIZE / 2) / c["scale"]  # one pixel in face units: edge softness

    return gx, gy, u, v, px


def _face_and_hair(c, u, v, px, n):
    # Background with a lighting gradient is added at the end; start with flat background.
    img = np.broadcast_to(c["bg"], (n, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    face = _soft(_ellipse(u, v, 0.0, 0.05, c["face_a"], c["face_b"]), 1.5 * px)
    img = img * (1 - face) + c["skin"] * face
    # Hair above the hairline, inside a slightly larger head ellipse.
    head = _soft(_ellipse(u, v, 0.0, 0.0, c["face_a"] + 0.08, c["face_b"] + 0.1), 1.5 * px)
    hair = head * _soft(v - c["hairline"] - 0.08 * u ** 2, 2 * px)
    img = img * (1 - hair) + c["hair"] * hair
    # Soft shading on the face so it is not flat.
    img = img - 0.08 * face * np.clip(np.abs(u) / c["face_a"], 0, 1) ** 2

    return img


def _eyes_and_brows(img, c, u, v, px, dark):
    # Eyes: dark almond whose height follows eye_open, with a darker iris.
    for side in (-1.0, 1.0):
        ex = side * c["eye_dx"]
        eye = _soft(_ellipse(u, v, ex, c["eye_y"], 0.11, 0.055 * c["eye_open"]), px)
        iris = eye * _soft(_ellipse(u, v, ex, c["eye_y"], 0.05, 0.05), px)
        img = img - dark * 0.8 * eye - dark * 0.5 * iris
        # Eyebrow: a thick arc above the eye; tilt moves the inner end (toward the nose).
        brow_y = c["eye_y"] - 0.17 - c["brow_raise"] - 0.03 * (c["eye_open"] - 1.0)
        brow = _soft(_curve(u, v, ex, brow_y, 0.14, -0.035, tilt=-side * c["brow_tilt"]) - 0.028, px)
        img = img - dark * brow
    return img


def _nose(img, c, u, v, px, dark):
    # Nose: a faint ridge and two nostrils; wrinkles across the bridge for disgust.
    ridge = _soft(np.abs(u - 0.04) - 0.012, px) * (np.abs(v - 0.1) < 0.13)
    img = img - 0.25 * dark * ridge
    for side in (-1.0, 1.0):
        img = img - 0.8 * dark * _soft(_ellipse(u, v, side * 0.06, 0.25, 0.035, 0.022), px)
    for k in range(3):
        line = _soft(_curve(u, v, 0.0, -0.06 + 0.045 * k, 0.08, 0.015) - 0.012, px)
        img = img - 0.6 * dark * np.clip(c["wrinkle"], 0, 1.5) * line
    return img


def _mouth(img, c, u, v, px, dark):
    # Mouth: upper-lip arc with curvature and asymmetry; an opening below it shows a dark cavity.
    mw, mo, my = c["mouth_width"], c["mouth_open"], c["mouth_y"]
    bend = -c["mouth_curve"]  # y grows downward: a smile bends the corners up
    lip = _soft(_curve(u, v, 0.0, my, mw, bend, tilt=c["asym"]) - 0.022, px)
    t = np.clip(u / mw, -1, 1)
    upper = my + bend * t ** 2 + c["asym"] * t
    lower = upper + mo * (1 - t ** 2) * (np.abs(u) < mw)
    inside = _soft(np.abs(u) - mw * 0.97, px)  # the cavity ends at the mouth corners
    cavity = _soft(upper - v, px) * _soft(v - lower, px) * inside
    teeth = cavity * _soft(v - (upper + 0.3 * mo), px) * (c["mouth_curve"] > 0.04)
    img = img - dark * lip - 1.1 * dark * cavity + 0.9 * dark * teeth
    # Nasolabial folds from beside the nose toward the mouth corners (smiles and sneers).
    for side in (-1.0, 1.0):
        fold = _soft(_curve(v, u, 0.42, side * (mw + 0.03), 0.14, side * 0.04) - 0.012, px)
        img = img - 0.5 * dark * np.clip(c["folds"], 0, 1.2) * fold * (np.abs(v - 0.4) < 0.15)

    return img


def _occluders(img, c, gx, gy):
    # Occluders, drawn in image coordinates (they do not move with the face).
    bar_d = np.abs((gx - c["bar_x0"]) * np.sin(c["bar_angle"]) - (gy - c["bar_y0"]) * np.cos(c["bar_angle"]))
    bar = _soft(bar_d - c["bar_width"], 0.04) * c["bar_on"]
    img = img * (1 - bar) + c["bar_level"] * bar
    blob = _soft(np.sqrt((gx - c["blob_x"]) ** 2 + (gy - c["blob_y"]) ** 2) - c["blob_r"], 0.06) * c["blob_on"]
    img = img * (1 - blob) + c["blob_level"] * blob

    return img


def _lighting_and_noise(img, c, gx, gy, rng):
    # Lighting gradient, contrast, brightness, noise.
    light = c["light_amp"] * (np.cos(c["light_dir"]) * gx + np.sin(c["light_dir"]) * gy)
    img = (img - 0.5) * c["contrast"] + 0.5 + c["brightness"] + light
    img = img + rng.normal(size=img.shape).astype(np.float32) * c["noise"]
    return img


def make_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` synthetic faces and their labels: (x uint8 [n,48,48], y int8 [n]); deterministic in seed."""
    if n < 0:
        raise FerkaggleError(f"the number of faces must be >= 0, not {n}")
    rng = np.random.default_rng(seed)
    params = _draw_params(n, rng)
    x = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, n, _CHUNK):
        part = {k: v[start:start + _CHUNK] for k, v in params.items()}
        x[start:start + _CHUNK] = _render(part, rng)
    return x, params["y"]


# Kaggle layout written by write_demo_competition.
DEMO_FILES = ("train.csv", "test.csv", "test_labels.csv")
DEFAULT_DEMO_TRAIN = 4000
DEFAULT_DEMO_TEST = 1000
DEMO_SEED = 0
"""The demo competition's own seed (the faces it draws), not the pipeline's core.constants.DEFAULT_SEED:
it stays fixed so the demo figures in README.md and docs/benchmarks.md reproduce."""

_PIXEL_TEXT = [str(i) for i in range(256)]


def _pixel_strings(x: np.ndarray) -> list[str]:
    table = _PIXEL_TEXT
    return [" ".join([table[p] for p in row]) for row in x.reshape(len(x), -1).tolist()]


def demo_present(out_dir: str | Path) -> bool:
    """True when `out_dir` already holds a complete demo competition."""
    return all((Path(out_dir) / name).is_file() for name in DEMO_FILES)


def write_demo_competition(out_dir: str | Path, n_train: int = DEFAULT_DEMO_TRAIN,
                           n_test: int = DEFAULT_DEMO_TEST, seed: int = DEMO_SEED,
                           overwrite: bool = False) -> list[Path]:
    """Write a synthetic competition in the Kaggle layout under out_dir; returns the files written.

    train.csv (emotion,pixels), test.csv (id,pixels), test_labels.csv (id,emotion). Test ids
    start at 1 so that they are not mistaken for row positions. Each file is written to a
    temporary sibling and renamed, so a reader never sees half a file; existing files are only
    replaced with overwrite=True (nothing the user has is clobbered silently).
    """
    out = Path(out_dir)
    if n_train < NUM_CLASSES or n_test < 1:
        raise FerkaggleError(f"demo needs at least {NUM_CLASSES} train and 1 test faces (got {n_train}, {n_test})")
    if not overwrite:
        existing = [str(out / f) for f in DEMO_FILES if (out / f).exists()]
        if existing:
            raise FerkaggleError(f"{', '.join(existing)} already exist; choose another folder or overwrite")
    # One draw for train and test so both come from the same distribution and the same seed.
    x, y = make_faces(n_train + n_test, seed=seed)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    ids = np.arange(1, n_test + 1)
    train_text = "emotion,pixels\n" + "".join(f"{label},{pix}\n" for label, pix in zip(y_train.tolist(), _pixel_strings(x_train)))
    test_text = "id,pixels\n" + "".join(f"{i},{pix}\n" for i, pix in zip(ids.tolist(), _pixel_strings(x_test)))
    labels_text = "id,emotion\n" + "".join(f"{i},{label}\n" for i, label in zip(ids.tolist(), y_test.tolist()))
    # train.csv last: a folder with train.csv is what layout detection looks for.
    written = [atomic_write_text(out / "test_labels.csv", labels_text),
               atomic_write_text(out / "test.csv", test_text),
               atomic_write_text(out / "train.csv", train_text)]
    return written
