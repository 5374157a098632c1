"""Commands that use finished runs: leaderboard, submit, validate, ensemble, report, download.

Thin: parse options, call one stage function (`runs.leaderboard.leaderboard`, `runs.select.select_run`,
`results.submission.write_submission`, `results.ensemble.ensemble_stage`, `results.report.write_report`),
print. Which run `best` / `latest` mean and which runs join an ensemble are decided in those modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.cli.app import QUIET_OPTION, VERBOSE_OPTION, app, choices, set_output, values
from ferkaggle.core.console import console, result
from ferkaggle.core.constants import DEFAULT_SEED, EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.prepared import current_split_fingerprint, load_prepared
from ferkaggle.results import kaggle as kaggle_api
from ferkaggle.results.ensemble import EnsembleConfig, Method, best_on_halves, ensemble_stage
from ferkaggle.results.report import write_report
from ferkaggle.results.submission import validate_submission, write_submission
from ferkaggle.runs import leaderboard as lb
from ferkaggle.runs.registry import RunKind, list_runs, prepared_for_run, runs_root
from ferkaggle.runs.select import best_candidates, select_run

BoardFormat = choices("BoardFormat", lb.FORMATS)
Kind = choices("Kind", RunKind)
Methods = choices("Methods", Method)
RUN_HELP = ("Run id (or a unique part of it), `best` (top of the leaderboard) or `latest` (newest); both only "
            "among runs on the current prepared data.")


@app.command()
def leaderboard(
    format: BoardFormat = typer.Option(BoardFormat("table"), "--format", "-f", help="How to print the board."),
    top: Optional[int] = typer.Option(None, "--top", "-n", help="Show the best N runs of each split."),
    kind: Optional[Kind] = typer.Option(None, "--kind", help="Only runs of this kind."),
    all_runs: bool = typer.Option(False, "--all", help="Include failed, interrupted and running runs (marked, unranked)."),
) -> None:
    """Rank every recorded run by holdout-val accuracy, one section per data split.

    Runs made on different prepared data (a different holdout split) are never ranked
    together; the split of the latest `ferkaggle prepare` comes first. The "scored on" column
    says what each score was computed on, and flags runs that were also selected on it.

    Example: ferkaggle leaderboard --top 10 --format markdown
    """
    format, kind = format.value, values(kind)
    if top is not None and top < 1:
        raise FerkaggleError(f"--top must be at least 1, not {top}")
    sections = lb.leaderboard(kind=kind, top=top, include_all=all_runs, current_split=current_split_fingerprint())
    if format == "csv":
        typer.echo(lb.to_csv(sections), nl=False)
        return
    if format == "json":
        typer.echo(lb.to_json(sections), nl=False)
        return
    if not any(s.rows for s in sections):
        what = f" of kind {kind!r}" if kind else ""
        console.print(f"no {'' if all_runs else 'completed '}runs{what} in {escape(str(runs_root()))}/ yet: "
                      "start with `ferkaggle baseline` or `ferkaggle search`")
        return
    if format == "markdown":
        typer.echo(lb.to_markdown(sections), nl=False)
        return
    if len(sections) > 1:
        console.print(f"[yellow]{len(sections)} different data splits[/yellow]: runs are ranked within each split only")
    for section in sections:
        rows = [lb.cells(row) for row in section.rows]
        columns = _fitting_columns(rows, console.width)
        table = Table(title=f"[bold]{escape(lb.section_title(section))}[/bold]", title_justify="left")
        for name in columns:
            # Only the model description (and, on a narrow terminal, the run id) wraps.
            table.add_column(name, justify="right" if name in _NUMERIC else "left",
                             no_wrap=name not in ("model", "run"), overflow="fold",
                             min_width={"model": 14, "run": 12}.get(name))
        for row, cells in zip(section.rows, rows):
            # Runs that did not complete (--all) are dimmed, unranked and say their status.
            table.add_row(*(escape(cells[lb.COLUMNS.index(name)]) for name in columns),
                          style=None if row.status == "completed" else "dim")
        console.print(table)
        if section.hidden:
            console.print(f"  {section.hidden} more not shown (--top {top})")
    if any(row.selected_on_score for s in sections for row in s.rows):
        console.print(f"[yellow]{lb.SELECTED_MARK}[/yellow]: {lb.SELECTED_NOTE}")


_NUMERIC = ("#", "val acc", "val F1", "CV acc ± std", "time", "size")
_OPTIONAL = ("data", "date", "kind", "size", "scored on")  # dropped in this order when the terminal is narrow


def _fitting_columns(rows: list[list[str]], width: int) -> list[str]:
    """The leaderboard columns that fit `width` characters, dropping the least useful first."""
    need = {name: max([len(name)] + [len(r[i]) for r in rows]) + 3 for i, name in enumerate(lb.COLUMNS)}
    need["model"] = 19  # wraps
    columns = list(lb.COLUMNS)
    for name in _OPTIONAL:
        if sum(need[c] for c in columns) + 1 <= width:
            break
        columns.remove(name)
    return columns


def _print_best_estimate(chosen) -> None:
    """Say what `best`'s holdout figure is worth: it is the score the run was chosen on."""
    pool = best_candidates(list_runs(), chosen.split_fingerprint)
    estimate = best_on_halves(pool, prepared_for_run(chosen).y_val)
    if estimate is None:
        return
    picks = {estimate["picked_on_half_a"], estimate["picked_on_half_b"]}
    which = "both halves picked it" if picks == {chosen.run_id} else (
        f"half A picked {estimate['picked_on_half_a']}, half B {estimate['picked_on_half_b']}")
    console.print(f"`best` chose it by that holdout accuracy among {estimate['candidates']} runs; the same choice "
                  f"made on one holdout half and scored on the other: [bold]{estimate['accuracy']:.4f}[/bold] ({which})")


@app.command()
def submit(
    run: str = typer.Option("best", "--run", "-r", help=RUN_HELP),
    out: Path = typer.Option(Path("submissions"), "--out", "-o", help="Folder for submission files."),
    kaggle: Optional[str] = typer.Option(None, "--kaggle", help="Also upload to this Kaggle competition (needs the kaggle package and credentials)."),
    message: str = typer.Option("", "--message", help="Kaggle submission message (default: the run id and its holdout accuracy)."),
    copies: bool = typer.Option(False, "--copies", help="A test face identical (same bytes) to labelled faces of the prepared data (train and holdout) gets their majority label instead of the model's; a tie keeps the model's label. The run's saved probabilities are unchanged."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Write a Kaggle submission (id,emotion) from a run's saved test probabilities, and validate it.

    Writes submissions/<timestamp>_<run_id>.csv with a header and one row per test id in
    test order; an existing file is never overwritten. When the test set carries labels
    (fer2013.csv PrivateTest, labelled image folders, the demo competition) the local test
    accuracy is printed too. With --copies, a test face that is an exact copy of labelled
    faces takes their majority label; the rows with copies and the labels changed are counted.

    Example: ferkaggle submit --run best --kaggle my-fer-competition --message "cnn + tta"
    """
    set_output(quiet, verbose)
    if kaggle:
        problem = kaggle_api.missing_requirement()
        if problem:
            raise FerkaggleError(problem)
    chosen = select_run(run)
    written = write_submission(chosen, out, copies=copies)
    val = chosen.val_accuracy
    holdout = f", holdout accuracy {val:.4f}" if val is not None else ""
    result(f"[green]wrote[/green] {escape(str(written.path))}: {written.rows} rows, validated "
           f"(run {chosen.run_id}{holdout})")
    if run == "best":
        _print_best_estimate(chosen)
    if written.copies is not None:
        applied = written.copies
        result(f"--copies: {applied.with_copies} test rows have exact copies among the labelled faces; "
               f"{applied.changed} labels changed from the model's, {applied.tied} ties kept the model's label")
    shares = ", ".join(f"{EMOTIONS[k]} {c}" for k, c in enumerate(written.class_counts))
    console.print(f"predicted classes: {shares}")
    if written.test_accuracy is not None:
        result(f"local test accuracy (the test set has labels): [bold]{written.test_accuracy:.4f}[/bold]")
    if kaggle:
        text = message or f"ferkaggle {chosen.run_id}{holdout}"
        kaggle_api.upload(kaggle, written.path, text)
        result(f"[green]uploaded[/green] to Kaggle competition {kaggle!r}")


@app.command()
def validate(
    file: Path = typer.Argument(..., help="The submission CSV to check."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Prepared data folder whose test ids to check against (default: the latest)."),
) -> None:
    """Check a submission CSV against the prepared test ids.

    Reports a wrong header, malformed rows, labels outside 0-6, duplicate ids, missing
    test ids and ids that are not in the test set, each on its own line; exit code 1 if
    anything is wrong.

    Example: ferkaggle validate submissions/2026-11-23_101500_rf-pixels.csv
    """
    prepared = load_prepared(data, mmap=True)
    checked = validate_submission(file, prepared.test_ids)
    if checked.ok:
        console.print(f"[green]valid[/green]: {escape(str(file))} has {checked.rows} rows, one per test id, labels 0-6")
        return
    for problem in checked.problems:
        console.print(f"[bold red]invalid:[/bold red] {escape(problem)}")
    raise typer.Exit(1)


@app.command()
def ensemble(
    runs: Optional[list[str]] = typer.Option(None, "--run", "-r", help="A run to combine (id or unique part); repeat for each member, all of them members. Default: every run on the current prepared data, among which the method chooses on each fitting half (with --top N, among the N best there)."),
    top: int = typer.Option(0, "--top", "-n", help="With no runs named: candidates are every run on the current data (0, the default: greedy chooses among them on each fitting half) or the N best runs on each fitting half."),
    method: Methods = typer.Option(Methods("greedy"), "--method", help="mean, weighted (by accuracy) or greedy (Caruana forward selection)."),
    rounds: int = typer.Option(40, "--rounds", help="Greedy selection steps (with replacement)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds the split of the holdout into halves."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Combine saved runs' probabilities into an ensemble, recorded as a run.

    The reported holdout score is cross-fitted: on each half of the holdout the ensemble
    chooses its members (--top) and weights, and is scored on the other half, so no choice is
    made on the rows it is scored on. The test ensemble is chosen the same way on the whole
    holdout. The ensemble shows on the leaderboard and can be submitted (`ferkaggle submit
    --run latest`). Runs made on different splits are refused.

    Example: ferkaggle ensemble --top 5 --method greedy   (or: ferkaggle ensemble -r RUN_A -r RUN_B --method mean)
    """
    set_output(quiet, verbose)
    cfg = EnsembleConfig(method=method.value, greedy_rounds=rounds, top=top, seed=seed)  # type: ignore[arg-type]
    run, outcome = ensemble_stage(runs or None, cfg)
    metrics = outcome.metrics
    table = Table(title=f"ensemble {run.run_id}")
    for column, justify in (("candidate", "left"), ("holdout acc", "right"), ("in A", "center"), ("in B", "center"),
                            ("test weight", "right")):
        table.add_column(column, justify=justify)
    for run_id, acc in metrics["candidates"].items():
        table.add_row(run_id, lb.fmt_acc(acc), "✓" if run_id in metrics["members_used_on_half_a"] else "",
                      "✓" if run_id in metrics["members_used_on_half_b"] else "", f"{metrics['weights'][run_id]:.3f}")
    result(table)
    result(f"holdout accuracy, cross-fitted (members and weights chosen on the other half): "
                  f"[bold]{metrics['val_accuracy']:.4f}[/bold] (halves {metrics['val_accuracy_half_a']:.4f} / "
                  f"{metrics['val_accuracy_half_b']:.4f}; best single candidate {metrics['best_member_val_accuracy']:.4f}; "
                  f"in-sample {metrics['val_accuracy_in_sample']:.4f})")
    if "test_accuracy" in metrics:
        result(f"local test accuracy: {metrics['test_accuracy']:.4f}")
    result(f"recorded as run {run.run_id}; submit it with `ferkaggle submit --run {run.run_id}`")


@app.command()
def report(
    run: str = typer.Option("best", "--run", "-r", help=RUN_HELP),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Folder for reports; files go to <out>/<run_id>/."),
) -> None:
    """Confusion matrices, per-class precision/recall/F1, learning curves and misclassified faces for a run.

    Writes PNG files (matplotlib) and a markdown summary under reports/<run_id>/, from the
    run's saved holdout probabilities.

    Example: ferkaggle report --run best
    """
    chosen = select_run(run)
    written = write_report(chosen, out)
    table = Table(title=f"{chosen.run_id}: holdout accuracy {written.accuracy:.4f}, macro-F1 {written.macro_f1:.4f}")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in written.per_class:
        table.add_row(row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    console.print(table)
    console.print(f"wrote {', '.join(written.files)} to {escape(str(written.folder))}/")


@app.command()
def download(
    competition: str = typer.Argument(..., help="Kaggle competition slug, e.g. challenges-in-representation-learning-facial-expression-recognition-challenge."),
    out: Path = typer.Option(Path("data"), "--out", "-o", help="Folder to put the files in."),
) -> None:
    """Fetch a competition's files into data/ with the official kaggle package (needs credentials).

    Example: ferkaggle download my-fer-competition && ferkaggle prepare
    """
    files = kaggle_api.download(competition, out)
    console.print(f"[green]downloaded[/green] {len(files)} files into {escape(str(out))}/; next: `ferkaggle prepare --source {escape(str(out))}`")
