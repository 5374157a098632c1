"""Command-line interface: `ferkaggle <command>` (see `ferkaggle --help`)."""

from __future__ import annotations

import importlib

from ferkaggle.cli.app import app

# Each area module registers its commands on `app` when imported.
for _module in ("data", "explore", "baseline", "train", "results", "predict", "runs"):
    importlib.import_module(f"ferkaggle.cli.{_module}")


def main() -> None:
    app()


