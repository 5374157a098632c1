"""Checkpoint folders: where a CNN fit keeps its resumable state while it trains, and the names of
the files in one (state.json, last.keras, best.keras, swa.npz, snapshot-<epoch>.keras).

A run's folder holds checkpoint/ (checkpoint-fold<f>/ for k-fold runs) until the run is recorded;
the search keeps one per trial under runs/searches/ (`ferkaggle.runs.studies.trial_state_dir`).
Writing and reading the files is the CNN fit's; only the layout is here."""

from __future__ import annotations

import shutil
from pathlib import Path

CHECKPOINT_FILES = {"state": "state.json", "last": "last.keras", "best": "best.keras", "swa": "swa.npz"}
"""A CNN checkpoint folder: state.json (epochs done, history, best score), last.keras (model +
optimizer, to resume), best.keras (the weights of the best epoch on the stop split), swa.npz
(with `swa_epochs` on: the running mean of the weights of the schedule's last epochs), and with
`snapshots` on, snapshot-<epoch>.keras: the model at the end of each cosine cycle (`snapshot_file`)."""


def checkpoint_dir(run_dir: str | Path, fold: int | None = None) -> Path:
    """The checkpoint folder of a CNN run (one per fold for k-fold runs); not created here."""
    return Path(run_dir) / ("checkpoint" if fold is None else f"checkpoint-fold{int(fold)}")


def checkpoint_file(state_dir: str | Path, which: str) -> Path:
    """`which` = state | last | best | swa: that file of a checkpoint folder (any folder: the search keeps its own)."""
    try:
        return Path(state_dir) / CHECKPOINT_FILES[which]
    except KeyError:
        raise ValueError(f"unknown checkpoint file {which!r}; one of {', '.join(CHECKPOINT_FILES)}") from None


def snapshot_file(state_dir: str | Path, epoch: int) -> Path:
    """The model saved at the end of the cosine cycle that ends at `epoch` (snapshot ensembles)."""
    return Path(state_dir) / f"snapshot-{int(epoch):04d}.keras"


def snapshot_files(state_dir: str | Path) -> dict[int, Path]:
    """{epoch: file} of the snapshots saved in a checkpoint folder, by epoch."""
    found = {}
    for path in Path(state_dir).glob("snapshot-*.keras"):
        stem = path.stem.split("-", 1)[1]
        if stem.isdigit():
            found[int(stem)] = path
    return dict(sorted(found.items()))


def remove_checkpoint(state_dir: str | Path) -> None:
    """Delete a checkpoint folder and everything in it (once its run is recorded); no error if it is gone."""
    shutil.rmtree(state_dir, ignore_errors=True)
