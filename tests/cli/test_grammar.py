"""One CLI grammar (the round's CLI spec): every command of the click app Typer builds is walked.

A short flag means one long option everywhere, a boolean option is a flag, and every option the
spec lists as a choice has fixed choices that its command's --help shows."""

from __future__ import annotations

import re

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from ferkaggle.cli.app import app

# (command path, long option) of every choice the spec lists.
CHOICES = [("leaderboard", "--format"), ("predict", "--format"), ("export", "--format"), ("ensemble", "--method"),
           ("refit", "--rows"), ("prepare", "--on-bad-row"), ("predict", "--detector"), ("serve", "--detector"),
           ("baseline", "--model"), ("baseline", "--features"), ("leaderboard", "--kind"),
           ("baseline", "--class-weight"), ("runs", "--kind")]


def walk(command, path=()):
    """(command path, click command) of the app and every command and subcommand below it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def options(command):
    return [p for p in command.params if p.param_type_name == "option"]


def grammar_problems(root) -> list[str]:
    """What breaks the grammar in a click command tree (empty when nothing does)."""
    problems = []
    meaning: dict[str, tuple[str, tuple]] = {}
    for path, command in walk(root):
        for option in options(command):
            longs = [o for o in option.opts + option.secondary_opts if o.startswith("--")]
            for short in (o for o in option.opts if not o.startswith("--")):
                long = longs[0] if longs else "?"
                seen = meaning.setdefault(short, (long, path))
                if seen[0] != long:
                    problems.append(f"{short} is {seen[0]} in `{' '.join(seen[1])}` but {long} in `{' '.join(path)}`")
            if option.type_descriptor.annotation is bool and not option.is_flag:
                problems.append(f"`{' '.join(path)}` {longs[0]}: a boolean that is not a flag")
    commands = dict(walk(root))
    for path, long in CHOICES:
        command = commands.get(tuple(path.split()))
        found = [o for o in options(command) if long in o.opts] if command is not None else []
        if not found or not (found[0].type_descriptor.is_choice and found[0].type_descriptor.choices):
            problems.append(f"`{path}` {long}: not an option with fixed choices")
    return problems


def test_every_command_keeps_the_grammar():
    assert grammar_problems(typer.main.get_command(app)) == []


def test_the_check_finds_a_planted_violation_of_each_rule():
    planted = typer.Typer()

    @planted.command()
    def one(data: str = typer.Option("", "--data", "-d"), model: str = typer.Option("rf", "--model")) -> None:
        """A command whose --model has no fixed choices."""

    @planted.command()
    def two(dry: str = typer.Option("", "--dry-run", "-d"), force: bool = typer.Option(False, "--force")) -> None:
        """-d means something else here."""

    root = typer.main.get_command(planted)
    force = next(o for o in options(root.commands["two"]) if o.name == "force")
    force.is_flag = False  # what `--force <bool>` would be
    found = grammar_problems(root)
    assert "-d is --data in `one` but --dry-run in `two`" in found
    assert "`two` --force: a boolean that is not a flag" in found
    assert "`baseline` --model: not an option with fixed choices" in found  # the planted app has no such command
    planted_choice = typer.Typer()

    @planted_choice.command()
    def baseline(model: str = typer.Option("rf", "--model", "-m")) -> None:
        """--model as a free string."""

    @planted_choice.command()
    def other() -> None:
        """A second command, so that `baseline` stays a subcommand."""

    assert "`baseline` --model: not an option with fixed choices" in grammar_problems(typer.main.get_command(planted_choice))


@pytest.mark.parametrize("path, long", CHOICES)
def test_each_choice_is_listed_in_its_help(path, long):
    root = typer.main.get_command(app)
    command = dict(walk(root))[tuple(path.split())]
    option = next(o for o in options(command) if long in o.opts)
    listed = [c.value for c in option.type_descriptor.choices]
    text = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"}).output
    line = next(row for row in text.splitlines() if row.startswith("│") and re.search(rf"{long}\b", row))
    assert "|".join(listed) in line, line  # Typer prints <a|b|c> beside the option


def test_flags_print_without_a_type():
    for path in ("demo-data", "train", "leaderboard", "runs remove"):
        text = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"}).output
        flags = [row for row in text.splitlines() if re.search(r"--(force|folds|all|yes|quiet|verbose)\b", row)]
        assert flags and not [row for row in flags if "<bool>" in row], flags
