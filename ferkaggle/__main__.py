"""`python -m ferkaggle` runs the command-line app."""

from ferkaggle.cli import main

main()
