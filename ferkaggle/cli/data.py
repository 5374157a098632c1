"""Data commands: `demo-data` (a synthetic competition) and `prepare` (raw files -> prepared arrays)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.cli.app import QUIET_OPTION, VERBOSE_OPTION, app, choices, set_output
from ferkaggle.core.console import console, result, warn
from ferkaggle.core.constants import DEFAULT_SEED, EMOTIONS
from ferkaggle.data.prepare import PrepareOptions, describe_duplicates
from ferkaggle.data.prepare import demo_if_missing as find_demo
from ferkaggle.data.prepare import prepare as run_prepare
from ferkaggle.data.records import BadRowMode
from ferkaggle.data.synthetic import DEMO_SEED, write_demo_competition

BadRow = choices("BadRow", BadRowMode)


@app.command("demo-data")
def demo_data(
    out: Path = typer.Option(Path("data/demo"), "--out", "-o", help="Folder to write train.csv, test.csv and test_labels.csv into."),
    train_size: int = typer.Option(4000, "--train-size", min=7, help="Labelled training faces."),
    test_size: int = typer.Option(1000, "--test-size", min=1, help="Test faces (their labels go to test_labels.csv)."),
    seed: int = typer.Option(DEMO_SEED, "--seed", help="Same seed, same faces (the demo's own seed, not the pipeline's)."),
    force: bool = typer.Option(False, "--force", help="Replace demo files already in --out."),
) -> None:
    """Write a synthetic FER-style competition (procedurally drawn faces) in the Kaggle layout.

    Faces are 48x48 grayscale cartoons whose expression (mouth, brows, eyes, nose wrinkles) sets
    the label, with random pose, lighting, noise and occluders, and FER2013's class imbalance.
    Outputs: <out>/train.csv (emotion,pixels), <out>/test.csv (id,pixels) and
    <out>/test_labels.csv (id,emotion) so submissions can be scored locally.

    Example: ferkaggle demo-data --out data/demo --train-size 4000 --test-size 1000
    """
    written = write_demo_competition(out, train_size, test_size, seed=seed, overwrite=force)
    console.print(f"[green]wrote[/green] a demo competition ({train_size:,} train / {test_size:,} test faces, seed {seed}):")
    for path in written:
        console.print(f"  {escape(str(path))}")
    console.print(f"next: ferkaggle prepare --source {escape(str(out))}")


def _class_table(report) -> Table:
    table = Table(title="class counts", title_justify="left")
    table.add_column("class")
    splits = [s for s in ("train", "val", "test") if report.class_counts.get(s) is not None]
    for split in splits:
        table.add_column(split, justify="right")
    for k, name in enumerate(EMOTIONS):
        table.add_row(f"{k} {name}", *(f"{report.class_counts[s][k]:,}" for s in splits))
    table.add_row("[bold]total[/bold]", *(f"[bold]{sum(report.class_counts[s]):,}[/bold]" for s in splits))
    return table


def _show_report(report) -> None:
    if report.cached:
        result(f"[green]reused cached prepared data[/green] {escape(str(report.path))} "
                      f"(inputs and options unchanged; --force rebuilds) [{report.seconds:.2f}s]")
    console.print(f"layout: {escape(report.layout)}")
    for src in report.sources:
        console.print(f"  source: {escape(str(src.get('path')))}")
    for note in report.notes:
        console.print(f"[cyan]note:[/cyan] {escape(note)}")
    console.print(_class_table(report))
    rows = report.rows
    opts = report.options
    split = "PublicTest rows (--val-from-usage)" if opts.get("val_from_usage") else f"val-size {opts.get('val_size')}"
    if report.class_counts.get("test") is None:
        console.print(f"test: {rows.get('test', 0):,} rows, unlabelled")
    console.print(f"split: {rows.get('val', 0):,} holdout-val rows ({split}), {rows.get('train', 0):,} training rows in "
                  f"{opts.get('folds')} stratified folds, seed {opts.get('seed')}")
    for line in describe_duplicates(report.duplicates, report.options):
        console.print(escape(line))
    if report.skipped_count:
        warn(f"skipped {report.skipped_count:,} bad row(s) (--on-bad-row skip):")
        for row in report.skipped[:10]:
            where = str(row.get("file")) + (f", line {row['line']}" if row.get("line") is not None else "")
            console.print(f"  {escape(where)}: {escape(str(row.get('reason')))}")
        if report.skipped_count > 10:
            console.print(f"  ... and {report.skipped_count - 10:,} more, listed in {escape(str(report.path))}/manifest.json")
    if not report.cached:
        result(f"[green]prepared[/green] {escape(str(report.path))} in {report.seconds:.1f}s "
                      f"(key {report.key}; later stages use it via {escape(str(report.path.parent))}/LATEST)")


@app.command()
def prepare(
    source: Optional[Path] = typer.Option(None, "--source", "-s", help="Folder, zip or fer2013.csv holding the competition data (default: data/)."),
    train: Optional[Path] = typer.Option(None, "--train", help="Kaggle-layout train file (emotion,pixels; .csv or .csv.gz). Needs --test."),
    test: Optional[Path] = typer.Option(None, "--test", help="Kaggle-layout test file (id,pixels). Needs --train."),
    test_labels: Optional[Path] = typer.Option(None, "--test-labels", help="id,emotion file labelling the test set, for local scoring (default: test_labels.csv beside test.csv, if any)."),
    val_size: float = typer.Option(0.1, "--val-size", help="Holdout-val share of the labelled rows (or a row count if >= 1)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Stratified CV folds over the remaining training rows."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds the holdout split and the folds: same seed, same split."),
    val_from_usage: bool = typer.Option(False, "--val-from-usage", help="fer2013.csv/icml: hold out the PublicTest rows instead of --val-size."),
    dedupe: bool = typer.Option(False, "--dedupe", help="Leave out labelled rows whose exact copies disagree on the label, and blank (constant) labelled images. Duplicates are always kept together by the split; rows matching test images always stay in training."),
    on_bad_row: BadRow = typer.Option(BadRow("error"), "--on-bad-row", help="error: stop at the first bad row, naming file and line; skip: drop bad labelled rows and list them (a bad test row is always an error)."),
    out: Path = typer.Option(Path("data/prepared"), "--out", "-o", help="Root folder of prepared sets; each lands in <out>/<key>/."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a prepared set with the same inputs and options exists."),
    demo_if_missing: bool = typer.Option(False, "--demo-if-missing", help="If the default source data/ (no --source, or one that is ./data) has no competition data, generate the synthetic demo into data/demo/ and prepare that. An explicit other --source is never replaced by the demo."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Read, validate, split and store the competition data for every later stage.

    Inputs: a folder (default data/), zip or fer2013.csv, detected automatically (Kaggle
    train.csv + test.csv, fer2013.csv / icml_face_data.csv, image folders; plain, .gz or zipped),
    or explicit --train/--test files.
    Outputs: <out>/<key>/ with x/y/fold/x_test/test_ids arrays and manifest.json (sources and
    sha256, class counts, duplicates, skipped rows), and <out>/LATEST pointing at it. The
    holdout-val split is shared by every run made from it. Unchanged inputs and options reuse
    the cached folder at once.

    The holdout and the folds are drawn by duplicate group (exact and near copies of one image
    stay together); the counts of duplicates, conflicting labels and blank images are printed
    and kept in the manifest. Test rows are never dropped: a bad one is an error.

    Example: ferkaggle prepare --train data/train.csv --test data/test.csv --dedupe
    """
    set_output(quiet, verbose)
    use_demo = False
    folder, created = find_demo(source) if demo_if_missing and train is None and test is None else (None, False)
    if folder is not None:
        where = escape(str(source if source is not None else Path("data")))
        warn(f"[bold yellow]no competition data in {where}/: using the synthetic DEMO competition[/bold yellow] "
             f"({'generated' if created else 'already'} in {escape(str(folder))}/). Scores on it say nothing about FER.")
        console.print(f"  to use real data, put train.csv + test.csv (or fer2013.csv) in {where}/ "
                      f"or run: ferkaggle prepare --train PATH --test PATH")
        source, use_demo = folder, True
    options = PrepareOptions(val_size=val_size, folds=folds, seed=seed, val_from_usage=val_from_usage,
                             dedupe=dedupe, on_bad_row=on_bad_row.value)
    _, report = run_prepare(source, train=train, test=test, test_labels=test_labels, options=options,
                            out=out, force=force, demo=use_demo)
    _show_report(report)
