"""The data report command: `explore` (look at a prepared set before modelling it).

Thin: resolve the prepared set, call `results.explore.write_data_report`, list the files with rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.cli.app import app
from ferkaggle.core.console import console
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.data.prepared import load_prepared
from ferkaggle.results.explore import CAPTIONS, DEFAULT_DIR, write_data_report


@app.command()
def explore(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    out: Path = typer.Option(DEFAULT_DIR, "--out", "-o", help="Root folder of data reports; each lands in <out>/<prepared key>/."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seeds the sample faces and the PCA subsample."),
) -> None:
    """Write a data report: class counts, sample and mean faces, duplicates, PCA and eigenfaces.

    Reads a prepared set and writes PNGs plus an index.md (captions and the numbers behind each
    figure: rows per class and split, duplicate groups and conflicting labels found by prepare,
    components reaching 90/95/99 % of the variance) to <out>/<prepared key>/, replacing an
    earlier report of the same set as a whole.

    Example: ferkaggle explore --out reports/data
    """
    prepared = load_prepared(data, mmap=True)
    console.print(f"prepared data [bold]{escape(prepared.key)}[/bold]: {len(prepared.x):,} labelled rows, "
                  f"{len(prepared.x_test):,} test")
    result = write_data_report(prepared, out, seed=seed)
    table = Table(title=f"data report in {escape(str(result.folder))}", title_justify="left")
    table.add_column("file")
    table.add_column("shows")
    for name in result.files:
        table.add_row(escape(name), escape(CAPTIONS.get(Path(name).stem, "the figures with their captions and numbers")))
    console.print(table)
    pca = result.pca
    reach = ", ".join(f"{t:.0%} in {n}" for t, n in pca.components_for.items())
    console.print(f"PCA ({pca.rows:,} rows): variance {reach} components; duplicate groups {result.duplicates.groups:,}, "
                  f"conflicting-label images {result.duplicates.conflicting_images:,}")
    console.print(f"[green]wrote[/green] {escape(str(result.folder / 'index.md'))}")
