"""Free accuracy at the end of training (issue 11, item 2): multi-view TTA, SWA and snapshot ensembles, measured.

    python bench/free_accuracy.py tta --run <run_id> --data data/prepared/<key>
    python bench/free_accuracy.py swa --config my.toml --data data/prepared/<key> --keep /tmp/ckpt
    python bench/free_accuracy.py snapshots --config my.toml --data data/prepared/<key> --keep /tmp/ckpt \
        [--against <run_id of the same recipe with one cosine cycle>]

`tta`: inference only. The run's model scored on the holdout (and on its stop split, which
nothing but checkpoint choice ever looked at) with every test-time augmentation mode
(`ferkaggle.cnn.tta.TtaMode`),
with the paired difference to hflip and its bootstrap standard error (same rows, same model).

`swa`: one training run, exactly `ferkaggle train --config my.toml` (`train.train_config`,
same seed, same stop split), whose checkpoint folder is kept instead of deleted, so the
best checkpoint, the last epoch and the averaged weights (BatchNorm statistics averaged as
is / re-estimated) of the SAME trajectory can be scored side by side: a paired comparison,
free of the seed noise between two runs. Prints Markdown rows for docs/benchmarks.md.

`snapshots`: the same for a config with `snapshots` (cosine with warm restarts): the best
checkpoint, every snapshot alone, and the ensembles of the last 2..N snapshots, each scored
against the run's best checkpoint (paired, same trajectory) and, with --against, against the
holdout probabilities of another run on the same rows (the same compute spent on one cosine).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import get_args

import numpy as np

from ferkaggle.cnn import train
from ferkaggle.cnn.averaging import load_best, load_swa, snapshot_ensemble
from ferkaggle.cnn.config import load_train_config
from ferkaggle.cnn.tta import TtaMode, predict_proba
from ferkaggle.data.prepared import load_prepared
from ferkaggle.runs.checkpoints import snapshot_files
from ferkaggle.runs.registry import load_run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def accuracy(y, proba) -> float:
    return float(np.mean(np.asarray(proba).argmax(1) == np.asarray(y)))


def paired(y, proba, reference, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(accuracy difference proba - reference, its bootstrap standard error over rows)."""
    right = (np.asarray(proba).argmax(1) == y).astype(np.float64)
    base = (np.asarray(reference).argmax(1) == y).astype(np.float64)
    diff = right - base
    rng = np.random.default_rng(seed)
    boots = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(draws)]
    return float(diff.mean()), float(np.std(boots))


def tta_table(run_ref: str, data: str, runs_root: str = "runs") -> str:
    import keras

    run = load_run(run_ref, runs_root)
    prepared = load_prepared(data)
    _, stop = prepared.stopping_split(run.info["seed"])
    model = keras.models.load_model(run.dir / "model.keras", compile=False)
    rows = ["| tta | views | holdout acc | vs hflip (paired ± s.e.) | stop-split acc | inference s (holdout) |",
            "|---|---|---|---|---|---|"]
    results = {}
    for mode in get_args(TtaMode):
        t0 = time.perf_counter()
        val = predict_proba(model, prepared.x_val, mode)
        seconds = time.perf_counter() - t0
        results[mode] = (val, predict_proba(model, prepared.x[stop], mode), seconds)
    for mode in get_args(TtaMode):
        val, stop_proba, seconds = results[mode]
        d, se = paired(prepared.y_val, val, results["hflip"][0])
        views = {"none": 1, "hflip": 2}.get(mode, 10)
        rows.append(f"| {mode} | {views} | {accuracy(prepared.y_val, val):.4f} | {d * 100:+.2f} ± {se * 100:.2f} pt "
                    f"| {accuracy(prepared.y[stop], stop_proba):.4f} | {seconds:.1f} |")
    return f"run {run.run_id} ({run.info['summary']})\n\n" + "\n".join(rows)


def train_keeping_checkpoint(prepared, cfg, keep_dir: Path, seed: int, runs_root: str):
    """Exactly `ferkaggle train` (`train.train_config`), except that the run's checkpoint folder is
    copied to keep_dir instead of deleted, to score every variant of the trajectory: (run, wall s).
    train.py removes the checkpoint folder once the run is recorded, so its `remove_checkpoint` is
    the name replaced."""
    if keep_dir.exists():
        raise SystemExit(f"{keep_dir}: exists; choose a new --keep folder")

    def keep_checkpoint(state_dir):
        shutil.copytree(state_dir, keep_dir)
        shutil.rmtree(state_dir, ignore_errors=True)

    train.remove_checkpoint = keep_checkpoint
    t0 = time.time()
    run = train.train_config(prepared, cfg, seed=seed, root=runs_root)
    return run, time.time() - t0


def swa_table(config: str, data: str, keep: str, seed: int, runs_root: str = "runs") -> str:
    cfg = load_train_config(config)
    if not cfg.swa_epochs:
        raise SystemExit(f"{config}: set swa_epochs > 0")
    prepared = load_prepared(data)
    keep_dir = Path(keep)
    run, wall = train_keeping_checkpoint(prepared, cfg, keep_dir, seed, runs_root)
    fit, stop = prepared.stopping_split(seed)
    y_val, y_stop = prepared.y_val, prepared.y[stop]
    models = {"best checkpoint (epoch %d)" % run.metrics["best_epoch"]: load_best(keep_dir)}
    import keras

    models[f"last epoch ({run.metrics['epochs']})"] = keras.models.load_model(keep_dir / "last.keras", compile=False)
    for bn in ("average", "recompute"):
        model, epochs = load_swa(keep_dir, dataclasses.replace(cfg, swa_bn=bn), prepared.x[fit])
        models[f"SWA epochs {epochs[0]}-{epochs[-1]}, BN {bn}"] = model
    reference = None
    rows = [f"| model | holdout acc ({cfg.tta} TTA) | vs best checkpoint (paired ± s.e.) | holdout acc (no TTA) | stop-split acc (no TTA) |",
            "|---|---|---|---|---|"]
    for name, model in models.items():
        val = predict_proba(model, prepared.x_val, cfg.tta)
        if reference is None:
            reference = val
        d, se = paired(y_val, val, reference)
        rows.append(f"| {name} | {accuracy(y_val, val):.4f} | {d * 100:+.2f} ± {se * 100:.2f} pt "
                    f"| {accuracy(y_val, predict_proba(model, prepared.x_val, 'none')):.4f} "
                    f"| {accuracy(y_stop, predict_proba(model, prepared.x[stop], 'none')):.4f} |")
    swa = run.metrics.get("swa", {})
    return (f"run {run.run_id} ({run.info['summary']}): holdout {run.metrics['val_accuracy']:.4f}, "
            f"SWA used: {swa.get('used')} ({swa.get('why')}); wall {wall / 60:.1f} min\n\n" + "\n".join(rows))


def snapshot_table(config: str, data: str, keep: str, seed: int, against: str | None,
                   runs_root: str = "runs") -> str:
    cfg = load_train_config(config)
    if not cfg.snapshots:
        raise SystemExit(f"{config}: set snapshots >= 2 (and optim.cycles)")
    prepared = load_prepared(data)
    other = load_run(against, runs_root) if against else None
    keep_dir = Path(keep)
    run, wall = train_keeping_checkpoint(prepared, cfg, keep_dir, seed, runs_root)
    _, stop = prepared.stopping_split(seed)
    y_val, y_stop = prepared.y_val, prepared.y[stop]
    import keras

    models = {"best checkpoint (epoch %d)" % run.metrics["best_epoch"]: load_best(keep_dir)}
    files = snapshot_files(keep_dir)
    for epoch, path in files.items():
        models[f"snapshot at epoch {epoch}"] = keras.models.load_model(path, compile=False)
    for count in range(2, len(files) + 1):
        ensemble, epochs = snapshot_ensemble(keep_dir, count)
        models[f"ensemble of snapshots {', '.join(map(str, epochs))}"] = ensemble
    head = f"| model | holdout acc ({cfg.tta} TTA) | vs best checkpoint (paired ± s.e.) |"
    if other is not None:
        head += f" vs {other.run_id} ({other.val_accuracy:.4f}) (paired ± s.e.) |"
    rows = [head + " stop-split acc (no TTA) |", "|---" * head.count("|") + "|"]
    reference = None
    for name, model in models.items():
        val = predict_proba(model, prepared.x_val, cfg.tta)
        if reference is None:
            reference = val
        d, se = paired(y_val, val, reference)
        row = f"| {name} | {accuracy(y_val, val):.4f} | {d * 100:+.2f} ± {se * 100:.2f} pt |"
        if other is not None:
            d, se = paired(y_val, val, other.proba("val"))
            row += f" {d * 100:+.2f} ± {se * 100:.2f} pt |"
        rows.append(row + f" {accuracy(y_stop, predict_proba(model, prepared.x[stop], 'none')):.4f} |")
    snap = run.metrics.get("snapshots", {})
    return (f"run {run.run_id} ({run.info['summary']}): holdout {run.metrics['val_accuracy']:.4f}, "
            f"snapshot ensemble used: {snap.get('used')} ({snap.get('why')}); wall {wall / 60:.1f} min, "
            f"train {run.metrics['train_seconds'] / 60:.1f} min\n\n" + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["tta", "swa", "snapshots"])
    ap.add_argument("--data", required=True, help="a prepared folder, data/prepared/<key>")
    ap.add_argument("--run", help="tta: the run whose model.keras to score")
    ap.add_argument("--config", help="swa / snapshots: a train config with swa_epochs > 0 / snapshots >= 2")
    ap.add_argument("--keep", help="swa / snapshots: a new folder to keep the run's checkpoint in")
    ap.add_argument("--against", help="snapshots: a run on the same split to compare with, row by row")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", default="runs")
    args = ap.parse_args()
    if args.what == "tta":
        print(tta_table(args.run, args.data, args.runs))
    elif args.what == "swa":
        print(swa_table(args.config, args.data, args.keep, args.seed, args.runs))
    else:
        print(snapshot_table(args.config, args.data, args.keep, args.seed, args.against, args.runs))


if __name__ == "__main__":
    main()
