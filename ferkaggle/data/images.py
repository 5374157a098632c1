"""Image-folder layouts: find `train/<class>/*` + `test/<class>/*` (or flat `test/*`) and read them.

Inputs: a folder on disk or a zip (the layout may sit in a subfolder of the zip). Class folder
names are the seven emotions in any case. Images may be PNG or JPEG (or anything Pillow reads) of
any size or colour mode. Hidden files (.DS_Store, ._*) and __MACOSX folders are ignored.

Output: a `RawData` whose faces are 48x48 grayscale uint8 (Pillow convert("L"), then a Lanczos
resize only when the image is not already 48x48, so lossless 48x48 PNGs keep their exact pixels).
Files are sorted by path for determinism. Test ids come from the file names: when every test
file's stem is a whole number and no two are equal (`123.png` -> id 123), the stem is the id;
otherwise the id is the file's position (from 0) in that sorted path order, and the manifest
lists each test file with its id. An unreadable test image is an error even with
`--on-bad-row skip`: a dropped test image would leave its id without a prediction.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ferkaggle.core.constants import EMOTIONS, IMAGE_SIZE
from ferkaggle.core.errors import DataError, FerkaggleError
from ferkaggle.data.records import LAYOUT_IMAGES, BadRows, RawData

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm")
_CLASS_INDEX = {name: index for index, name in enumerate(EMOTIONS)}


@dataclass
class ImageSet:
    """Which image files make up a data set; `member` refs point into `zip_path` when set."""

    location: Path  # the folder (on disk) or the zip holding the layout
    train_root: str  # display form of the train folder
    test_root: str
    train: list[tuple[int, str]] = field(default_factory=list)  # (label, path or zip member), sorted by path
    test: list[tuple[int | None, str]] = field(default_factory=list)  # label None for a flat test folder
    zip_path: Path | None = None
    ignored: list[str] = field(default_factory=list)  # non-image files seen


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() in {"thumbs.db", "desktop.ini"}


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _class_of(folder_name: str, where: str) -> int:
    index = _CLASS_INDEX.get(folder_name.strip().lower())
    if index is None:
        raise FerkaggleError(f"{where}: class folder {folder_name!r} is not one of {', '.join(EMOTIONS)}")
    return index


def _child(folder: Path, name: str) -> Path | None:
    """folder/name matched case-insensitively, if it is a folder."""
    try:
        for entry in folder.iterdir():
            if entry.name.lower() == name and entry.is_dir():
                return entry
    except OSError:
        return None
    return None


def find_image_set_in_dir(folder: Path) -> ImageSet | None:
    """An ImageSet if `folder` holds train/<class>/ and test/ folders, else None."""
    train_dir, test_dir = _child(folder, "train"), _child(folder, "test")
    if train_dir is None or test_dir is None:
        return None
    class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir() and not _is_hidden(p.name))
    if not class_dirs:
        return None
    image_set = ImageSet(folder, str(train_dir), str(test_dir))
    for class_dir in class_dirs:
        label = _class_of(class_dir.name, str(train_dir))
        for path in sorted(class_dir.iterdir()):
            _add(image_set, image_set.train, label, path.name, str(path), path.is_file())
    test_class_dirs = sorted(p for p in test_dir.iterdir() if p.is_dir() and not _is_hidden(p.name))
    flat = sorted(p for p in test_dir.iterdir() if p.is_file() and _is_image(p.name) and not _is_hidden(p.name))
    if test_class_dirs and flat:
        raise FerkaggleError(f"{test_dir}: holds both class folders and loose images; use one or the other")
    for class_dir in test_class_dirs:
        label = _class_of(class_dir.name, str(test_dir))
        for path in sorted(class_dir.iterdir()):
            _add(image_set, image_set.test, label, path.name, str(path), path.is_file())
    for path in sorted(test_dir.iterdir()):
        if path.is_file():
            _add(image_set, image_set.test, None, path.name, str(path), True)
    _sort(image_set)
    return image_set


def _add(image_set: ImageSet, target: list, label: int | None, name: str, where: str, is_file: bool) -> None:
    if not is_file or _is_hidden(name):
        return
    if _is_image(name):
        target.append((label, where))
    else:
        image_set.ignored.append(where)


def _sort(image_set: ImageSet) -> None:
    image_set.train.sort(key=lambda item: item[1])
    image_set.test.sort(key=lambda item: item[1])


def find_image_sets_in_zip(zip_path: Path, names: list[str]) -> dict[str, ImageSet]:
    """Image layouts inside a zip, keyed by the folder (posix, "." for the top) holding train/ and test/."""
    sets: dict[str, ImageSet] = {}
    test_class_prefixes: set[str] = set()
    flat_test_prefixes: set[str] = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if any(_is_hidden(part) for part in parts):
            continue
        for i, part in enumerate(parts[:-1]):
            lowered = part.lower()
            if lowered not in ("train", "test"):
                continue
            prefix = "/".join(parts[:i]) or "."
            image_set = sets.setdefault(prefix, ImageSet(zip_path, f"{zip_path}:{'/'.join(parts[:i + 1])}",
                                                         f"{zip_path}:{'/'.join(parts[:i] + ('test',))}", zip_path=zip_path))
            where = f"{zip_path}:{'/'.join(parts[:i + 1])}"
            if lowered == "train" and len(parts) == i + 3:
                _add(image_set, image_set.train, _class_of(parts[i + 1], where), parts[-1], name, True)
            elif lowered == "test" and len(parts) == i + 3:
                test_class_prefixes.add(prefix)
                _add(image_set, image_set.test, _class_of(parts[i + 1], where), parts[-1], name, True)
            elif lowered == "test" and len(parts) == i + 2:
                flat_test_prefixes.add(prefix)
                _add(image_set, image_set.test, None, parts[-1], name, True)
            break
    found: dict[str, ImageSet] = {}
    for prefix, image_set in sets.items():
        if not image_set.train or not image_set.test:
            continue
        if prefix in test_class_prefixes and prefix in flat_test_prefixes:
            raise FerkaggleError(f"{image_set.test_root}: holds both class folders and loose images; use one or the other")
        _sort(image_set)
        found[prefix] = image_set
    return found


def load_face(data: bytes | str | Path) -> np.ndarray:
    """One image (bytes or a path) as a uint8 [48,48] grayscale face. Raises Pillow's errors."""
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        gray = image.convert("L")
        if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
            # Lanczos keeps faces sharp when shrinking and is smooth when enlarging.
            gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(gray, dtype=np.uint8)


def test_ids_from_names(paths: list[str]) -> tuple[np.ndarray, str]:
    """(int64 ids, how they were formed) for test images in sorted path order (module docstring)."""
    stems = [PurePosixPath(p).stem for p in paths]
    if stems and all(s.isascii() and s.isdigit() for s in stems):
        ids = np.array([int(s) for s in stems], np.int64)
        if len(np.unique(ids)) == len(ids):
            return ids, "the test image's file name (its stem is the id, e.g. 123.png -> 123)"
    return (np.arange(len(paths), dtype=np.int64),
            "the test image's position (from 0) in sorted path order, since not every file name is a distinct "
            "whole number; the manifest lists each test file with its id")


def _read_faces(image_set: ImageSet, items: list[tuple[int | None, str]], bad_rows: BadRows, archive,
                test: bool = False) -> tuple[np.ndarray, list[int | None]]:
    from PIL import Image

    faces = np.zeros((len(items), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    keep = np.ones(len(items), bool)
    for row, (_, where) in enumerate(items):
        display = f"{image_set.zip_path}:{where}" if archive is not None else where
        try:
            faces[row] = load_face(archive.read(where) if archive is not None else where)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, zipfile.BadZipFile) as exc:
            keep[row] = False
            bad_rows.report(display, None, f"unreadable image ({type(exc).__name__}: {exc})", test_row=test)
    labels = [label for (label, _), kept in zip(items, keep) if kept]
    return faces[keep], labels


def read_image_set(image_set: ImageSet, bad_rows: BadRows, notes: list[str]) -> RawData:
    """Read every image of an ImageSet into a RawData (see records.RawData)."""
    if image_set.ignored:
        shown = ", ".join(image_set.ignored[:3]) + (", ..." if len(image_set.ignored) > 3 else "")
        notes.append(f"ignored {len(image_set.ignored):,} non-image file(s): {shown}")
    archive = None
    try:
        if image_set.zip_path is not None:
            try:
                archive = zipfile.ZipFile(image_set.zip_path)
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(image_set.zip_path, f"not a valid zip file or damaged ({exc})") from None
        x, y = _read_faces(image_set, image_set.train, bad_rows, archive)
        x_test, test_labels = _read_faces(image_set, image_set.test, bad_rows, archive, test=True)
    finally:
        if archive is not None:
            archive.close()
    labelled_test = len(test_labels) > 0 and test_labels[0] is not None
    test_files = [where for _, where in image_set.test]
    test_ids, id_source = test_ids_from_names(test_files)
    notes.append(f"test ids: {id_source}")
    if image_set.zip_path is not None:
        sources = [image_set.zip_path]
    else:
        sources = [Path(image_set.train_root), Path(image_set.test_root)]
    return RawData(
        layout=LAYOUT_IMAGES,
        sources=sources,
        x=x,
        y=np.asarray(y, np.int8),
        x_test=x_test,
        test_ids=test_ids,
        y_test=np.asarray(test_labels, np.int8) if labelled_test else None,
        predefined_val=None,
        test_id_source=id_source,
        test_files=test_files,
    )
