"""`ferkaggle runs` (list the recorded runs) and `ferkaggle runs remove -r RUN ...` (delete run folders).

Thin: `runs.registry` lists, resolves (`load_run`: an id, a unique part of one or a folder) and
removes (`remove_run`, which deletes only a run folder directly under runs/); this module asks for
the confirmation and says which ensembles lose a member.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.cli.app import app, values
from ferkaggle.cli.results import Kind
from ferkaggle.core.console import console, result, warn
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.runs import leaderboard as lb
from ferkaggle.runs.registry import SELECTORS, check_run_folder, list_runs, load_run, remove_run, runs_root

runs_app = typer.Typer(help="List the recorded runs; `ferkaggle runs remove -r RUN` deletes one.",
                       no_args_is_help=False, rich_markup_mode="rich")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    kind: Optional[Kind] = typer.Option(None, "--kind", help="Only runs of this kind."),
    all_runs: bool = typer.Option(False, "--all", help="Include failed, interrupted and running runs."),
) -> None:
    """List the recorded runs, oldest first: id, kind, status, data key, holdout accuracy, created, size on disk.

    Example: ferkaggle runs --kind cnn, then ferkaggle runs remove -r 2026-11-30_161712_vgg
    """
    if ctx.invoked_subcommand is not None:
        return
    kind = values(kind)
    listed = [r for r in list_runs(include_incomplete=all_runs) if kind is None or r.kind == kind]
    if not listed:
        what = f" of kind {kind!r}" if kind else ""
        result(f"no {'' if all_runs else 'completed '}runs{what} in {escape(str(runs_root()))}/")
        return
    table = Table(title=f"{len(listed)} runs in {escape(str(runs_root()))}/", title_justify="left")
    for name in ("run", "kind", "status", "data", "holdout acc", "created", "size"):
        table.add_column(name, justify="right" if name in ("holdout acc", "size") else "left",
                         no_wrap=name != "run", overflow="fold")
    for r in listed:
        table.add_row(escape(r.run_id), r.kind, r.status, escape(str(r.info.get("data", {}).get("key", ""))),
                      lb.fmt_acc(r.val_accuracy), str(r.info.get("started", ""))[:19].replace("T", " "),
                      lb.fmt_bytes(r.disk_bytes()), style=None if r.status == "completed" else "dim")
    result(table)


def can_prompt() -> bool:
    """Whether a confirmation can be asked for: stdin is a terminal."""
    return sys.stdin.isatty()


@runs_app.command("remove")
def remove(
    refs: list[str] = typer.Option(..., "--run", "-r", help="A run to remove: its id, a unique part of it, or its folder under runs/ (not `best` or `latest`); repeat for several."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
) -> None:
    """Delete run folders under runs/ (the run, its probabilities and models), after a confirmation.

    Every run is resolved first: one that is not found, `best`/`latest`, or a folder outside
    runs/ stops the command and nothing is removed. An ensemble that uses a removed run as a
    member is named: it can no longer predict or be exported, and `ferkaggle ensemble` no longer
    takes that run. Without a terminal to ask on, --yes is needed.

    Example: ferkaggle runs remove -r 2026-11-30_161712_vgg -r 2026-11-30_170102_rf --yes
    """
    for ref in refs:
        if ref in SELECTORS:
            raise FerkaggleError(f"runs remove takes a run's id, not `{ref}` (which run that is changes): "
                                 "`ferkaggle runs` lists the ids")
    chosen = {}
    for ref in refs:
        run = load_run(ref)
        chosen[run.run_id] = run
    for run in chosen.values():
        check_run_folder(run)  # all of them before any is removed
    users = {}
    for other in list_runs(include_incomplete=True):
        for member in other.ensemble_members():
            if member in chosen and other.run_id not in chosen:
                users.setdefault(member, []).append(other.run_id)
    for run_id, ensembles in users.items():
        warn(f"run {escape(run_id)} is a member of ensemble{'s' if len(ensembles) > 1 else ''} "
             f"{escape(', '.join(ensembles))}: without it they can no longer predict or be exported")
    sizes = {run_id: run.disk_bytes() for run_id, run in chosen.items()}
    for run_id, run in chosen.items():
        console.print(f"  {escape(str(run.dir))} ({run.kind}, {run.status}, {lb.fmt_bytes(sizes[run_id])})")
    if not yes:
        if not can_prompt():
            raise FerkaggleError(f"runs remove asks before deleting {len(chosen)} run folder(s), and there is no "
                                 "terminal to ask on: add --yes to remove them")
        if not typer.confirm(f"remove {len(chosen)} run folder(s)?", default=False):
            result("nothing removed")
            return
    for run_id, run in chosen.items():
        remove_run(run)
        result(f"[green]removed[/green] {escape(str(run.dir))} ({lb.fmt_bytes(sizes[run_id])})")
