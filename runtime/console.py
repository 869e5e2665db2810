"""The `pyrun` console command: the entry point that pyproject.toml names.

The generated `pyrun` script imports this module first. It imports only
`sys`, so Ctrl-C while runtime.cli and its modules load still ends with
"pyrun: interrupted" and status 130, not a traceback. Ctrl-C during the
interpreter's own start-up, before Python handles SIGINT, ends the process
silently through the signal itself.
"""

import sys


def main() -> int:
    """Import and run runtime.cli.main, and return its exit status."""
    try:
        from runtime.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        print("pyrun: interrupted", file=sys.stderr)
        return 130
