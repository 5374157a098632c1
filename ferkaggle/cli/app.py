"""The Typer app object and the error boundary shared by every command.

Commands live in sibling modules by area (data, models, results) and register on `app`.
Heavy libraries (TensorFlow, scikit-learn) are imported inside the commands so that
`ferkaggle --help` stays instant.
"""

from __future__ import annotations

import typer
import typer.core
from rich.markup import escape

from ferkaggle.console import err_console
from ferkaggle.errors import FerkaggleError


class _Group(typer.core.TyperGroup):
    """Turns user errors into one red line and exit code 1, never a traceback."""

    def invoke(self, ctx):  # noqa: D401 - click API
        try:
            return super().invoke(ctx)
        except FerkaggleError as exc:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: finished work is saved; partial outputs were discarded")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    name="ferkaggle",
    help=(
        "From raw FER2013-style competition files to a validated Kaggle submission.\n\n"
        "Typical flow: prepare → baseline → search → leaderboard → ensemble → submit.\n\n"
        "Example: ferkaggle prepare --train data/train.csv --test data/test.csv"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _show_version(value: bool) -> None:
    if value:
        from ferkaggle import __version__

        typer.echo(f"ferkaggle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """From raw FER2013-style competition files to a validated Kaggle submission."""
