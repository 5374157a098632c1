"""The CLI's error boundary, --version and --help."""

from __future__ import annotations


def test_cli_turns_user_errors_into_one_line(in_tmp):
    from typer.testing import CliRunner

    from ferkaggle.cli.app import app

    result = CliRunner().invoke(app, ["validate", "x.csv"])
    assert result.exit_code == 1
    assert "no prepared data" in result.output and "Traceback" not in result.output


def test_version_and_help_read_well():
    from typer.testing import CliRunner

    from ferkaggle import __version__
    from ferkaggle.cli.app import app

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"ferkaggle {__version__}"
    listing = runner.invoke(app, ["--help"]).output
    for command in ("prepare", "demo-data", "baseline", "train", "search", "leaderboard",
                    "ensemble", "submit", "validate", "report", "download"):
        assert command in listing, command
        assert "Example" in runner.invoke(app, [command, "--help"]).output, command
