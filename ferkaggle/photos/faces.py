"""Faces in photos: read any image, find the faces, cut each to a 48x48 grey crop.

Inputs: image files or bytes (JPEG, PNG, WebP, BMP, GIF, TIFF; any size; colour, grey or
with alpha; EXIF rotation applied as a viewer would). Outputs: the photo as RGB uint8
[H, W, 3], face boxes (x, y, w, h) in that photo's pixels, and uint8 [48, 48] crops that
look like the training faces.

Detectors (`DETECTORS`):
- ``haar``: OpenCV's frontal-face Haar cascade, whose XML file ships inside the
  `opencv-python-headless` 4.x wheel (`cv2.data.haarcascades`; the 5.0 wheels ship
  neither the files nor `CascadeClassifier`, hence the `<5` pin). Fast, frontal faces only.
- ``mtcnn``: the `mtcnn` package (optional extra `ferkaggle[mtcnn]`), whose weights ship in
  its wheel. Slower, finds turned and smaller faces.

The crop: a square centred on the detector's box, its side the box's larger side times
(1 + 2 x margin), padded by repeating the edge where it leaves the photo, converted to grey
and resized with Lanczos, exactly as `ferkaggle prepare` makes image-folder faces 48x48
(FER2013's faces are loose crops that show the whole chin and some hair; Haar boxes are
tighter, which the default margin of 0.15 makes up for).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ferkaggle.core.constants import IMAGE_SIZE
from ferkaggle.core.errors import FerkaggleError

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_MARGIN = 0.15
MAX_PIXELS = 80_000_000  # refuse decompression bombs; a 12k x 6k photo is 72 Mpx
Box = tuple[int, int, int, int]  # x, y, w, h in photo pixels


def read_photo(source: bytes | str | Path, name: str | None = None) -> np.ndarray:
    """A photo as RGB uint8 [H, W, 3]; a FerkaggleError naming it when it is not a readable image."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes) and not source:
        raise FerkaggleError(f"{label}: the file is empty; expected an image (jpg, png, webp, bmp)")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise FerkaggleError(f"{label}: {image.width}x{image.height} pixels is too large "
                                     f"(at most {MAX_PIXELS // 1_000_000} Mpx)")
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FerkaggleError:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, at twice its 89 Mpx warning, comes first
        raise FerkaggleError(f"{label}: too large to decode (over {MAX_PIXELS // 1_000_000} Mpx)") from None
    except UnidentifiedImageError:
        raise FerkaggleError(f"{label}: not an image Pillow can read; expected jpg, png, webp or bmp") from None
    except FileNotFoundError:
        raise FerkaggleError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise FerkaggleError(f"{label}: is a folder, not an image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise FerkaggleError(f"{label}: unreadable or damaged image ({type(exc).__name__}: {exc})") from None


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> grey uint8 with Pillow's ITU-R 601 weights (what convert("L") gives in training)."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8)


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]: ...


class HaarDetector:
    """OpenCV's frontal-face cascade over the whole photo; boxes sorted left to right.

    Photos up to `max_side` px on their longer side are searched at full size, larger ones at that
    size. Faces from `min_face` px wide (at the searched size; the cascade's own window is 24 px)
    up to the photo's short side are looked for, so a 50 px face in a 2048x1536 group photo is
    found. The cascade groups its hits at each scale; `suppress_overlaps` then drops a box that
    mostly repeats a stronger one (a face found again inside itself or at another scale).
    """

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, max_side: int = 2048, min_face: int = 24):
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FerkaggleError(f"OpenCV could not load its face cascade {path}; "
                                 "reinstall opencv-python-headless 4.x (pip install 'opencv-python-headless<5')")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.max_side = max_side
        self.min_face = max(24, min_face)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        # local contrast (CLAHE), not a global histogram: over a whole photo that is ruled by the
        # background, and in a group photo on a plain backdrop it flattened small faces past finding
        gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
        found, neighbours = self.cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_face, self.min_face))
        boxes = [tuple(int(round(v / scale)) for v in box) for box in np.asarray(found).reshape(-1, 4)]
        kept = suppress_overlaps(boxes, [float(n) for n in np.asarray(neighbours).reshape(-1)])
        return sorted(kept, key=lambda b: (b[0], b[1]))


def suppress_overlaps(boxes: list[Box], scores: list[float], max_overlap: float = 0.5) -> list[Box]:
    """Greedy non-maximum suppression: strongest first, a box is dropped when it shares more than
    `max_overlap` of the smaller box's area with a box already kept (so a face found again inside
    a larger box of itself goes too, which plain IoU would keep)."""
    kept: list[Box] = []
    for index in sorted(range(len(boxes)), key=lambda i: (-scores[i], -boxes[i][2] * boxes[i][3])):
        x, y, w, h = boxes[index]
        for kx, ky, kw, kh in kept:
            inter = max(0, min(x + w, kx + kw) - max(x, kx)) * max(0, min(y + h, ky + kh) - max(y, ky))
            if inter > max_overlap * min(w * h, kw * kh):
                break
        else:
            kept.append(boxes[index])
    return kept


class MtcnnDetector:
    """The `mtcnn` package's detector (weights ship in its wheel), with its own confidence thresholds."""

    name = "mtcnn"

    def __init__(self):
        try:
            from mtcnn import MTCNN
        except ImportError:
            raise FerkaggleError("--detector mtcnn needs the mtcnn package: pip install 'ferkaggle[mtcnn]'") from None
        self.model = MTCNN()

    def detect(self, rgb: np.ndarray) -> list[Box]:
        boxes = [tuple(int(v) for v in found["box"]) for found in self.model.detect_faces(rgb)]
        return sorted(boxes, key=lambda b: (b[0], b[1]))


DETECTORS: dict[str, Callable[[], Detector]] = {"haar": HaarDetector, "mtcnn": MtcnnDetector}


def make_detector(name: str, min_neighbors: int | None = None) -> Detector:
    """A detector by name; `min_neighbors` (haar only) trades missed faces (higher) for false ones (lower)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise FerkaggleError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    if min_neighbors is not None and name == "haar":
        if min_neighbors < 1:
            raise FerkaggleError(f"--min-neighbors must be at least 1, not {min_neighbors}")
        return HaarDetector(min_neighbors=min_neighbors)
    return factory()


def square_box(box: Box, margin: float = DEFAULT_MARGIN) -> Box:
    """The square around a detector box: centred on it, side = larger side x (1 + 2 margin)."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side, side


def crop_face(gray: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A uint8 [48, 48] face from a grey photo: square crop with margin, edge-padded, Lanczos-resized."""
    from PIL import Image

    x, y, side, _ = square_box(box, margin)
    height, width = gray.shape
    pad = max(0, -x, -y, x + side - width, y + side - height)
    if pad:
        gray = np.pad(gray, pad, mode="edge")
        x, y = x + pad, y + pad
    crop = Image.fromarray(np.ascontiguousarray(gray[y:y + side, x:x + side]))
    if crop.size != (IMAGE_SIZE, IMAGE_SIZE):
        crop = crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.uint8)


@dataclass
class FoundFaces:
    boxes: list[Box]
    crops: np.ndarray  # uint8 [n, 48, 48]
    seconds: float     # detection + cropping time


def find_faces(rgb: np.ndarray, detector: Detector, margin: float = DEFAULT_MARGIN) -> FoundFaces:
    import time

    t0 = time.perf_counter()
    boxes = detector.detect(rgb)
    gray = to_gray(rgb)
    crops = np.stack([crop_face(gray, b, margin) for b in boxes]) if boxes else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return FoundFaces(boxes, crops, time.perf_counter() - t0)


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given (any extension: a non-image is reported later) and, from folders, their
    image files (by extension, recursively, sorted; hidden files skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in PHOTO_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            out.extend(found)
        else:
            out.append(p)
    return out
