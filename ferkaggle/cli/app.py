"""The Typer app object and the error boundary shared by every command.

Commands live in sibling modules by area (data.py, baseline.py, train.py, results.py, predict.py)
and register on `app` when ferkaggle/cli/__init__.py imports them.
Heavy libraries (TensorFlow, scikit-learn) are imported inside the commands so that
`ferkaggle --help` stays instant.

The grammar every command shares is defined here once: `choices` turns a stage's Literal (or tuple)
of allowed values into the Enum an option takes (listed in --help, completed by the shell), and
QUIET_OPTION / VERBOSE_OPTION are the --quiet/-q and --verbose/-v options of the long commands (`set_output`).
"""

from __future__ import annotations

import enum
import inspect
import os
import sys
import warnings
from typing import Iterable, get_args

import typer
import typer.core
from rich.markup import escape

from ferkaggle.cnn.runtime import check_backend, configure_threads
from ferkaggle.core.console import NORMAL, QUIET, VERBOSE, err_console, set_verbosity, verbosity
from ferkaggle.core.errors import FerkaggleError


class _Group(typer.core.TyperGroup):
    """Turns user errors into one red line and exit code 1, never a traceback; gives fd 2 back
    when a command that silenced it ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _flags_without_type(self)
        _unwrap_help(self)

    def invoke(self, ctx):  # noqa: D401 - click API
        try:
            return super().invoke(ctx)
        except FerkaggleError as exc:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: finished work is saved; partial outputs were discarded")
            raise typer.Exit(130) from None
        finally:
            _restore_native_stderr()


def _unwrap_help(command) -> None:
    """Typer's rich help joins the lines of a docstring's first paragraph but prints the later ones
    with the docstring's own line breaks, which the terminal then wraps again: sentences broke in the
    middle. Each later paragraph becomes one line, for the terminal to wrap at its width (a paragraph
    that starts with \\b keeps its lines, as in click), in this group and those below it."""
    for sub in getattr(command, "commands", {}).values():
        if sub.help:
            first, *rest = inspect.cleandoc(sub.help).split("\n\n")
            sub.help = "\n\n".join([first, *(p if p.startswith("\b") else " ".join(p.split("\n")) for p in rest)])
        _unwrap_help(sub)


def _flags_without_type(command) -> None:
    """Typer's rich help prints a type beside every option, `--force <bool>` too; a flag takes no
    value, so its type column stays empty (an empty metavar), in this group and those below it."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_without_type(sub)


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
    add_completion=True,
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
    set_verbosity(NORMAL)  # a command without --quiet/--verbose prints as usual


def choices(name: str, values) -> type[enum.Enum]:
    """A str Enum of a stage's allowed values (a Literal type, a tuple or a dict's keys), for a
    Typer option: the stage keeps the one definition, the CLI lists and completes its values.
    The command passes `option.value` on to the stage."""
    names = get_args(values) or tuple(values)
    return enum.Enum(name, {value: value for value in names}, type=str)


def values(option: enum.Enum | Iterable[enum.Enum] | None):
    """The plain value(s) of an Enum option (None stays None)."""
    if option is None or isinstance(option, enum.Enum):
        return None if option is None else option.value
    return [item.value for item in option]


QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="Print only warnings, errors and the result.")
VERBOSE_OPTION = typer.Option(False, "--verbose", "-v", help="Also print TensorFlow's native start-up and device lines (hidden by default; FERKAGGLE_TF_LOGS=1 shows them too).")


def set_output(quiet: bool, verbose: bool) -> None:
    """Apply a command's --quiet / --verbose (see ferkaggle.core.console)."""
    if quiet and verbose:
        raise FerkaggleError("--quiet and --verbose exclude each other: give one")
    set_verbosity(QUIET if quiet else VERBOSE if verbose else NORMAL)


def _show_tf_logs() -> bool:
    return verbosity() >= VERBOSE or bool(os.environ.get("FERKAGGLE_TF_LOGS"))


def _silence_native_stderr() -> None:
    """Point file descriptor 2 at /dev/null until the command ends, keeping Python's own stderr.

    TensorFlow's C++ lines (oneDNN, cuda/cuInit, absl's 'All log messages before
    absl::InitializeLog()', XLA and device creation) are written to fd 2 at import and again at
    the first op, the first device use and the first compiled step, and absl's pre-init lines
    ignore TF_CPP_MIN_LOG_LEVEL; silencing only the import let the later ones through. Python's
    sys.stderr (warnings, tracebacks, our error lines) moves to a copy of the real fd 2 first.
    The real fd 2 comes back when the command ends (`_restore_native_stderr`, from the error boundary)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    try:
        python_stderr_is_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        python_stderr_is_fd2 = False  # captured (CliRunner, pytest): it writes no fd 2 anyway
    if python_stderr_is_fd2:
        # The copy of fd 2 stays open (closefd=False, never closed): loggers made meanwhile keep this stream.
        sys.stderr = os.fdopen(saved, "w", buffering=1, encoding=python_stderr.encoding,
                               errors=python_stderr.errors, closefd=False)
    os.dup2(devnull, 2)
    os.close(devnull)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(saved, 2)
        if python_stderr_is_fd2:
            sys.stderr = python_stderr
        else:
            os.close(saved)

    _restores.append(restore)


_restores: list = []


def _restore_native_stderr() -> None:
    """Give fd 2 (and sys.stderr) back as they were before `_silence_native_stderr`."""
    while _restores:
        _restores.pop()()


def quiet_tensorflow(threads: int = 0, inter_threads: int = 0) -> dict:
    """Start the Keras backend (KERAS_BACKEND; TensorFlow by default) and set its CPU threads with its
    own knobs; every command that runs a model calls this first (before anything imports TensorFlow).
    TensorFlow's C++ lines stay off stderr for the whole command unless --verbose or
    FERKAGGLE_TF_LOGS=1; also on the other backends, since where TensorFlow is installed
    keras.utils.set_random_seed imports it to seed it too."""
    check_backend()
    if not _show_tf_logs():
        # 3 also hides the 'failed call to cuInit' line on machines without a GPU; real
        # failures still surface as Python exceptions.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _silence_native_stderr()
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    return configure_threads(threads, inter_threads)  # on TensorFlow, its first import: silenced above
