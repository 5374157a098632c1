"""A run's checkpoint folder and its file names (state.json, last/best.keras, swa.npz, snapshots):
the resumable state a CNN fit leaves while it trains."""

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


def drop_checkpoint_models(state_dir: str | Path) -> None:
    """Delete a checkpoint's model files (once recorded, the run folder holds model.keras); keep state.json."""
    for which in ("last", "best", "swa"):
        checkpoint_file(state_dir, which).unlink(missing_ok=True)
    for path in snapshot_files(state_dir).values():
        path.unlink(missing_ok=True)


def remove_checkpoint(state_dir: str | Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)
