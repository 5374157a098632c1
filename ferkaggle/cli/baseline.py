"""Commands for classical baselines and the leaderboard: `baseline`, `leaderboard`.

Thin: parse options into a config, call `baseline.run_baseline` / `leaderboard.leaderboard`,
render the result with rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle import leaderboard as lb  # standard library only: keeps --help fast
from ferkaggle.cli.app import app
from ferkaggle.console import console
from ferkaggle.data.prepared import current_split_fingerprint
from ferkaggle.errors import FerkaggleError

MODEL_CHOICES = "rf | extra-trees | logreg | knn | svm | nb"


@app.command()
def baseline(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=f"Classifier: {MODEL_CHOICES} (default rf)."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="pixels (grey levels / 255, default) or hog."),
    pca: Optional[int] = typer.Option(None, "--pca", help="PCA components fitted per fold; 0 = off (default: knn 100, svm 50, others off)."),
    n_estimators: Optional[int] = typer.Option(None, "--n-estimators", help="Trees for rf / extra-trees (default 100)."),
    max_depth: Optional[int] = typer.Option(None, "--max-depth", help="Tree depth for rf / extra-trees; 0 = full depth (default)."),
    min_samples_leaf: Optional[int] = typer.Option(None, "--min-samples-leaf", help="Minimum rows per leaf (default 1)."),
    max_features: Optional[str] = typer.Option(None, "--max-features", help="Features tried per split: sqrt (default), log2 or a fraction."),
    class_weight: Optional[str] = typer.Option(None, "--class-weight", help="none (default) or balanced (rf, extra-trees, logreg)."),
    c: Optional[float] = typer.Option(None, "--c", help="Regularisation C for logreg or svm (default 1)."),
    k: Optional[int] = typer.Option(None, "--k", help="Neighbours for knn (default 5)."),
    max_iter: Optional[int] = typer.Option(None, "--max-iter", help="Solver iterations for logreg (default 200)."),
    max_train_rows: Optional[int] = typer.Option(None, "--max-train-rows", help="Cap on each fold's training rows, stratified; 0 = all (default: svm 8000, others all)."),
    config: Optional[str] = typer.Option(None, "--config", help="Preset name (configs/baseline/<name>.toml) or path; flags override it."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 42): the same seed gives the same CV scores."),
    n_jobs: Optional[int] = typer.Option(None, "--n-jobs", help="Worker processes; -1 = all cores (default)."),
    data: Optional[str] = typer.Option(None, "--data", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    save_model: Optional[bool] = typer.Option(None, "--save-model/--no-save-model", help="Write the fold models to model.joblib (default on)."),
) -> None:
    """Cross-validate a classical model on the prepared folds and record it as a run.

    Fits one model per CV fold of the prepared training rows, reports each fold's accuracy
    and macro-F1, then the mean ± std; saves out-of-fold, holdout-val and test probabilities
    (val/test: the mean of the fold models) to runs/<run_id>/.

    Example: ferkaggle baseline --model rf --features hog --n-estimators 300
    """
    from ferkaggle.baseline import BaselineConfig, run_baseline
    from ferkaggle.config import from_dict, load_preset
    from ferkaggle.data.prepared import load_prepared

    if c is not None and model is None and config is None:
        raise FerkaggleError("--c applies to logreg or svm: give --model logreg or --model svm")
    cfg = load_preset(BaselineConfig, config, subdir="baseline")
    chosen = model or cfg.model
    flags = {
        "model": model, "features": features, "pca": pca, "n_estimators": n_estimators, "max_depth": max_depth,
        "min_samples_leaf": min_samples_leaf, "max_features": max_features, "class_weight": class_weight,
        "knn_k": k, "max_iter": max_iter, "max_train_rows": max_train_rows, "seed": seed, "n_jobs": n_jobs,
        "save_model": save_model,
        "logreg_c": c if chosen == "logreg" else None, "svm_c": c if chosen == "svm" else None,
    }
    if c is not None and chosen not in ("logreg", "svm"):
        raise FerkaggleError(f"--c applies to logreg or svm, not {chosen}")
    cfg = from_dict(BaselineConfig, {key: v for key, v in flags.items() if v is not None}, "command line", cfg)
    prepared = load_prepared(data, mmap=True)
    console.print(f"prepared data [bold]{escape(prepared.key)}[/bold]: {len(prepared.train_idx)} training rows in "
                  f"{prepared.num_folds} folds, {len(prepared.val_idx)} holdout-val, {len(prepared.x_test)} test")
    run = run_baseline(prepared, cfg)
    m = run.metrics

    table = Table(title=f"{run.info['summary']} — {prepared.num_folds}-fold CV", title_justify="left")
    for name, justify in (("fold", "right"), ("train rows", "right"), ("accuracy", "right"), ("macro-F1", "right"), ("time", "right")):
        table.add_column(name, justify=justify)
    for fold in m["folds"]:
        table.add_row(str(fold["fold"]), str(fold["n_train"]), f"{fold['accuracy']:.4f}", f"{fold['macro_f1']:.4f}",
                      f"{fold['seconds']:.1f}s")
    table.add_row("mean", "", f"{m['cv_mean']:.4f} ± {m['cv_std']:.4f}", f"{m['cv_macro_f1_mean']:.4f}",
                  f"{m['train_seconds']:.1f}s fit", style="bold")
    console.print(table)
    console.print(f"holdout-val: accuracy [bold]{m['val_accuracy']:.4f}[/bold], macro-F1 {m['val_macro_f1']:.4f} "
                  "(mean of the fold models)")
    if "test_accuracy" in m:
        console.print(f"test (labelled): accuracy {m['test_accuracy']:.4f}")
    size = f", model {m['model_bytes'] / 1e6:.1f} MB" if m.get("model_bytes") else ""
    console.print(f"[green]recorded[/green] run {escape(run.run_id)} in {escape(str(run.dir))}{size}")


@app.command()
def leaderboard(
    format: str = typer.Option("table", "--format", help="table | markdown | csv | json."),
    top: Optional[int] = typer.Option(None, "--top", "-n", help="Show the best N runs of each split."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only runs of this kind: baseline, cnn, ensemble."),
    all_runs: bool = typer.Option(False, "--all", help="Include failed, interrupted and running runs (marked, unranked)."),
) -> None:
    """Rank every recorded run by holdout-val accuracy, one section per data split.

    Runs made on different prepared data (a different holdout split) are never ranked
    together; the split of the latest `ferkaggle prepare` comes first.

    Example: ferkaggle leaderboard --top 10 --format markdown
    """
    from ferkaggle.runs import runs_root

    if format not in lb.FORMATS:
        raise FerkaggleError(f"unknown format {format!r}; choose one of {', '.join(lb.FORMATS)}")
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


_NUMERIC = ("#", "val acc", "val F1", "CV acc ± std", "time", "size")
_OPTIONAL = ("data", "date", "kind", "size")  # dropped in this order when the terminal is narrow


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
