"""One rich console for the whole app, and progress that stays log-friendly.

On a terminal, long work shows rich progress bars; when output is piped or in CI, the
same calls print a plain line now and then instead of redrawing bars.

Verbosity (`set_verbosity`, from a command's --quiet / --verbose): QUIET hides the progress and
the info lines printed with `console.print`, but never `warn` lines, errors (`err_console`) or a
command's result (`result`); VERBOSE also lets TensorFlow's native start-up lines through
(`ferkaggle.cli.app.quiet_tensorflow` reads `verbosity()`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _log_width() -> int | None:
    """Rich uses 80 columns when output is not a terminal, which folds tables in logs; use
    $COLUMNS if set, else 160. On a terminal rich measures the real width (None)."""
    if sys.stdout.isatty():
        return None
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        return 160


console = Console(highlight=False, soft_wrap=True, width=_log_width())
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


QUIET, NORMAL, VERBOSE = -1, 0, 1
_verbosity = NORMAL


def set_verbosity(level: int) -> None:
    """QUIET, NORMAL or VERBOSE for the rest of the command (each command sets it when it starts)."""
    global _verbosity
    _verbosity = level
    console.quiet = level < NORMAL


def verbosity() -> int:
    return _verbosity


def interactive() -> bool:
    return console.is_terminal and not os.environ.get("CI") and not console.quiet


def result(*objects, **kwargs) -> None:
    """Print a command's result (its final line or table): shown at every verbosity, --quiet included."""
    quiet, console.quiet = console.quiet, False
    try:
        console.print(*objects, **kwargs)
    finally:
        console.quiet = quiet


def warn(message: str) -> None:
    result(f"[yellow]warning:[/yellow] {message}")


class _PlainTask:
    """Stand-in for a rich task when not on a terminal: prints at most one line every few seconds."""

    def __init__(self, description: str, total: float | None, every_s: float = 5.0):
        self.description, self.total, self.completed = description, total, 0.0
        self._every, self._last = every_s, 0.0

    def advance(self, amount: float = 1.0, note: str = "") -> None:
        self.completed += amount
        now = time.monotonic()
        done = self.total is not None and self.completed >= self.total
        if done or now - self._last >= self._every:
            self._last = now
            of = f"/{self.total:g}" if self.total is not None else ""
            console.print(f"{self.description}: {self.completed:g}{of} {note}".rstrip())


class Tracker:
    """A tiny facade over rich.Progress with the same calls when not interactive."""

    def __init__(self, progress: Progress | None):
        self._progress = progress
        self._plain: dict[int, _PlainTask] = {}

    def add(self, description: str, total: float | None = None) -> int:
        if self._progress is not None:
            return self._progress.add_task(description, total=total)
        key = len(self._plain)
        self._plain[key] = _PlainTask(description, total)
        return key

    def advance(self, task: int, amount: float = 1.0, note: str = "") -> None:
        if self._progress is not None:
            self._progress.advance(task, amount)
            if note:
                self._progress.update(task, description=self._progress.tasks[task].description.split(" · ")[0] + f" · {note}")
        else:
            self._plain[task].advance(amount, note)

    def print(self, message: str) -> None:
        (self._progress.console if self._progress is not None else console).print(message)


@contextlib.contextmanager
def track() -> Iterator[Tracker]:
    """`with track() as t: task = t.add("folds", total=5); t.advance(task)`."""
    if interactive():
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        with progress:
            yield Tracker(progress)
    else:
        yield Tracker(None)


def epoch_reporter(tracker, task) -> Callable[[dict, dict], None]:
    def report(entry: dict, state: dict) -> None:
        stop = f"stop {entry['stop_accuracy']:.3f} " if "stop_accuracy" in entry else ""  # a refit has no stop split
        note = (f"epoch {entry['epoch']} loss {entry.get('loss', float('nan')):.3f} "
                f"{stop}lr {entry['lr']:.2g} {entry['seconds']:.0f}s")
        tracker.advance(task, 1, note)

    return report
