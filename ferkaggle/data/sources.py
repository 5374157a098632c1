"""Source detection: which layout a folder, zip or file holds, and which files a read will open.

- `find_source(folder)`: detect the layout (Kaggle train.csv + test.csv, fer2013.csv /
  icml_face_data.csv, image folders), at the folder's level, then in zips and subfolders one
  level down; several candidates in different places are ambiguous and raise.
- `resolve_source(source, train=, test=, test_labels=)`: the one place that turns prepare's
  and read_source's arguments (a source, or explicit --train/--test files, and an optional
  test-labels file, else a test_labels.csv beside test.csv) into a `Source`. prepare
  fingerprints `Source.input_files()` before parsing anything, so its cache key covers exactly
  the files io.read_source then reads.

Nothing here parses a file's content (image folders are listed, not decoded).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data import images
from ferkaggle.data.images import ImageSet
from ferkaggle.data.records import (
    FER2013_NAMES,
    LAYOUT_FER2013,
    LAYOUT_IMAGES,
    LAYOUT_KAGGLE,
    TEST_LABEL_NAMES,
    TEST_NAMES,
    TRAIN_NAMES,
)
from ferkaggle.data.streams import FileRef, archive_errors

DEFAULT_FOLDER = Path("data")
DEMO_SUBFOLDER = "demo"
"""Where `--demo-if-missing` puts the demo competition; real data beside it takes precedence."""


@dataclass
class Source:
    """A detected layout: which files to read. Built by find_source or from explicit paths."""

    kind: str  # "kaggle" | "fer2013" | "images"
    location: Path  # the folder, zip or file that holds it
    train: FileRef | None = None  # kaggle: train.csv
    test: FileRef | None = None  # kaggle: test.csv
    test_labels: FileRef | None = None  # kaggle: optional id,emotion file
    table: FileRef | None = None  # fer2013: the single file
    images: ImageSet | None = None  # images: the image files
    notes: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return {"kaggle": LAYOUT_KAGGLE, "fer2013": LAYOUT_FER2013, "images": LAYOUT_IMAGES}[self.kind]

    def input_files(self) -> list[Path]:
        """The files on disk whose content decides what a read returns, in role order (train,
        test, test labels, table); an image layout on disk gives its folder (fingerprinted by listing)."""
        files: list[Path] = []
        for ref in (self.train, self.test, self.test_labels, self.table):
            if ref is not None and ref.path not in files:
                files.append(ref.path)
        if self.kind == "images" and not files:
            files = [self.images.zip_path] if self.images is not None and self.images.zip_path is not None else [self.location]
        return files


def _strip_gz(name: str) -> str:
    name = name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _pick_named(entries: dict[str, FileRef], names: tuple[str, ...]) -> FileRef | None:
    """The entry whose name (case-insensitive, .gz or not) is one of `names`, plain before .gz."""
    for wanted in names:
        matches = sorted((ref for key, ref in entries.items() if _strip_gz(key) == wanted), key=lambda r: r.gzipped)
        if matches:
            return matches[0]
    return None


def _sources_in_listing(location: Path, files: dict[str, FileRef], dirs: dict[str, ImageSet | None]) -> list[Source]:
    """Layouts present in one folder level: files maps lowercase name -> ref; dirs maps lowercase name -> image set builder."""
    found: list[Source] = []
    train, test = _pick_named(files, TRAIN_NAMES), _pick_named(files, TEST_NAMES)
    if train is not None and test is not None:
        found.append(Source("kaggle", location, train=train, test=test, test_labels=_pick_named(files, TEST_LABEL_NAMES)))
    for name in FER2013_NAMES:
        table = _pick_named(files, (name,))
        if table is not None:
            found.append(Source("fer2013", location, table=table))
    if "images" in dirs and dirs["images"] is not None:
        found.append(Source("images", location, images=dirs["images"]))
    return found


def _sources_in_dir(folder: Path) -> list[Source]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise FerkaggleError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    files = {p.name.lower(): FileRef(p) for p in entries if p.is_file()}
    dirs = {"images": images.find_image_set_in_dir(folder)}
    return _sources_in_listing(folder, files, dirs)


def _sources_in_zip(zip_path: Path) -> list[Source]:
    """Layouts inside a zip, at the shallowest folder level that holds one."""
    with archive_errors(FileRef(zip_path)):
        with zipfile.ZipFile(zip_path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    by_folder: dict[str, dict[str, FileRef]] = {}
    for name in names:
        posix = PurePosixPath(name)
        if any(part.startswith((".", "__MACOSX")) for part in posix.parts):
            continue
        by_folder.setdefault(str(posix.parent), {})[posix.name.lower()] = FileRef(zip_path, name)
    image_sets = images.find_image_sets_in_zip(zip_path, names)
    prefixes = sorted(set(by_folder) | set(image_sets), key=lambda p: (0 if p == "." else p.count("/") + 1, p))
    for prefix in prefixes:
        found = _sources_in_listing(zip_path, by_folder.get(prefix, {}), {"images": image_sets.get(prefix)})
        if found:
            return found
    return []


def _choose(found: list[Source], where: Path) -> Source:
    best = found[0]
    for other in found[1:]:
        best.notes.append(f"{where} also holds {other.description}; reading {best.description} "
                          f"(pass the other file explicitly to use it instead)")
    return best


def _skip_subfolder(path: Path) -> bool:
    return path.name.startswith((".", "__")) or path.name.lower() in {"prepared"}


class NoDataFound(FerkaggleError):
    """A folder or zip holds no competition data in any known layout (`--demo-if-missing` acts on this)."""


def find_source(folder: Path) -> Source:
    """Detect which layout a folder, zip or file holds.

    A folder is searched at its own level first, then in zips at its level and in its
    immediate subfolders (not `prepared/` or hidden ones); if layouts turn up in several
    places, that is ambiguous and raises. Raises FerkaggleError naming what was looked for.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FerkaggleError(f"{folder}: no such file or folder; expected a folder, .zip or fer2013.csv "
                             "holding the competition data (train.csv + test.csv, or fer2013.csv)")
    if folder.is_file():
        return _source_from_file(folder)
    found = _sources_in_dir(folder)
    if found:
        return _choose(found, folder)
    places: list[tuple[Path, list[Source]]] = []
    try:
        children = sorted(folder.iterdir())
    except OSError as exc:
        raise FerkaggleError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    for child in children:
        if child.is_file() and child.suffix.lower() == ".zip":
            inner = _sources_in_zip(child)
        elif child.is_dir() and not _skip_subfolder(child):
            inner = _sources_in_dir(child)
        else:
            continue
        if inner:
            places.append((child, inner))
    if len(places) > 1:
        # A generated demo never competes with the user's own data.
        places = [(place, inner) for place, inner in places if place.name != DEMO_SUBFOLDER] or places
    if len(places) > 1:
        listed = "; ".join(f"{place} ({inner[0].description})" for place, inner in places)
        raise FerkaggleError(f"{folder}: several data sets found: {listed}; pass the one to use explicitly")
    if places:
        return _choose(places[0][1], places[0][0])
    raise NoDataFound(
        f"{folder}: no competition data found. Looked for train.csv + test.csv, fer2013.csv, "
        f"icml_face_data.csv (each also as .csv.gz), image folders train/<class>/ + test/, "
        f"and the same inside a .zip or one subfolder down")


def _source_from_file(path: Path) -> Source:
    lower = path.name.lower()
    if lower.endswith(".zip"):
        found = _sources_in_zip(path)
        if not found:
            raise NoDataFound(
                f"{path}: no competition data found in the zip. Looked for train.csv + test.csv, fer2013.csv, "
                f"icml_face_data.csv (each also as .csv.gz) and image folders train/<class>/ + test/")
        return _choose(found, path)
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        raise FerkaggleError(f"{path}: tar archives are not read directly; extract it (tar xzf) and pass the folder")
    # Any other single file must be fer2013-style (it holds train and test); its header decides.
    return Source("fer2013", path, table=FileRef(path))


# --------------------------------------------------------------------------------------------

def _explicit_source(train: Path | None, test: Path | None, test_labels: Path | None) -> Source:
    """Explicit Kaggle-layout files; without test_labels, a test_labels.csv beside test.csv is used."""
    if train is None or test is None:
        given, needed = ("train", "test") if train is not None else ("test", "train")
        raise FerkaggleError(f"a {given} file was given without a {needed} file: pass both")
    for path in (train, test) + ((test_labels,) if test_labels is not None else ()):
        if not Path(path).exists():
            raise FerkaggleError(f"{path}: no such file")
        if Path(path).is_dir():
            raise FerkaggleError(f"{path}: is a folder, expected a CSV file (.csv or .csv.gz)")
    labels_ref = FileRef(Path(test_labels)) if test_labels is not None else None
    if labels_ref is None:
        beside = Path(test).parent
        candidates = {p.name.lower(): FileRef(p) for p in beside.glob("*") if p.is_file()}
        labels_ref = _pick_named(candidates, TEST_LABEL_NAMES)
    return Source("kaggle", Path(train).parent, train=FileRef(Path(train)), test=FileRef(Path(test)), test_labels=labels_ref)


def resolve_source(source: Path | None = None, *, train: Path | None = None, test: Path | None = None,
                   test_labels: Path | None = None) -> Source:
    """The Source a read of these arguments opens: explicit train/test files, else `source` (a
    folder, zip or fer2013-style file) searched with find_source, else the folder `data/`.
    `test_labels` (an id,emotion file) labels a Kaggle test set."""
    if source is not None and (train is not None or test is not None):
        raise FerkaggleError("give either a source (folder, zip or fer2013.csv) or train/test files, not both")
    if train is not None or test is not None:
        return _explicit_source(None if train is None else Path(train), None if test is None else Path(test),
                                None if test_labels is None else Path(test_labels))
    found = find_source(Path(source) if source is not None else DEFAULT_FOLDER)
    if test_labels is not None:
        if found.kind != "kaggle":
            raise FerkaggleError(f"test labels only apply to the Kaggle layout; {found.location} holds {found.description}")
        if not Path(test_labels).is_file():
            raise FerkaggleError(f"{test_labels}: no such file")
        found.test_labels = FileRef(Path(test_labels))
    return found
