"""Commands for CNNs: `train` (one configuration), `search` (several, within a budget) and `refit`
(a run's recipe again on more rows, for the submission).

Thin: resolve the preset / space and the prepared data, call `cnn.train.train_config`,
`cnn.refit.refit_run`, `search.stage.run_search` or `search.stage.pull_runs`, render the result with
rich. The stages (and TensorFlow with them) are imported inside the commands so that
`ferkaggle --help` stays instant.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from ferkaggle.cli.app import QUIET_OPTION, VERBOSE_OPTION, app, choices, quiet_tensorflow, set_output
from ferkaggle.cnn.refit import REFIT_ROWS
from ferkaggle.cnn.runtime import describe_runtime
from ferkaggle.core.console import console, result
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError

RefitRows = choices("RefitRows", REFIT_ROWS)


@app.command()
def train(
    config: str = typer.Option("simple", "--config", "-c", help="CNN preset name (ferkaggle/configs/<name>.toml) or path to a .toml."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds Python, NumPy, Keras, the stop split, shuffling and augmentation (recorded in run.json)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Max epochs (overrides the preset; also the LR schedule's horizon)."),
    folds: bool = typer.Option(False, "--folds", help="Train one model per CV fold: out-of-fold probabilities, cv_mean/cv_std."),
    threads: int = typer.Option(0, "--threads", help="TensorFlow intra-op threads; 0 = TensorFlow's default (all cores)."),
    inter_threads: int = typer.Option(0, "--inter-threads", help="TensorFlow inter-op threads; 0 = default."),
    teacher: Optional[list[str]] = typer.Option(None, "--teacher", help="Distillation: a CNN run whose probabilities on the training faces join the targets (repeat for several: their mean)."),
    teacher_weight: Optional[float] = typer.Option(None, "--teacher-weight", help="Distillation: the teachers' share of each target; the one-hot label has the rest (default 0.5; 0 with --pseudo-labels)."),
    pseudo: Optional[float] = typer.Option(None, "--pseudo-labels", help="Self-training: test faces the teachers give one class at least this probability (e.g. 0.8) join the training rows with that class. Uses the test images, which some competitions forbid."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Train one CNN configuration and record it as a run (it then shows on the leaderboard).

    The model fits on 90% of the training rows and early-stops / keeps its best epoch on the
    other 10% (the stop split), never on the holdout its score is computed on. Val/test
    probabilities use the preset's test-time augmentation (hflip by default). The same seed
    gives the same run on the CPU.

    With --teacher (knowledge distillation) the model fits on targets that mix the label with
    the teachers' probabilities on each training face (CNN runs of this split, each with its
    test-time views; not ensembles, whose weights were fitted on the holdout). With
    --pseudo-labels the teachers label the test faces they are sure of, and those join the
    training rows (never the stop split; never a copy of a holdout face, so the holdout score
    stays one the model was not fitted on).

    Example: ferkaggle train --config simple --epochs 20
    """
    from ferkaggle.cnn.config import load_train_config
    from ferkaggle.cnn.distill import check_distillation, teacher_weight_or_default
    from ferkaggle.cnn.train import train_config
    from ferkaggle.data.prepared import load_prepared
    from ferkaggle.runs.select import select_run

    set_output(quiet, verbose)
    cfg = load_train_config(config)
    prepared = load_prepared(data, mmap=True)
    teachers = [select_run(ref) for ref in teacher or []]
    check_distillation(teachers, prepared, teacher_weight_or_default(teacher_weight, pseudo), pseudo,
                       folds)  # before TensorFlow loads
    runtime = quiet_tensorflow(threads, inter_threads)
    console.print(f"[bold]{escape(cfg.name)}[/bold] on {escape(prepared.key)} · {len(prepared.train_idx)} train / "
                  f"{len(prepared.val_idx)} val · {describe_runtime(runtime)}")
    run = train_config(prepared, cfg, seed=seed, epochs=epochs, folds=folds, teachers=teachers,
                       teacher_weight=teacher_weight, pseudo_threshold=pseudo)
    m = run.metrics
    line = (f"[green]done[/green] {run.run_id}: holdout accuracy [bold]{m['val_accuracy']:.4f}[/bold] "
            f"(macro-F1 {m['val_macro_f1']:.4f}), {m['epochs']} epochs in {m['train_seconds']:.0f}s")
    if "cv_mean" in m:
        line += f", CV {m['cv_mean']:.4f} ± {m['cv_std']:.4f}"
    if "pseudo_labels" in run.info:
        p = run.info["pseudo_labels"]
        line += (f", {p['rows']:,} pseudo-labelled test faces (>= {p['threshold']:g}; "
                 f"{p['left_out_near_holdout']:,} copies of holdout faces left out)")
    if "test_accuracy" in m:
        line += f", test {m['test_accuracy']:.4f}"
    result(line)


@app.command()
def refit(
    run: str = typer.Option("best", "--run", "-r", help="The CNN run to refit: a run id (or a unique part), `best` or `latest` of the current data."),
    rows: RefitRows = typer.Option(RefitRows("all"), "--rows", help="all: every labelled row, holdout included (for the submission); train: the training rows only (the holdout still scores it)."),
    threads: int = typer.Option(0, "--threads", help="TensorFlow intra-op threads; 0 = TensorFlow's default (all cores)."),
    inter_threads: int = typer.Option(0, "--inter-threads", help="TensorFlow inter-op threads; 0 = default."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Train a CNN run's recipe again on more rows and record it as a new run, for the submission.

    Same config, seed and number of epochs, the schedule planned for them, no stop split: the
    model is the last epoch. With --rows all (default) it also trains on the holdout, so the
    holdout cannot score it: the new run carries the source run's holdout figures and
    probabilities (the identical recipe before the refit), marked on the leaderboard, and ranks
    just above its source; `submit --run best` then submits it, and `ferkaggle ensemble` takes it
    in place of its source. Costs one more training of the run (on ~1.2x the rows).

    Example: ferkaggle refit -r 2026-11-30_161712_vgg-w16-d4x2 && ferkaggle ensemble && ferkaggle submit
    """
    from ferkaggle.cnn.refit import check_refit_rows, refit_config, refit_run
    from ferkaggle.runs.registry import prepared_for_run
    from ferkaggle.runs.select import select_run

    set_output(quiet, verbose)
    rows = rows.value
    check_refit_rows(rows)
    source = select_run(run)
    cfg = refit_config(source)  # checks the run before anything is loaded
    prepared = prepared_for_run(source)
    quiet_tensorflow(threads, inter_threads)
    n = len(prepared.train_idx) + (len(prepared.val_idx) if rows == "all" else 0)
    console.print(f"refit of [bold]{escape(source.run_id)}[/bold] (holdout {source.val_accuracy:.4f}): "
                  f"{escape(cfg.name)} for {cfg.epochs} epochs on {n} rows ({rows})")
    new = refit_run(source, prepared, rows=rows)
    m = new.metrics
    how = "the source's, the recipe before the refit" if rows == "all" else "scored on the holdout"
    line = (f"[green]done[/green] {new.run_id}: holdout accuracy [bold]{m['val_accuracy']:.4f}[/bold] ({how}), "
            f"{m['epochs']} epochs in {m['train_seconds']:.0f}s")
    if "test_accuracy" in m:
        line += f", test {m['test_accuracy']:.4f} (source {source.metrics.get('test_accuracy', float('nan')):.4f})"
    result(line)


@app.command()
def search(
    space: Optional[str] = typer.Option(None, "--space", help="Search space name (ferkaggle/configs/spaces/<name>.toml) or path; default: 'quick' on the demo data, 'gpu' on competition data where TensorFlow sees a GPU, else 'default'."),
    budget: Optional[str] = typer.Option(None, "--budget", "-b", help="Wall-time budget of this worker: 90s, 60m, 2h (default: none)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest study of the current data (no --space needed). Re-running the same command continues its study too."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Study storage, any SQLAlchemy URL (postgresql://user@host:5432/db); default: the embedded runs/searches/studies.db."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name shared by all workers (default: <space name>-<split fingerprint>-<space fingerprint>: a changed space starts a new study)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Finished + pruned trials the study aims for (default: the space's n_trials)."),
    heartbeat: int = typer.Option(60, "--heartbeat", help="Seconds between a worker's heartbeats; a trial silent for 2x this + 1 is failed as stale and retried."),
    artifacts: Optional[str] = typer.Option(None, "--artifacts", help="Folder of an Optuna artifact store (shared by the workers) to upload every trial's run to; `ferkaggle pull` brings them into one runs/."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds every trial and the sampler (recorded in the study: its creator's seed wins)."),
    threads: int = typer.Option(0, "--threads", help="TensorFlow intra-op threads; 0 = TensorFlow's default (all cores)."),
    inter_threads: int = typer.Option(0, "--inter-threads", help="TensorFlow inter-op threads; 0 = default."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Search CNN configurations with Optuna (TPE + asynchronous successive halving) within a budget.

    The space's named trials run first, then sampled ones; weak trials are pruned on the
    stop-split accuracy (never the holdout). Every finished or pruned trial becomes a
    run on the leaderboard. Interrupted? Run the same command again (or --resume): finished
    trials are kept and the interrupted one continues from its last epoch. More workers: run
    the same command with the same --storage and --study on any machine.

    Example: ferkaggle search --space default --budget 60m
    """
    from ferkaggle.data.prepared import load_prepared
    from ferkaggle.runs.studies import search_dir
    from ferkaggle.search.spaces import parse_budget
    from ferkaggle.search.stage import default_space, run_search, search_table

    set_output(quiet, verbose)
    budget_s = parse_budget(budget)
    if trials is not None and trials < 1:
        raise FerkaggleError("--trials must be at least 1")
    prepared = load_prepared(data, mmap=True)
    runtime = quiet_tensorflow(threads, inter_threads)  # before default_space, which asks the backend for a GPU
    console.print(f"runtime: {describe_runtime(runtime)}")
    if space is None and not resume and study is None:
        space, why = default_space(bool(prepared.manifest.get("demo")))
        console.print(f"search space: {space} ({why}; --space to choose)")
    doc = run_search(prepared, space, budget_s=budget_s, seed=seed, resume=resume, storage=storage,
                     study_name=study, n_trials=trials, heartbeat_s=heartbeat, artifacts=artifacts)
    result(search_table(doc))
    w = doc.get("winner")
    if w:
        result(f"[green]best trial[/green] {escape(w['name'])} → run {w['run_id']}: stop-split accuracy "
                      f"{w['stop_accuracy']:.4f}, holdout accuracy [bold]{w['val_accuracy']:.4f}[/bold]")
    here = ", ".join(str(n) for n in doc["ran_here"]) or "none"
    console.print(f"worker {escape(doc['worker'])} ran trials: {here}")
    console.print(f"summary: {search_dir(doc['study']) / 'search.json'}")


@app.command()
def pull(
    study: str = typer.Option(..., "--study", help="Study name."),
    artifacts: str = typer.Option(..., "--artifacts", help="The artifact store folder the workers uploaded to."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Study storage URL (default: the embedded study file)."),
) -> None:
    """Bring every recorded trial's run of a study from the artifact store into this runs/ folder.

    Example: ferkaggle pull --storage postgresql://user@db/optuna --study fer --artifacts /mnt/fer-artifacts
    """
    from ferkaggle.search.stage import pull_runs

    counts = pull_runs(storage, study, artifacts)
    console.print(f"pulled {counts['pulled']} runs ({counts['present']} already here"
                  + (f", {counts['missing']} recorded without an artifact" if counts["missing"] else "") + ")")
