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


def test_quiet_prints_only_the_result_and_errors(tiny_prepared):
    from typer.testing import CliRunner

    from ferkaggle.cli.app import app
    from helpers.cli import flat

    runner = CliRunner()
    args = ["baseline", "--model", "nb"]
    loud = flat(runner.invoke(app, args).output)
    quiet = runner.invoke(app, [*args, "-q"])
    text = flat(quiet.output)
    assert quiet.exit_code == 0, quiet.output
    assert "prepared data tiny" in loud and "prepared data tiny" not in text  # an info line
    assert "holdout-val: accuracy" in text and "recorded run" in text and "3-fold CV" in text  # the result
    error = runner.invoke(app, [*args, "-q", "--data", "nowhere"])
    assert error.exit_code == 1 and flat(error.output).startswith("error:") and "nowhere" in error.output
    both = runner.invoke(app, [*args, "-q", "-v"])
    assert both.exit_code == 1 and "--quiet and --verbose exclude each other" in both.output
    # A later command without --quiet/--verbose (here in the same process) prints as usual again.
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    assert "baseline nb, pixels" in flat(runner.invoke(app, ["leaderboard"]).output)


def test_help_paragraphs_wrap_at_the_terminal_not_mid_sentence():
    from typer.testing import CliRunner

    from ferkaggle.cli.app import app

    # The search docstring's second paragraph breaks its source line after "on the"; at 200 columns the
    # sentence fits on one line and must be printed on one.
    text = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output
    sentence = "weak trials are pruned on the stop-split accuracy (never the holdout)"
    assert any(sentence in line for line in text.splitlines()), text
