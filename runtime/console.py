"""The `pyrun` console command: the entry point that pyproject.toml names.

The generated `pyrun` script (and runtime.launcher's faster one) imports
this module first. It imports only `sys`, so Ctrl-C while runtime.cli and
its modules load still ends with "pyrun: interrupted" and status 130, not
a traceback. Ctrl-C during the interpreter's own start-up, before Python
handles SIGINT, ends the process silently through the signal itself.
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


def run() -> None:
    """Run `main` and exit with its status, skipping the interpreter's clean-up when that is safe.

    A normal exit frees every module and object one by one, which costs
    about 8 ms: a tenth of `pyrun run --rm busybox true`. pyrun has nothing
    left to do by then (its files are closed, its records written), so it
    flushes the standard streams and ends the process with os._exit. While
    another thread still runs, or atexit work is registered by a library,
    the normal exit runs instead, which waits for the threads.
    """
    import os

    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout has gone (`pyrun ps | head -0`): end quietly
        # with SIGPIPE's status, and let any later flush write to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = status or 128 + 13
    try:
        sys.stderr.flush()
    except OSError:
        # Nowhere left to report it: keep the exit's own flush from failing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(status)
    import atexit

    if atexit._ncallbacks() > 0:  # CPython's count of registered atexit functions
        sys.exit(status)
    os._exit(status)
