"""The `pyrun` console command: the entry point that pyproject.toml names.

Ctrl-C must end pyrun with "pyrun: interrupted" and status 130, never with
a traceback, however early it comes. Python turns SIGINT into a
KeyboardInterrupt wherever the interpreter happens to be, and during an
import that can go wrong two ways: outside a `try`, it prints a traceback;
inside the clean-up of an import lock, CPython reports it as "Exception
ignored" and drops it, so the command runs on as if Ctrl-C never came.

So the launcher that `make install` writes (runtime/launcher.py) blocks
SIGINT on its first line. The signal then waits in the kernel while Python
imports runtime.cli and parses the command line, which is most of the
importing, and runtime.cli unblocks it just before the command's handler
runs: a Ctrl-C from the wait is raised there, inside the `try` that
reports it. `run` blocks SIGINT again once the
command has ended, so the exit cannot be interrupted either.

pip's own `pyrun` script does not block SIGINT; this module imports only
`sys` and `gc`, both built into the interpreter, so even there a Ctrl-C
while runtime.cli loads is reported, unless CPython drops it as
described above.

NOTE: a Ctrl-C during the interpreter's own start-up, before the
launcher's first line, is CPython's to handle: it ends the process through
the signal itself, or with "Fatal Python error: init_sys_streams" when it
lands while Python opens the standard streams.
"""

import gc
import sys

# Python's cyclic garbage collector runs each time 700 more objects have
# been allocated than freed. A pyrun command allocates tens of thousands
# while it imports its modules and frees almost none, so the collector
# would walk them over and over: about 2 ms of `pyrun run --rm busybox
# true`. A threshold of 10,000 lets the start-up pass, and still collects
# in a long-lived foreground run that makes garbage. (The monitor of a
# detached container is a Python of its own and keeps the default.)
GC_THRESHOLD = 10_000


def main() -> int:
    """Import and run runtime.cli.main, and return its exit status."""
    gc.set_threshold(GC_THRESHOLD)
    try:
        open_missing_stdio()
        from runtime.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        print("pyrun: interrupted", file=sys.stderr)
        return 130


def open_missing_stdio() -> None:
    """Put /dev/null on fd 0, 1 or 2 when the caller closed it (`pyrun ps >&-`).

    Otherwise the first file pyrun opens would take the free number: a
    container's json log opened as fd 1 would receive what pyrun prints.
    Python has set sys.stdin, sys.stdout or sys.stderr to None for a
    closed fd, so each gets a new file object on /dev/null too.
    """
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # open(2) returns the lowest free number
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # as stdio is: a container may get it
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, mode, closefd=False))


def run() -> None:
    """Run `main` and exit with its status, skipping the interpreter's clean-up when that is safe.

    A normal exit frees every module and object one by one, which costs
    about 8 ms: a tenth of `pyrun run --rm busybox true`. pyrun has nothing
    left to do by then (its files are closed, its records written), so it
    flushes the standard streams and ends the process with os._exit. While
    another thread still runs, or atexit work is registered by a library,
    the normal exit runs instead, which waits for the threads.
    """
    status = main()
    import _signal  # loaded by the interpreter itself: importing it cannot be interrupted

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
    import os
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
