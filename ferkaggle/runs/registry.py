"""The run registry: one folder per run under `runs/`, written by `RunWriter` and read back as `Run`.

    runs/<run_id>/                 run_id = 2026-11-23_101500_rf-pixels (sorts by time)
      run.json        kind, name, summary, full resolved config, data + split fingerprints,
                      seed, package versions, host, start/end times, duration, status
                      (CNN runs add `runtime`: TensorFlow threads, devices, precision)
      metrics.json    val_accuracy, val_macro_f1 (holdout), scored_on, selected_on,
                      cv_mean/cv_std (k-fold), history, ...
      val_proba.npy   float32 [n_val, 7]    holdout-val probabilities, holdout order
      oof_proba.npy   float32 [n_train, 7]  out-of-fold probabilities, training-row order
      test_proba.npy  float32 [n_test, 7]   test probabilities, test-file order
      model.keras | model.joblib
      checkpoint/ | checkpoint-fold<f>/     while a CNN trains (`ferkaggle.runs.checkpoints`)
    runs/searches/                 the search's own files, not runs (`ferkaggle.runs.studies`)

A run is `running` while it works, then `completed`, `failed` or `interrupted`; `list_runs`
returns completed runs unless asked for all. Here: writing a run (`RunWriter`), reading one
(`read_run`, `list_runs`, `load_run` by id, part of an id or folder), removing one, the prepared
data it was made on (`prepared_for_run`), and a run as a zip for the search's artifact store
(`archive_run`, `import_run_archive`). Which run `best` and `latest` mean, and the ranking of
runs, are `ferkaggle.runs.select`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ferkaggle.core.constants import NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_save_npy, atomic_write_json
from ferkaggle.data.prepared import Prepared, load_prepared

DEFAULT_ROOT = Path("runs")
RunKind = Literal["baseline", "cnn", "ensemble"]
"""What a run is (run.json `kind`): a classical model, a CNN, or an ensemble of other runs."""
SELECTORS = ("best", "latest")
"""Run references that name a choice, not a run: `ferkaggle.runs.select.select_run` makes it."""
PROBA_FILES = {"val": "val_proba.npy", "test": "test_proba.npy", "oof": "oof_proba.npy"}


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else Path(os.environ.get("FERKAGGLE_RUNS_DIR", DEFAULT_ROOT))


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:48] or "run"


def new_run_id(name: str, root: Path, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    base = f"{now:%Y-%m-%d_%H%M%S}_{_slug(name)}"
    run_id, n = base, 2
    while (root / run_id).exists():
        run_id, n = f"{base}-{n}", n + 1
    return run_id


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for pkg in ("ferkaggle", "numpy", "scikit-learn", "tensorflow", "jax", "torch", "keras", "optuna"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunWriter:
    """Creates a run folder and records everything a run produces.

    Use as a context manager: leaving the block normally marks the run completed
    (after `save_probas`/`save_metrics`), an exception marks it failed, Ctrl-C
    marks it interrupted; the exception is re-raised.
    """

    def __init__(self, kind: RunKind, name: str, config: dict[str, Any], prepared: Prepared, *,
                 seed: int, summary: str = "", model: str = "", root: str | Path | None = None,
                 extra: dict[str, Any] | None = None):
        self.root = runs_root(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.prepared = prepared
        self.run_id = new_run_id(name, self.root)
        self.dir = self.root / self.run_id
        self.dir.mkdir()
        self._t0 = time.monotonic()
        self.info: dict[str, Any] = {
            "run_id": self.run_id,
            "kind": kind,
            "name": name,
            "model": model or name,
            "summary": summary,
            "status": "running",
            "seed": seed,
            "data": {
                "prepared": str(prepared.path),
                "key": prepared.key,
                "data_fingerprint": prepared.data_fingerprint,
                "split_fingerprint": prepared.split_fingerprint,
                "n_train": int(len(prepared.train_idx)),
                "n_val": int(len(prepared.val_idx)),
                "n_test": int(len(prepared.x_test)),
            },
            "config": config,
            "versions": package_versions(),
            "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "argv": sys.argv[1:]},
            "started": _now(),
            "created_ns": time.time_ns(),  # orders runs made within the same second
            "ended": None,
            "duration_s": None,
            **(extra or {}),
        }
        self._write_info()

    def _write_info(self) -> None:
        atomic_write_json(self.dir / "run.json", self.info)

    def update_info(self, **fields: Any) -> None:
        self.info.update(fields)
        self._write_info()

    def model_path(self, suffix: str) -> Path:
        return self.dir / f"model{suffix}"

    def save_probas(self, *, val: np.ndarray | None = None, test: np.ndarray | None = None,
                    oof: np.ndarray | None = None) -> None:
        expected = {"val": len(self.prepared.val_idx), "test": len(self.prepared.x_test), "oof": len(self.prepared.train_idx)}
        for which, arr in (("val", val), ("test", test), ("oof", oof)):
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float32)
            if arr.shape != (expected[which], NUM_CLASSES):
                raise ValueError(f"{which} probabilities have shape {arr.shape}, expected {(expected[which], NUM_CLASSES)}")
            atomic_save_npy(self.dir / PROBA_FILES[which], arr)

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "metrics.json", metrics)

    def finish(self, status: str = "completed", error: str | None = None) -> None:
        self.info.update(status=status, ended=_now(), duration_s=round(time.monotonic() - self._t0, 2))
        if error:
            self.info["error"] = error
        self._write_info()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish("completed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted", "interrupted by the user")
        else:
            self.finish("failed", f"{exc_type.__name__}: {exc}")
        return False


@dataclass
class Run:
    """A run read back from disk."""

    dir: Path
    info: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def kind(self) -> str:
        return self.info.get("kind", "")

    @property
    def split_fingerprint(self) -> str:
        return self.info["data"]["split_fingerprint"]

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.get("val_accuracy")

    @property
    def scored_on(self) -> str:
        """What val_accuracy was computed on: `holdout`, or `holdout, cross-fitted halves` (ensembles)."""
        default = "holdout, cross-fitted halves" if self.kind == "ensemble" else "holdout"
        return str(self.metrics.get("scored_on", default))

    @property
    def selected_on_score(self) -> bool:
        """Whether anything in the run (early stopping, checkpoint, members, weights) was chosen on
        the rows its score is computed on. Stages record it; runs recorded before they did are
        assumed selected on it when they selected anything (CNNs and ensembles)."""
        if "selected_on_score" in self.metrics:
            return bool(self.metrics["selected_on_score"])
        return self.kind in ("cnn", "ensemble")

    def has_proba(self, which: str) -> bool:
        return (self.dir / PROBA_FILES[which]).is_file()

    def proba(self, which: str) -> np.ndarray:
        path = self.dir / PROBA_FILES[which]
        if not path.is_file():
            raise FerkaggleError(f"run {self.run_id} has no {which} probabilities ({path.name} is missing)")
        return np.load(path, allow_pickle=False)

    def model_file(self) -> Path | None:
        for suffix in (".keras", ".joblib"):
            if (self.dir / f"model{suffix}").is_file():
                return self.dir / f"model{suffix}"
        return None

    def size_bytes(self) -> int:
        model = self.model_file()
        return model.stat().st_size if model else 0

    def disk_bytes(self) -> int:
        """Bytes of every file in the run folder (what removing it frees)."""
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file() and not p.is_symlink())

    def ensemble_members(self) -> list[str]:
        """The member run ids an ensemble run records (empty for other runs)."""
        return list(self.info.get("config", {}).get("members") or []) if self.kind == "ensemble" else []


def read_run(folder: Path) -> Run | None:
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    return Run(folder, info, metrics)


def list_runs(root: str | Path | None = None, *, include_incomplete: bool = False) -> list[Run]:
    """All runs under root, oldest first; only completed ones unless include_incomplete."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    runs = [r for r in (read_run(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if r]
    runs.sort(key=lambda r: (r.info.get("created_ns", 0), r.run_id))
    return [r for r in runs if include_incomplete or r.status == "completed"]


def load_run(ref: str, root: str | Path | None = None) -> Run:
    """A run by id, unique id prefix or substring, or folder path (`best` and `latest` are
    `ferkaggle.runs.select.select_run`'s: asked for one, this is a programming error, not a run name)."""
    if ref in SELECTORS:
        raise ValueError(f"load_run({ref!r}): `{ref}` is chosen by ferkaggle.runs.select.select_run")
    root = runs_root(root)
    path = Path(ref)
    if (path / "run.json").is_file():
        run = read_run(path)
        if run:
            return run
    candidates = [r for r in list_runs(root, include_incomplete=True) if r.run_id == ref]
    if not candidates:
        candidates = [r for r in list_runs(root, include_incomplete=True) if ref in r.run_id]
    if not candidates:
        raise FerkaggleError(f"no run matching {ref!r} in {root}/")
    if len(candidates) > 1:
        names = ", ".join(r.run_id for r in candidates[:5])
        raise FerkaggleError(f"{ref!r} matches {len(candidates)} runs ({names}...); give more of the id")
    return candidates[0]


def check_run_folder(run: Run, root: str | Path | None = None) -> None:
    """A FerkaggleError unless the run's folder is a run folder directly under the runs root (not
    the root itself, a folder elsewhere, or one reached through a link): what `remove_run` deletes."""
    where = runs_root(root)
    folder = run.dir.resolve()
    if run.dir.is_symlink() or folder.parent != where.resolve() or folder.name != run.run_id:
        raise FerkaggleError(f"{run.dir}: not a run folder in {where}/; only those are removed")


def remove_run(run: Run, root: str | Path | None = None) -> None:
    """Delete the run's folder, after `check_run_folder`."""
    check_run_folder(run, root)
    shutil.rmtree(run.dir.resolve())


def prepared_for_run(run: Run) -> Prepared:
    """The prepared data a run was trained on (its test ids and labels), checked by fingerprint."""
    recorded = run.info["data"]
    try:
        # The recorded path first; then the same key under ./data/prepared, for a moved checkout.
        where = recorded["prepared"] if Path(recorded["prepared"]).is_dir() else recorded["key"]
        prepared = load_prepared(where, mmap=True)
    except FerkaggleError:
        raise FerkaggleError(
            f"run {run.run_id} was made on prepared data {recorded['prepared']}, which is gone; "
            "run `ferkaggle prepare` with the same inputs and options to rebuild it"
        ) from None
    if prepared.split_fingerprint != recorded["split_fingerprint"]:
        raise FerkaggleError(
            f"run {run.run_id}: the prepared data at {prepared.path} has changed since the run "
            f"(split {prepared.split_fingerprint} != {recorded['split_fingerprint']})"
        )
    return prepared


def archive_run(run: Run, dest_dir: Path) -> Path:
    """A zip of a run folder (for Optuna's artifact store); returns its path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.make_archive(str(dest_dir / run.run_id), "zip", root_dir=run.dir))


def import_run_archive(archive: Path, run_id: str, root: str | Path | None = None) -> Run | None:
    """Unpack a run zip into the registry as runs/<run_id>/ unless that run is already there;
    returns the new Run, or None when it was present. Atomic: unpacked beside, then renamed."""
    root = runs_root(root)
    target = root / run_id
    if target.exists():
        return None
    if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id):
        raise FerkaggleError(f"refusing to import a run with the id {run_id!r}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".import-{run_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.unpack_archive(str(archive), str(tmp), "zip")
    run = read_run(tmp)
    if run is None or run.run_id != run_id:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FerkaggleError(f"{archive}: not an archive of run {run_id}")
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    return read_run(target)
