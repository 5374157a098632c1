"""The README and docs/ against the code.

Every `ferkaggle ...` command they show must parse with the app's own options (nothing is run:
`make_context` only parses), every `make ...` line must name targets `make help` lists and
variables the Makefile reads, every relative link and repository path must exist (a link's
#anchor must be a heading of its page), every command of the app must appear in the README, and
the README must stay short. `.ci/readme_steps` must extract exactly the marked first-hour blocks.

docs/benchmarks.md is left out of the command checks: it records the commands of its day.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from ferkaggle.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")]
README_MAX_LINES = 160

FENCE = re.compile(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
SHELL_LANGS = {"bash", "sh", "shell", "console", ""}
# Repository folders whose paths, named in inline code, must exist; and files named bare.
REPO_DIRS = ("docs/", "bench/", "configs/", "ferkaggle/", "tests/", ".ci/")
REPO_FILES = {"Makefile", "pyproject.toml", "constraints.txt", "LICENSE"}


def _split_doc(text: str) -> tuple[list[tuple[str, str]], str]:
    """(code blocks as (language, body), the prose with every code block blanked out)."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]
    return blocks, FENCE.sub("", text)


def _inline_spans(prose: str) -> list[str]:
    """Inline code spans of the prose, a span broken over two lines joined with a space."""
    return [" ".join(s.split()) for s in re.findall(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose)]


def _commands(path: Path) -> list[str]:
    """Every shell command a page shows: lines of its shell code blocks and inline code spans,
    split at `&&`, `||`, `;` and `|`."""
    blocks, prose = _split_doc(path.read_text(encoding="utf-8"))
    lines = [line for lang, body in blocks if lang in SHELL_LANGS for line in body.splitlines()]
    lines += _inline_spans(prose)
    out = []
    for line in lines:
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            if part.strip():
                out.append(part.strip())
    return out


def _tokens(command: str) -> list[str] | None:
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # prose in backticks with an odd quote: not a command
        return None


def _ferkaggle_args(tokens: list[str]) -> list[str] | None:
    """The arguments after the program when the command runs ferkaggle, else None."""
    if tokens and tokens[0] in ("ferkaggle", ".venv/bin/ferkaggle"):
        return tokens[1:]
    if len(tokens) >= 3 and tokens[1:3] == ["-m", "ferkaggle"] and "python" in tokens[0]:
        return tokens[3:]
    return None


def _invocations(paths) -> list[tuple[Path, str, list[str]]]:
    found = []
    for path in paths:
        for command in _commands(path):
            tokens = _tokens(command)
            args = _ferkaggle_args(tokens) if tokens else None
            if args is not None:
                found.append((path, command, args))
    return found


def _resolve(root, args: list[str]):
    """(the command the arguments name, its path of names, the arguments left for it)."""
    cmd, names, i = root, ["ferkaggle"], 0
    while i < len(args) and args[i] in getattr(cmd, "commands", {}):
        cmd = cmd.commands[args[i]]
        names.append(args[i])
        i += 1
    return cmd, names, args[i:]


def _option_names(cmd) -> set[str]:
    helps = (getattr(cmd, "context_settings", None) or {}).get("help_option_names", ["--help"])
    return {*helps, *(name for p in cmd.params for name in (*p.opts, *p.secondary_opts) if name.startswith("-"))}


def parse_problem(root, args: list[str]) -> str | None:
    """None when the arguments name a command and parse with its options, else what is wrong."""
    cmd, names, rest = _resolve(root, args)
    if len(names) == 1:
        # The program's own options (--install-completion, --help): check that they exist; parsing
        # them would run their eager callbacks (installing completion).
        unknown = [a for a in rest if a.startswith("-") and a.split("=")[0] not in _option_names(root)]
        if rest and not rest[0].startswith("-"):
            return f"no command {rest[0]!r} (commands: {', '.join(sorted(root.commands))})"
        return f"no option {unknown[0]!r} on ferkaggle itself" if unknown else None
    try:
        cmd.make_context(" ".join(names), list(rest))
    except Exception as exc:  # the click the app is built on raises its own exception types
        if getattr(exc, "exit_code", 1) != 0:  # --help exits with 0
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            return f"{' '.join(names)}: {message}"
    return None


def _all_command_paths(cmd, names=()) -> list[tuple[str, ...]]:
    paths = []
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if getattr(sub, "hidden", False):
            continue
        paths.append((*names, name))
        paths += _all_command_paths(sub, (*names, name))
    return paths


@pytest.fixture(scope="module")
def root_command():
    return typer.main.get_command(app)


def test_every_ferkaggle_command_shown_parses(root_command, monkeypatch):
    monkeypatch.chdir(ROOT)  # the pages' paths (docs/astronaut.jpg) are relative to the repository
    invocations = _invocations(DOCS)
    assert len([1 for path, _, _ in invocations if path == README]) >= 15  # the extraction found the README's commands
    problems = [f"{path.relative_to(ROOT)}: `{command}`: {problem}"
                for path, command, args in invocations
                if (problem := parse_problem(root_command, args))]
    assert not problems, "\n".join(problems)


def test_the_readme_shows_every_command_of_the_app(root_command):
    shown = {tuple(_resolve(root_command, args)[1][1:]) for _, _, args in _invocations([README])}
    missing = [" ".join(p) for p in _all_command_paths(root_command) if p not in shown]
    assert not missing, f"commands of the app the README never shows: {missing}"


def _make_lines(paths) -> list[tuple[Path, str, list[str]]]:
    found = []
    for path in paths:
        for command in _commands(path):
            tokens = _tokens(command)
            if tokens and tokens[0] == "make":
                found.append((path, command, tokens[1:]))
    return found


def test_every_make_line_names_real_targets_and_variables():
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    listed = subprocess.run([make, "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True).stdout
    targets = set(re.findall(r"[\w-]+", listed))  # a target `make help` names, in whatever layout it lists them
    makefile = "\n".join(line.split("#", 1)[0] for line in (ROOT / "Makefile").read_text().splitlines())
    lines = _make_lines(DOCS)
    assert len([1 for path, _, _ in lines if path == README]) >= 5
    problems = []
    for path, command, args in lines:
        variables = [a.split("=", 1)[0] for a in args if "=" in a and not a.startswith("-")]
        goals = [a for a in args if "=" not in a and not a.startswith("-")]
        problems += [f"{path.name}: `{command}`: `make help` does not name the target {g!r}" for g in goals if g not in targets]
        problems += [f"{path.name}: `{command}`: the Makefile never reads {v}" for v in variables
                     if not re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", makefile)]
        dry = subprocess.run([make, "-n", "-C", str(ROOT), *goals, *[a for a in args if "=" in a]],
                             capture_output=True, text=True)
        if dry.returncode != 0:
            problems.append(f"{path.name}: `{command}`: make -n fails: {dry.stderr.strip()[-300:]}")
    assert not problems, "\n".join(problems)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    _, prose = _split_doc(path.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#{1,6} +(.+?) *#*$", prose, re.M)}


def _tracked() -> set[str] | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                          capture_output=True, text=True)
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


def _in_repo(target: Path, tracked: set[str] | None) -> bool:
    """The file, or the folder with files, is in the repository (ignored files do not count)."""
    if not target.exists():
        return False
    if tracked is None:
        return True
    rel = target.resolve().relative_to(ROOT).as_posix()
    return rel in tracked or any(t.startswith(rel.rstrip("/") + "/") for t in tracked)


def test_every_link_and_repository_path_exists():
    tracked = _tracked()
    problems = []
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        user_page = path.name != "benchmarks.md"  # the benchmarks record the paths and data of their day
        _, prose = _split_doc(text)
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file) if file else path
            if not _in_repo(dest, tracked):
                problems.append(f"{path.name}: link to {target}: no such file in the repository")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{path.name}: link to {target}: {dest.name} has no heading #{anchor}")
        for span in _inline_spans(prose) if user_page else ():  # the benchmarks name the paths of their day
            if not re.fullmatch(r"\.?[\w.-]+(/[\w.-]+)*/?", span):
                continue
            if span.startswith(REPO_DIRS) or span in REPO_FILES:
                if not _in_repo(ROOT / span, tracked):
                    problems.append(f"{path.name}: `{span}` is not in the repository")
        if "../shared" in text or "/work/" in text or "NOTEBOOKS.md" in text:  # the benchmarks too: a user has only the repo
            problems.append(f"{path.name}: names a folder or file outside the repository (../shared, /work/ or NOTEBOOKS.md)")
    assert not problems, "\n".join(problems)


def test_the_readme_reads_in_five_minutes():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it to {README_MAX_LINES} and move detail to docs/"


# .ci/readme_steps: the first-hour blocks it extracts

STEPS = ROOT / ".ci" / "readme_steps"
FAKE_README = """# A project

<!-- ci: first-hour -->
```bash
make submit
```

Not this one:

```bash
rm -rf /
```

<!-- ci: first-hour -->

```
cp a b   # a comment stays
echo "two lines"
```

```python
print("nor this")
```
"""


def _extract(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    page = tmp_path / "README.md"
    page.write_text(text, encoding="utf-8")
    return subprocess.run(["bash", str(STEPS), "--extract", str(page)], capture_output=True, text=True)


def test_readme_steps_extracts_exactly_the_marked_blocks_in_order(tmp_path):
    done = _extract(tmp_path, FAKE_README)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if not line.startswith("# --- ")]
    assert commands == ["make submit", "cp a b   # a comment stays", 'echo "two lines"']


@pytest.mark.parametrize("text, says", [
    ("# nothing marked\n```bash\nmake\n```\n", "no code block is marked"),
    ("<!-- ci: first-hour -->\nsome prose\n```bash\nmake\n```\n", "not followed by a fenced code block"),
    ("<!-- ci: first-hour -->\n```bash\nmake\n", "not closed"),
    ("<!-- ci: first-hour -->\n```bash\nmake\n```\n<!-- ci: first-hour -->\n\n", "no code block after it"),
])
def test_readme_steps_refuses_a_marker_without_its_block(tmp_path, text, says):
    done = _extract(tmp_path, text)
    assert done.returncode != 0 and says in done.stderr, (done.returncode, done.stdout, done.stderr)


def test_the_readme_marks_the_first_hour():
    done = subprocess.run(["bash", str(STEPS), "--extract", str(README)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line, comments=True) for line in done.stdout.splitlines()]
    commands = [c for c in commands if c]
    # The demo first, then the real data as a user copies it, then the command run directly.
    order = [lambda c: c == ["make", "submit"],
             lambda c: c == ["cp", "~/Downloads/train.csv", "~/Downloads/test.csv", "data/"],
             lambda c: c[:2] == ["make", "submit"] and any(a.startswith("BUDGET=") for a in c),
             lambda c: c[:2] == ["ferkaggle", "leaderboard"],
             lambda c: c[:2] == ["ferkaggle", "predict"] and len(c) > 2,
             lambda c: c[:2] == ["ferkaggle", "export"]]
    positions = [next((i for i, c in enumerate(commands) if step(c)), -1) for step in order]
    assert -1 not in positions and positions == sorted(positions), (positions, commands)
