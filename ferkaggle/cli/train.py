"""Commands for CNNs: `train` (one configuration) and `search` (several, within a budget).

Thin: resolve the preset / space and the prepared data, call `train.train_config` or
`search.run_search`, render the result with rich. TensorFlow is imported inside the
commands so that `ferkaggle --help` stays instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Optional

import typer
from rich.markup import escape

from ferkaggle import DEFAULT_SEED
from ferkaggle.cli.app import app
from ferkaggle.console import console


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines (oneDNN, 'no CUDA
    drivers') are written there before its log level applies. FERKAGGLE_TF_LOGS=1 keeps them."""
    if os.environ.get("FERKAGGLE_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_tensorflow(threads: int, inter_threads: int) -> dict:
    # 3 also hides the 'failed call to cuInit' line on machines without a GPU; real
    # failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    with _native_stderr_silenced():
        import tensorflow  # noqa: F401
    from ferkaggle.train import configure_threads

    return configure_threads(threads, inter_threads)


@app.command()
def train(
    config: str = typer.Option("simple", "--config", "-c", help="CNN preset name (configs/<name>.toml) or path to a .toml."),
    data: Optional[str] = typer.Option(None, "--data", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds Python, NumPy, Keras, the stop split, shuffling and augmentation (recorded in run.json)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Max epochs (overrides the preset; also the LR schedule's horizon)."),
    folds: bool = typer.Option(False, "--folds", help="Train one model per CV fold: out-of-fold probabilities, cv_mean/cv_std."),
    threads: int = typer.Option(0, "--threads", help="TensorFlow intra-op threads; 0 = TensorFlow's default (all cores)."),
    inter_threads: int = typer.Option(0, "--inter-threads", help="TensorFlow inter-op threads; 0 = default."),
) -> None:
    """Train one CNN configuration and record it as a run (it then shows on the leaderboard).

    The model fits on 90% of the training rows and early-stops / keeps its best epoch on the
    other 10% (the stop split), never on the holdout its score is computed on. Val/test
    probabilities use the preset's test-time augmentation (hflip by default). The same seed
    gives the same run on the CPU.

    Example: ferkaggle train --config simple --epochs 20
    """
    from ferkaggle.data.prepared import load_prepared
    from ferkaggle.train import load_train_config, train_config

    cfg = load_train_config(config)
    prepared = load_prepared(data, mmap=True)
    runtime = _quiet_tensorflow(threads, inter_threads)
    console.print(f"[bold]{escape(cfg.name)}[/bold] on {escape(prepared.key)} · {len(prepared.train_idx)} train / "
                  f"{len(prepared.val_idx)} val · TF {runtime['tensorflow']}, {runtime['intra_op_threads'] or 'default'} threads")
    run = train_config(prepared, cfg, seed=seed, epochs=epochs, folds=folds)
    m = run.metrics
    line = (f"[green]done[/green] {run.run_id}: holdout accuracy [bold]{m['val_accuracy']:.4f}[/bold] "
            f"(macro-F1 {m['val_macro_f1']:.4f}), {m['epochs']} epochs in {m['train_seconds']:.0f}s")
    if "cv_mean" in m:
        line += f", CV {m['cv_mean']:.4f} ± {m['cv_std']:.4f}"
    if "test_accuracy" in m:
        line += f", test {m['test_accuracy']:.4f}"
    console.print(line)


@app.command()
def search(
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search space name (configs/spaces/<name>.toml) or path; default: 'quick' on the demo data, else 'default'."),
    budget: Optional[str] = typer.Option(None, "--budget", "-b", help="Time budget for the whole search: 90s, 60m, 2h (default: none)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished search (of --space, if given)."),
    data: Optional[str] = typer.Option(None, "--data", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    seed: int = typer.Option(0, "--seed", help="Seeds every trial and the random sampler."),
    threads: int = typer.Option(0, "--threads", help="TensorFlow intra-op threads; 0 = TensorFlow's default (all cores)."),
    inter_threads: int = typer.Option(0, "--inter-threads", help="TensorFlow inter-op threads; 0 = default."),
) -> None:
    """Train several CNN configurations within a budget; the best holdout-val accuracy wins.

    Successive halving by default: short runs for all, longer ones for the best, never past
    the budget. Every trial becomes a run on the leaderboard; the summary is written to
    runs/searches/<search_id>/search.json. Interrupted? `ferkaggle search --resume`.

    Example: ferkaggle search --space default --budget 60m
    """
    from ferkaggle.data.prepared import load_prepared
    from ferkaggle.search import parse_budget, run_search, search_table, searches_root

    budget_s = parse_budget(budget)
    prepared = load_prepared(data, mmap=True)
    if space is None and not resume:
        # The demo competition is small: the real-data space would spend minutes per rung on it.
        space = "quick" if prepared.manifest.get("demo") else "default"
        console.print(f"search space: {space} ({'demo data' if space == 'quick' else 'competition data'}; --space to choose)")
    _quiet_tensorflow(threads, inter_threads)
    doc = run_search(prepared, space, budget_s=budget_s, seed=seed, resume=resume)
    console.print(search_table(doc))
    w = doc.get("winner")
    if w:
        console.print(f"[green]winner[/green] {escape(w['name'])} → run {w['run_id']}: val accuracy [bold]{w['val_accuracy']:.4f}[/bold]")
    console.print(f"summary: {searches_root() / doc['search_id'] / 'search.json'}")
