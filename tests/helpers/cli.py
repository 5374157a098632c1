"""Reading CLI output in tests: colours, rich's box borders and line wrapping taken out."""

from __future__ import annotations

import re


def flat(output: str) -> str:
    """The output as one line of words: no ANSI colours, no box borders, single spaces."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def usage_error(result, needle: str) -> bool:
    """Whether click refused the command line (exit 2) with `needle` in its message."""
    return result.exit_code == 2 and needle in flat(result.output) and "Traceback" not in result.output
