"""Error types the command line turns into one readable line and exit code 1.

Anything a user can cause (a bad file, a missing run, a wrong option value) raises a
`FerkaggleError`; the CLI prints its message and exits 1 without a traceback. Other
exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

from pathlib import Path


class FerkaggleError(ValueError):
    """A problem with the user's input or environment, described in one line."""


class DataError(FerkaggleError):
    """Bad input data: names the file, the line (1-based, as an editor shows it) and what was expected."""

    def __init__(self, file: str | Path, message: str, line: int | None = None):
        self.file = str(file)
        self.line = line
        self.detail = message
        where = f"{self.file}, line {line}" if line is not None else self.file
        super().__init__(f"{where}: {message}")
