"""The prepare stage: raw competition files -> validated arrays + split, cached by fingerprint.

What: read_source -> duplicate groups, conflicting labels and blank images (dedupe.py) ->
splits.make_folds: the holdout-val (stratified, or fer2013's PublicTest rows) and the k folds,
both drawn by duplicate group so no image is on two sides of a split (with --dedupe, the rows of
conflicting-label images and blank labelled images are left out) -> leak check of the result ->
write_prepared(root, key, ...) with the group ids (groups.npy) and a manifest of all the counts.
Training rows whose image is also a test image stay in training (they are only counted).

Inputs: a source (folder, zip, fer2013.csv) or explicit train/test files, plus options.
Outputs: the Prepared set under <out>/<key>/ (layout in prepared.py) and a PrepareReport to show.

The key is a fingerprint of the source files (sha256 of each) and of every option that changes
the output, so a re-run on unchanged inputs finds the folder and returns at once without
parsing anything; sha256s are themselves cached on (path, size, mtime) in the prepared root
(prepared.load_hash_cache) so the check costs a few stat calls. --force rebuilds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkaggle import __version__
from ferkaggle.core.constants import DEFAULT_SEED, EMOTIONS, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import sha256_file, sha256_json
from ferkaggle.data.dedupe import DuplicateReport, find_duplicates, first_row_ids, leak_check
from ferkaggle.data.io import read_source
from ferkaggle.data.prepared import (
    DEFAULT_ROOT,
    Prepared,
    load_hash_cache,
    load_prepared,
    save_hash_cache,
    set_latest,
    write_prepared,
)
from ferkaggle.data.records import BadRowMode, RawData, check_on_bad_row
from ferkaggle.data.sources import DEFAULT_FOLDER, DEMO_SUBFOLDER, NoDataFound, find_source, resolve_source
from ferkaggle.data.splits import HOLDOUT, UNASSIGNED, make_folds
from ferkaggle.data.synthetic import (
    DEFAULT_DEMO_TEST,
    DEFAULT_DEMO_TRAIN,
    DEMO_SEED,
    demo_present,
    write_demo_competition,
)

# Bump when prepare's output for the same inputs and options changes: old caches are then ignored.
PREPARE_VERSION = 2  # 2: splits by duplicate group, groups.npy, new --dedupe
MAX_SKIPPED_LISTED = 1000  # skipped rows listed in the manifest (the count is always exact)


@dataclass(frozen=True)
class PrepareOptions:
    val_size: float = 0.1  # holdout-val share of the labelled rows (a whole number >= 1 is a row count)
    folds: int = 5  # CV folds over the remaining training rows (>= 2)
    seed: int = DEFAULT_SEED  # seeds the holdout split and the fold assignment
    val_from_usage: bool = False  # fer2013.csv: use the PublicTest rows as holdout-val instead of val_size
    dedupe: bool = False  # leave out labelled rows of conflicting-label images and blank labelled images
    on_bad_row: BadRowMode = "error"  # "error": stop at the first bad row; "skip": drop and list bad labelled rows (a bad test row always stops)

    def __post_init__(self) -> None:
        check_on_bad_row(self.on_bad_row)


@dataclass
class PrepareReport:
    path: Path  # the prepared folder
    key: str
    cached: bool  # True when an existing prepared folder was reused
    layout: str
    sources: list[dict[str, Any]]  # {"path", "sha256", "size"}
    notes: list[str]
    class_counts: dict[str, list[int] | None]  # "train" / "val" / "test" -> count per class (test: None if unlabelled)
    rows: dict[str, int]  # "train" / "val" / "test" row counts
    duplicates: dict[str, int]
    skipped_count: int
    skipped: list[dict]  # the first MAX_SKIPPED_LISTED skipped rows
    seconds: float
    demo: bool = False  # the synthetic demo competition was used
    options: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Which files a source will read, and their hashes (before parsing anything)


def _input_files(source: Path | None, train: Path | None, test: Path | None, test_labels: Path | None) -> tuple[str, list[Path]]:
    """(layout kind, files whose content decides the output) without parsing any file.

    sources.resolve_source is the detection read_source uses too, so the files are exactly the
    ones it will read. For image folders the 'file' is the folder; it is fingerprinted by a stat walk.
    """
    found = resolve_source(source, train=train, test=test, test_labels=test_labels)
    return found.kind, found.input_files()


def _fingerprint_files(files: list[Path], root: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """sha256 of each file (a stat walk digest for folders), reusing hashes cached on (path, size, mtime).

    Returns the fingerprints and the updated hash cache to save (None when unchanged); it is saved
    only once prepare succeeds, so a failed prepare writes nothing at all.
    """
    cache = load_hash_cache(root)
    out, changed = [], False
    for path in files:
        resolved = str(path.resolve())
        if path.is_dir():
            # Image folders: thousands of small files; their names, sizes and mtimes stand in for content.
            listing = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                             for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") or part == "prepared"
                                                                              for part in p.relative_to(path).parts))
            out.append({"path": str(path), "sha256": "stat:" + sha256_json(listing), "size": sum(s for _, s, _ in listing)})
            continue
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = cache.get(resolved)
        if entry and entry.get("stamp") == stamp:
            digest = entry["sha256"]
        else:
            digest = sha256_file(path)
            cache[resolved] = {"stamp": stamp, "sha256": digest}
            changed = True
        out.append({"path": str(path), "sha256": digest, "size": st.st_size})
    return out, (cache if changed else None)


def prepare_key(kind: str, fingerprints: list[dict[str, Any]], options: PrepareOptions) -> str:
    payload = {"version": PREPARE_VERSION, "kind": kind, "files": [f["sha256"] for f in fingerprints],  # in role order: train, test, labels
               "options": options.__dict__}
    return f"{kind}-{sha256_json(payload)[:12]}"


# ------------------------------------------------------------------------------------------
# The stage


def _counts(y: np.ndarray | None) -> list[int] | None:
    return None if y is None else np.bincount(np.asarray(y, np.int64), minlength=NUM_CLASSES).tolist()


def _report_from_manifest(prepared: Prepared, cached: bool, seconds: float, demo: bool) -> PrepareReport:
    m = prepared.manifest
    skipped = m.get("skipped", {})
    return PrepareReport(
        path=prepared.path, key=prepared.key, cached=cached, layout=m.get("layout", "?"),
        sources=m.get("sources", []), notes=m.get("notes", []), class_counts=m.get("class_counts", {}),
        rows=m.get("shapes", {}), duplicates=m.get("duplicates", {}), skipped_count=int(skipped.get("count", 0)),
        skipped=skipped.get("rows", []), seconds=seconds, demo=demo, options=m.get("options", {}),
    )


def prepare(
    source: str | Path | None = None,
    *,
    train: str | Path | None = None,
    test: str | Path | None = None,
    test_labels: str | Path | None = None,
    options: PrepareOptions | None = None,
    out: str | Path = DEFAULT_ROOT,
    force: bool = False,
    demo: bool = False,
) -> tuple[Prepared, PrepareReport]:
    """Prepare a competition's data (see the module docstring); returns the set and what happened.

    Raises FerkaggleError / DataError for anything wrong with the input; nothing is written then.
    `demo` only marks the report and manifest (the CLI sets it when it generated the demo data).
    """
    started = time.perf_counter()
    options = options or PrepareOptions()
    root = Path(out)
    paths = [None if p is None else Path(p) for p in (source, train, test, test_labels)]
    kind, files = _input_files(*paths)
    fingerprints, hash_cache = _fingerprint_files(files, root)
    key = prepare_key(kind, fingerprints, options)
    folder = root / key
    if not force and folder.is_dir():
        try:
            prepared = load_prepared(folder)
        except FerkaggleError:
            prepared = None  # incomplete or damaged: rebuild below
        if prepared is not None:
            set_latest(root, key)
            save_hash_cache(root, hash_cache)
            return prepared, _report_from_manifest(prepared, True, time.perf_counter() - started, demo)

    prepared = _build(paths, options, root, key, fingerprints, demo)
    save_hash_cache(root, hash_cache)
    return prepared, _report_from_manifest(prepared, False, time.perf_counter() - started, demo)


def _build(paths, options: PrepareOptions, root: Path, key: str, fingerprints, demo: bool) -> Prepared:
    source, train, test, test_labels = paths
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    raw = read_source(source, train=train, test=test, test_labels=test_labels, on_bad_row=options.on_bad_row)
    timings["read_s"] = round(time.perf_counter() - t0, 3)

    split = _split(raw, options, timings)
    manifest = _manifest(raw, options, fingerprints, demo, split, timings)
    return write_prepared(root, key, x=split.x, y=split.y, fold=split.fold, x_test=raw.x_test, test_ids=raw.test_ids,
                          y_test=raw.y_test, manifest=manifest, groups=split.groups)


@dataclass
class _Split:
    """The labelled rows prepare keeps, their folds and duplicate groups, and what the split found."""

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    groups: np.ndarray  # renumbered: a group's id is its first kept row
    duplicates: DuplicateReport  # with the split's counts filled in
    dropped_rows: np.ndarray  # source rows left out (--dedupe)


def _split(raw: RawData, options: PrepareOptions, timings: dict[str, float]) -> _Split:
    """Duplicate groups, then the holdout and folds by group, the --dedupe drop and the leak check."""
    t0 = time.perf_counter()
    x, y = raw.x, np.asarray(raw.y, np.int8)
    found = find_duplicates(x, y, raw.x_test)
    timings["duplicates_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    drop = (found.conflicting | found.blank) if options.dedupe else None
    fold = make_folds(y, found.groups, val_size=options.val_size, folds=options.folds, seed=options.seed,
                      predefined_val=raw.predefined_val, val_from_usage=options.val_from_usage, drop=drop)
    duplicates = found.report
    if options.dedupe:
        duplicates.dropped = int(drop.sum())
        duplicates.dropped_conflicting = int(found.conflicting.sum())
        duplicates.dropped_blank = int(found.blank.sum())
    if options.val_from_usage and raw.predefined_val is not None:
        duplicates.joined_holdout = int(((fold == HOLDOUT) & ~np.asarray(raw.predefined_val, bool)).sum())
    keep = fold != UNASSIGNED
    dropped_rows = np.flatnonzero(~keep)
    duplicates.blank_in_holdout = int((found.blank & (fold == HOLDOUT)).sum())
    duplicates.exact_across_splits, duplicates.near_across_splits = leak_check(found.exact, found.groups, fold)
    split = _Split(x[keep], y[keep], fold[keep], first_row_ids(found.groups[keep]), duplicates, dropped_rows)
    timings["split_s"] = round(time.perf_counter() - t0, 3)
    return split


def _manifest(raw: RawData, options: PrepareOptions, fingerprints, demo: bool, split: _Split,
              timings: dict[str, float]) -> dict[str, Any]:
    """manifest.json of a prepared set: sources, options, class counts, duplicates, skipped rows, test ids."""
    y, fold = split.y, split.fold
    read_fingerprints = {f["path"]: f for f in fingerprints}
    sources = [read_fingerprints.get(str(p), {"path": str(p)}) for p in raw.sources] or fingerprints
    test_ids = {"source": raw.test_id_source}
    if raw.test_files is not None:
        test_ids["files"] = [{"id": int(i), "file": f} for i, f in zip(raw.test_ids.tolist(), raw.test_files)]
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ferkaggle_version": __version__,
        "prepare_version": PREPARE_VERSION,
        "layout": raw.layout,
        "demo": demo,
        "sources": sources,
        "inputs": fingerprints,
        "options": dict(options.__dict__),
        "seed": options.seed,
        "classes": list(EMOTIONS),
        "class_counts": {"train": _counts(y[fold >= 0]), "val": _counts(y[fold == HOLDOUT]),
                         "test": _counts(raw.y_test)},
        "skipped": {"count": len(raw.skipped), "rows": raw.skipped[:MAX_SKIPPED_LISTED]},
        "duplicates": split.duplicates.to_dict(),
        "dropped_source_rows": split.dropped_rows.tolist(),
        "test_ids": test_ids,
        "notes": list(raw.notes),
        "timings": timings,
    }


def demo_folder_for(source: str | Path | None) -> Path:
    """Where --demo-if-missing puts the demo competition: <source folder>/demo."""
    base = Path(source) if source is not None else DEFAULT_FOLDER
    return base / DEMO_SUBFOLDER


def demo_if_missing(source: str | Path | None, seed: int | None = None) -> tuple[Path | None, bool]:
    """For --demo-if-missing: (demo folder, created now) when the default source data/ has no real
    data, else (None, False).

    Only the default folder (no source, or one that resolves to ./data) falls back to the demo:
    any other source is the user's own, and a mistyped or empty one must be an error (prepare
    then reports it), never a demo written beside it. data/ counts as missing when it does not
    exist or holds no competition data; one whose only data set is an earlier demo (data/demo)
    also returns the demo so the user is told it is in use. An ambiguous or unreadable folder is
    the user's to fix: it raises.
    """
    folder = Path(source) if source is not None else DEFAULT_FOLDER
    if folder.resolve() != DEFAULT_FOLDER.resolve():
        return None, False
    demo = demo_folder_for(source)
    if folder.is_file():
        return None, False
    if folder.exists():
        try:
            found = find_source(folder)
        except NoDataFound:
            pass
        else:
            if found.location.resolve() != demo.resolve():
                return None, False
    if demo_present(demo):
        return demo, False
    write_demo_competition(demo, DEFAULT_DEMO_TRAIN, DEFAULT_DEMO_TEST, seed=DEMO_SEED if seed is None else seed, overwrite=True)
    return demo, True


def describe_duplicates(d: dict[str, int], options: dict[str, Any] | None = None) -> list[str]:
    """Readable lines for the duplicate report: what prepare found and what it did with it."""
    if not d or "groups" not in d:
        return []
    dedupe = bool((options or {}).get("dedupe"))
    lines = [
        f"duplicates among {d['labelled']:,} labelled rows: {d['exact_extra']:,} extra exact copies "
        f"({d['exact_images_repeated']:,} images repeated), {d['near_extra'] - d['exact_extra']:,} more near copies "
        f"(average hash): {d['groups']:,} groups, {d['rows_in_groups']:,} rows in groups of 2+, largest {d['largest_group']}",
        "  the holdout and every fold are drawn by group: no image is on two sides of a split",
        f"  leak check after the split: {d['exact_across_splits']:,} exact images and {d['near_across_splits']:,} "
        f"groups in two of {{holdout, folds}}",
    ]
    if d.get("joined_holdout"):
        lines.append(f"  {d['joined_holdout']:,} Training rows joined the holdout: their image is also a PublicTest row")
    conflict = f"conflicting labels: {d['conflicting_rows']:,} rows in {d['conflicting_images']:,} images whose copies disagree"
    blank = f"blank (constant) images: {d['blank']:,} labelled ({d['blank_in_holdout']:,} left in the holdout), {d['blank_test']:,} in test"
    if dedupe:
        lines.append(f"{conflict}: dropped by --dedupe")
        lines.append(f"{blank}: the labelled ones dropped by --dedupe (test rows are never dropped)")
        lines.append(f"--dedupe dropped {d['dropped']:,} labelled rows: {d['dropped_conflicting']:,} with conflicting labels, "
                     f"{d['dropped_blank']:,} blank ({d['dropped_conflicting'] + d['dropped_blank'] - d['dropped']:,} both)")
    else:
        lines.append(f"{conflict}: kept (--dedupe drops them)")
        lines.append(f"{blank}: kept (--dedupe drops the labelled ones)")
    lines.append(f"train ∩ test: {d['train_in_test']:,} labelled rows show an exact test image ({d['near_train_in_test']:,} near): "
                 f"kept in training, they are legitimate training data; {d['test_extra']:,} extra exact copies within test")
    return lines
