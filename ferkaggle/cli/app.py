"""The Typer app object and the error boundary shared by every command.

Commands live in sibling modules by area (data.py, baseline.py, train.py, results.py, predict.py)
and register on `app` when ferkaggle/cli/__init__.py imports them.
Heavy libraries (TensorFlow, scikit-learn) are imported inside the commands so that
`ferkaggle --help` stays instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import typer
import typer.core
from rich.markup import escape

from ferkaggle.cnn.runtime import check_backend, configure_threads, selected_backend
from ferkaggle.core.console import err_console
from ferkaggle.core.errors import FerkaggleError


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


def quiet_tensorflow(threads: int = 0, inter_threads: int = 0) -> dict:
    """Start the Keras backend (KERAS_BACKEND; TensorFlow by default) and set its CPU threads with its
    own knobs; every command that runs a model calls this first. TensorFlow is imported here without
    its C++ start-up noise; jax and torch start quietly by themselves."""
    check_backend()
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    # 3 also hides the 'failed call to cuInit' line on machines without a GPU; real failures still
    # surface as Python exceptions. Also on the other backends: where TensorFlow is installed,
    # keras.utils.set_random_seed imports it to seed it too.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if selected_backend() != "tensorflow":
        return configure_threads(threads, inter_threads)
    with _native_stderr_silenced():  # TensorFlow's C++ start-up runs on its first import: here, silenced
        return configure_threads(threads, inter_threads)
