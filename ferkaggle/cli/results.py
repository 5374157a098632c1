"""Commands that use finished runs: submit, validate, ensemble, report, download."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle import EMOTIONS
from ferkaggle.cli.app import app
from ferkaggle.console import console
from ferkaggle.data.prepared import current_split_fingerprint
from ferkaggle.errors import FerkaggleError


def _resolve_run(ref: str):
    from ferkaggle.runs import list_runs, load_run

    if ref == "latest":
        runs = list_runs()
        if not runs:
            raise FerkaggleError("no completed runs yet: run `ferkaggle baseline` or `ferkaggle search` first")
        return runs[-1]
    return load_run(ref, split_fingerprint=current_split_fingerprint() if ref == "best" else None)


@app.command()
def submit(
    run: str = typer.Option("best", "--run", "-r", help="Run id (or a unique part of it), `best` (highest holdout accuracy on the current prepared data) or `latest`."),
    out: Path = typer.Option(Path("submissions"), "--out", help="Folder for submission files."),
    kaggle: Optional[str] = typer.Option(None, "--kaggle", help="Also upload to this Kaggle competition (needs the kaggle package and credentials)."),
    message: str = typer.Option("", "--message", "-m", help="Kaggle submission message (default: the run id and its holdout accuracy)."),
) -> None:
    """Write a Kaggle submission (id,emotion) from a run's saved test probabilities, and validate it.

    Writes submissions/<timestamp>_<run_id>.csv with a header and one row per test id in
    test order; an existing file is never overwritten. When the test set carries labels
    (fer2013.csv PrivateTest, labelled image folders, the demo competition) the local test
    accuracy is printed too.

    Example: ferkaggle submit --run best --kaggle my-fer-competition -m "cnn + tta"
    """
    from ferkaggle import kaggle_api
    from ferkaggle.submission import write_submission

    if kaggle:
        problem = kaggle_api.missing_requirement()
        if problem:
            raise FerkaggleError(problem)
    chosen = _resolve_run(run)
    result = write_submission(chosen, out)
    val = chosen.val_accuracy
    holdout = f", holdout accuracy {val:.4f}" if val is not None else ""
    console.print(f"[green]wrote[/green] {escape(str(result.path))}: {result.rows} rows, validated "
                  f"(run {chosen.run_id}{holdout})")
    shares = ", ".join(f"{EMOTIONS[k]} {c}" for k, c in enumerate(result.class_counts))
    console.print(f"predicted classes: {shares}")
    if result.test_accuracy is not None:
        console.print(f"local test accuracy (the test set has labels): [bold]{result.test_accuracy:.4f}[/bold]")
    if kaggle:
        text = message or f"ferkaggle {chosen.run_id}{holdout}"
        kaggle_api.upload(kaggle, result.path, text)
        console.print(f"[green]uploaded[/green] to Kaggle competition {kaggle!r}")


@app.command()
def validate(
    file: Path = typer.Argument(..., help="The submission CSV to check."),
    data: Optional[Path] = typer.Option(None, "--data", help="Prepared data folder whose test ids to check against (default: the latest)."),
) -> None:
    """Check a submission CSV against the prepared test ids.

    Reports a wrong header, malformed rows, labels outside 0-6, duplicate ids, missing
    test ids and ids that are not in the test set, each on its own line; exit code 1 if
    anything is wrong.

    Example: ferkaggle validate submissions/2026-11-23_101500_rf-pixels.csv
    """
    from ferkaggle.data.prepared import load_prepared
    from ferkaggle.submission import validate_submission

    prepared = load_prepared(data, mmap=True)
    result = validate_submission(file, prepared.test_ids)
    if result.ok:
        console.print(f"[green]valid[/green]: {escape(str(file))} has {result.rows} rows, one per test id, labels 0-6")
        return
    for problem in result.problems:
        console.print(f"[bold red]invalid:[/bold red] {escape(problem)}")
    raise typer.Exit(1)


@app.command()
def ensemble(
    runs: Optional[list[str]] = typer.Argument(None, help="Runs to combine (ids or unique parts). Default: the --top runs."),
    top: int = typer.Option(3, "--top", "-k", help="With no runs named: combine the K best non-ensemble runs on the current prepared data."),
    method: str = typer.Option("greedy", "--method", help="mean | weighted (by holdout accuracy) | greedy (Caruana forward selection)."),
    rounds: int = typer.Option(40, "--rounds", help="Greedy selection steps (with replacement)."),
    seed: int = typer.Option(42, "--seed", help="Seeds the split of the holdout into halves for honest scoring."),
) -> None:
    """Combine saved runs' probabilities into an ensemble, recorded as a run.

    The reported holdout score is honest: weights are fitted on one half of the holdout and
    scored on the other, and vice versa. The ensemble shows on the leaderboard and can be
    submitted (`ferkaggle submit --run latest`). Runs made on different splits are refused.

    Example: ferkaggle ensemble --top 5 --method greedy
    """
    from ferkaggle.ensemble import EnsembleConfig, run_ensemble
    from ferkaggle.runs import list_runs, load_run

    if method not in ("mean", "weighted", "greedy"):
        raise FerkaggleError(f"--method must be mean, weighted or greedy, not {method!r}")
    if runs:
        members = [load_run(ref) for ref in runs]
        if len({m.run_id for m in members}) < len(members):
            raise FerkaggleError("the same run is named twice")
    else:
        split = current_split_fingerprint()
        pool = [r for r in list_runs() if r.kind != "ensemble" and r.val_accuracy is not None
                and r.has_proba("val") and r.has_proba("test") and (split is None or r.split_fingerprint == split)]
        pool.sort(key=lambda r: r.val_accuracy, reverse=True)
        members = pool[:top]
        if len(members) < 2:
            raise FerkaggleError(f"found {len(members)} usable run(s) on the current prepared data; an ensemble needs two")
    for m in members:
        if m.status != "completed":
            raise FerkaggleError(f"run {m.run_id} is {m.status}, not completed")
    run, result = run_ensemble(members, EnsembleConfig(method=method, greedy_rounds=rounds, seed=seed))
    table = Table(title=f"ensemble {run.run_id}")
    table.add_column("member")
    table.add_column("holdout acc", justify="right")
    table.add_column("weight", justify="right")
    for m, w in zip(members, result.weights):
        table.add_row(m.run_id, f"{m.val_accuracy:.4f}", f"{w:.3f}")
    console.print(table)
    metrics = result.metrics
    console.print(f"honest holdout accuracy (cross-fitted halves): [bold]{metrics['val_accuracy']:.4f}[/bold] "
                  f"(halves {metrics['val_accuracy_half_a']:.4f} / {metrics['val_accuracy_half_b']:.4f}; "
                  f"best single member {metrics['best_member_val_accuracy']:.4f}; in-sample {metrics['val_accuracy_in_sample']:.4f})")
    if "test_accuracy" in metrics:
        console.print(f"local test accuracy: {metrics['test_accuracy']:.4f}")
    console.print(f"recorded as run {run.run_id}; submit it with `ferkaggle submit --run {run.run_id}`")


@app.command()
def report(
    run: str = typer.Argument("best", help="Run id (or a unique part), `best` or `latest`."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for reports; files go to <out>/<run_id>/."),
) -> None:
    """Confusion matrices, per-class precision/recall/F1, learning curves and misclassified faces for a run.

    Writes PNG files (matplotlib) and a markdown summary under reports/<run_id>/, from the
    run's saved holdout probabilities.

    Example: ferkaggle report best
    """
    from ferkaggle.report import write_report

    chosen = _resolve_run(run)
    result = write_report(chosen, out)
    table = Table(title=f"{chosen.run_id}: holdout accuracy {result.accuracy:.4f}, macro-F1 {result.macro_f1:.4f}")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result.per_class:
        table.add_row(row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    console.print(table)
    console.print(f"wrote {', '.join(result.files)} to {escape(str(result.folder))}/")


@app.command()
def download(
    competition: str = typer.Argument(..., help="Kaggle competition slug, e.g. challenges-in-representation-learning-facial-expression-recognition-challenge."),
    out: Path = typer.Option(Path("data"), "--out", help="Folder to put the files in."),
) -> None:
    """Fetch a competition's files into data/ with the official kaggle package (needs credentials).

    Example: ferkaggle download my-fer-competition && ferkaggle prepare
    """
    from ferkaggle import kaggle_api

    files = kaggle_api.download(competition, out)
    console.print(f"[green]downloaded[/green] {len(files)} files into {escape(str(out))}/; next: `ferkaggle prepare --source {escape(str(out))}`")
