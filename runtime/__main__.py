"""`python -m runtime ...` runs the `pyrun` command, as the installed script does."""

from runtime.console import run

run()
