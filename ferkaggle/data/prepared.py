"""The prepared-data store: the one place that knows its on-disk layout.

`ferkaggle prepare` writes, every later stage reads:

    data/prepared/<key>/
      manifest.json   sources + sha256, layout, options, class counts, duplicates, fingerprints
      x.npy           uint8 [N,48,48]  labelled rows: training folds + holdout-val, source order
      y.npy           int8  [N]        labels 0..6
      fold.npy        int8  [N]        -1 = holdout-val, 0..k-1 = CV fold of a training row
      x_test.npy      uint8 [M,48,48]  test faces, in test-file order
      test_ids.npy    int64 [M]        submission ids
      y_test.npy      int8  [M]        only when the source labels its test set
      groups.npy      int64 [N]        duplicate group of each labelled row (rows of one image share
                                       an id, its first row's index); the split never separates a group
      cache/          arrays later stages derive from the set (HOG features): `Prepared.cache_path`
    data/prepared/LATEST              name of the most recently prepared <key>
    data/prepared/.hashes.json        sha256 of input files by (path, size, mtime), so prepare's
                                      cache check reads no file twice

The data fingerprint hashes the arrays; the split fingerprint hashes labels, folds and
test ids. Runs record both, so scores are only compared and combined within one split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle.core.constants import DEFAULT_SEED, IMAGE_SIZE, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_dir, atomic_save_npy, atomic_write_json, atomic_write_text
from ferkaggle.data.dedupe import exact_hashes
from ferkaggle.data.splits import HOLDOUT, stopping_mask

DEFAULT_ROOT = Path("data/prepared")
CACHE_DIR = "cache"  # inside a prepared set; rebuilding the set replaces its folder, this included


@dataclass
class Prepared:
    path: Path
    manifest: dict[str, Any]
    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    x_test: np.ndarray
    test_ids: np.ndarray
    y_test: np.ndarray | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def train_idx(self) -> np.ndarray:
        """Row indices (into x) of the CV training rows, in source order."""
        if "train" not in self._cache:
            self._cache["train"] = np.flatnonzero(self.fold >= 0)
        return self._cache["train"]

    @property
    def val_idx(self) -> np.ndarray:
        """Row indices (into x) of the holdout-validation rows, in source order."""
        if "val" not in self._cache:
            self._cache["val"] = np.flatnonzero(self.fold == HOLDOUT)
        return self._cache["val"]

    @property
    def x_train(self) -> np.ndarray:
        return self.x[self.train_idx]

    @property
    def y_train(self) -> np.ndarray:
        return self.y[self.train_idx]

    @property
    def train_folds(self) -> np.ndarray:
        """Fold (0..k-1) of each training row, aligned with x_train."""
        return self.fold[self.train_idx]

    @property
    def groups(self) -> np.ndarray:
        """int64 [N] duplicate group of each labelled row: rows showing the same image share an id.

        Read from groups.npy when prepare wrote one; otherwise exact copies (equal bytes) are grouped.
        """
        if "groups" not in self._cache:
            if (self.path / "groups.npy").is_file():
                self._cache["groups"] = np.load(self.path / "groups.npy", allow_pickle=False).astype(np.int64)
            else:
                self._cache["groups"] = np.unique(exact_hashes(np.asarray(self.x)), return_inverse=True)[1].reshape(-1)
        return self._cache["groups"]

    def stopping_split(self, seed: int = DEFAULT_SEED, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """(fit_idx, stop_idx): row indices into x of the training rows a CNN fits on and of the
        rows it early-stops and picks its checkpoint on (`splits.stopping_mask`). The holdout-val
        rows are in neither, so the holdout score stays free of selection."""
        train = self.train_idx
        stop = stopping_mask(np.asarray(self.y)[train], self.groups[train], fraction, seed)
        return train[~stop], train[stop]

    @property
    def cache_dir(self) -> Path:
        """The folder where stages keep arrays derived from this set (not created until written)."""
        return self.path / CACHE_DIR

    def cache_path(self, name: str) -> Path:
        """Where a stage keeps a derived array called `name` (e.g. HOG features keyed by settings and
        data fingerprint). A rebuild of the set replaces its whole folder, so no stale entry survives."""
        return self.cache_dir / name

    @property
    def x_val(self) -> np.ndarray:
        return self.x[self.val_idx]

    @property
    def y_val(self) -> np.ndarray:
        return self.y[self.val_idx]

    @property
    def num_folds(self) -> int:
        return int(self.fold.max()) + 1 if (self.fold >= 0).any() else 0

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def data_fingerprint(self) -> str:
        return self.manifest["data_fingerprint"]

    @property
    def split_fingerprint(self) -> str:
        return self.manifest["split_fingerprint"]


def array_fingerprint(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def check_arrays(x, y, fold, x_test, test_ids, y_test) -> None:
    """Internal consistency of a prepared set; a failure here is a bug, not user input."""
    n, m = len(x), len(x_test)
    assert x.dtype == np.uint8 and x.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE), x.shape
    assert x_test.dtype == np.uint8 and x_test.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE), x_test.shape
    assert y.shape == (n,) and fold.shape == (n,) and test_ids.shape == (m,)
    assert y.size == 0 or (y.min() >= 0 and y.max() < NUM_CLASSES)
    assert y_test is None or (y_test.shape == (m,) and (y_test.size == 0 or y_test.max() < NUM_CLASSES))


def write_prepared(
    root: str | Path,
    key: str,
    *,
    x: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    x_test: np.ndarray,
    test_ids: np.ndarray,
    y_test: np.ndarray | None,
    manifest: dict[str, Any],
    groups: np.ndarray | None = None,
) -> Prepared:
    """Write a prepared set atomically under root/key and point LATEST at it."""
    x, y, fold = np.asarray(x, np.uint8), np.asarray(y, np.int8), np.asarray(fold, np.int8)
    x_test, test_ids = np.asarray(x_test, np.uint8), np.asarray(test_ids, np.int64)
    y_test = None if y_test is None else np.asarray(y_test, np.int8)
    check_arrays(x, y, fold, x_test, test_ids, y_test)
    manifest = dict(manifest)
    manifest["key"] = key
    manifest["data_fingerprint"] = array_fingerprint(x, y, x_test, test_ids, y_test)
    manifest["split_fingerprint"] = array_fingerprint(y, fold, test_ids)
    manifest["shapes"] = {"labelled": int(len(x)), "train": int((fold >= 0).sum()),
                          "val": int((fold == HOLDOUT).sum()), "test": int(len(x_test))}
    root = Path(root)
    final = root / key
    with atomic_dir(final) as tmp:
        if groups is not None:
            groups = np.asarray(groups, np.int64)
            assert groups.shape == (len(x),), groups.shape
        for name, arr in (("x", x), ("y", y), ("fold", fold), ("x_test", x_test), ("test_ids", test_ids), ("y_test", y_test),
                          ("groups", groups)):
            if arr is not None:
                atomic_save_npy(tmp / f"{name}.npy", arr)
        atomic_write_json(tmp / "manifest.json", manifest)
    set_latest(root, key)
    return load_prepared(final)


def set_latest(root: str | Path, key: str) -> None:
    """Point root/LATEST at the prepared set `key` (what later stages use by default)."""
    atomic_write_text(Path(root) / "LATEST", key + "\n")


HASH_CACHE = ".hashes.json"


def load_hash_cache(root: str | Path) -> dict[str, Any]:
    """prepare's input-file hashes, {resolved path: {"stamp": [size, mtime_ns], "sha256": ...}}; {} if none."""
    try:
        return json.loads((Path(root) / HASH_CACHE).read_text())
    except (OSError, ValueError):
        return {}


def save_hash_cache(root: str | Path, cache: dict[str, Any] | None) -> None:
    """Save the hashes (None: unchanged, nothing written); a failure only costs re-hashing next time."""
    if cache is not None:
        try:
            atomic_write_json(Path(root) / HASH_CACHE, cache)
        except OSError:
            pass


def latest_key(root: str | Path = DEFAULT_ROOT) -> str | None:
    pointer = Path(root) / "LATEST"
    if not pointer.is_file():
        return None
    key = pointer.read_text().strip()
    return key or None


def current_split_fingerprint(root: str | Path = DEFAULT_ROOT) -> str | None:
    """Split fingerprint of the latest prepared data (what `best` and the leaderboard rank within), if any."""
    try:
        folder = resolve_prepared_path(None, root)
        return json.loads((folder / "manifest.json").read_text())["split_fingerprint"]
    except (FerkaggleError, OSError, ValueError, KeyError):
        return None


def resolve_prepared_path(path: str | Path | None = None, root: str | Path = DEFAULT_ROOT) -> Path:
    """A prepared folder from an explicit path, a key under root, or LATEST."""
    if path is not None:
        p = Path(path)
        if (p / "manifest.json").is_file():
            return p
        if (Path(root) / str(path) / "manifest.json").is_file():
            return Path(root) / str(path)
        raise FerkaggleError(f"{path}: not a prepared data folder (no manifest.json); run `ferkaggle prepare` first")
    key = latest_key(root)
    if key is None or not (Path(root) / key / "manifest.json").is_file():
        raise FerkaggleError(f"no prepared data in {root}/: run `ferkaggle prepare` first")
    return Path(root) / key


def load_prepared(path: str | Path | None = None, root: str | Path = DEFAULT_ROOT, mmap: bool = False) -> Prepared:
    folder = resolve_prepared_path(path, root)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        mode = "r" if mmap else None

        def load(name: str) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)

        y_test = load("y_test") if (folder / "y_test.npy").is_file() else None
        return Prepared(folder, manifest, load("x"), load("y"), load("fold"), load("x_test"), load("test_ids"), y_test)
    except (OSError, ValueError, KeyError) as exc:
        raise FerkaggleError(f"{folder}: prepared data is damaged ({exc}); run `ferkaggle prepare` again") from None
