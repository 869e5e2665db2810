"""The host side of `-t`: raw mode, window size, and copying between terminal and pty.

The container's pty lives in its own devpts, and pyrun keeps the master end.
While the container runs, the host terminal is in raw mode so that every
key, Ctrl-C included, goes to the container's terminal, which turns it into
a signal for the container's foreground process. The host terminal's
settings are restored when the container exits.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import tty
from contextlib import contextmanager

from runtime import signals, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

    from runtime.logs import JsonFileWriter

BUFFER_SIZE = 65536


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put terminal `fd` in raw mode for the block; do nothing if it is not a terminal."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except termios.error as err:
            # EIO: the terminal hung up, so it has no settings left to restore.
            if err.args[0] != errno.EIO:
                raise


def copy_window_size(source_fd: int, master_fd: int) -> None:
    """Give the pty the host terminal's rows and columns (TIOCGWINSZ, TIOCSWINSZ)."""
    if not os.isatty(source_fd):
        return
    import fcntl

    size = fcntl.ioctl(source_fd, termios.TIOCGWINSZ, b"\0" * 8)
    syscalls.ioctl(master_fd, syscalls.TIOCSWINSZ, size)


def relay(master_fd: int, interactive: bool, log_file: JsonFileWriter | None = None) -> None:
    """Copy the pty's output to stdout (and to `log_file`) and, with `-i`, stdin to the pty.

    Returns when the pty is closed on the container's side (read(2) on the
    master fails with EIO), which happens once every process in the
    container has exited. With `-i`, it also returns when the host terminal
    hangs up. The caller then closes the master, which hangs up the
    container's terminal too: the kernel sends SIGHUP to the container's
    session leader, and reads from the terminal return end-of-file. Output
    that stdout no longer accepts (a closed pipe) is read and dropped, so a
    full pty buffer cannot stall the container.
    """
    previous = signals.signal(signals.SIGWINCH, lambda *_: copy_window_size(0, master_fd))
    poller = select.poll()
    poller.register(master_fd, select.POLLIN)
    if interactive:
        poller.register(0, select.POLLIN)
    # Checked once, because isatty(3) returns False on a terminal that has hung up.
    stdin_is_terminal = os.isatty(0)
    output: int | None = 1
    try:
        while True:
            for fd, _events in poller.poll():
                if fd == master_fd:
                    data = _read(master_fd)
                    if data is None:
                        if log_file is not None:
                            log_file.flush_partial("stdout")
                        return
                    if log_file is not None:
                        log_file.write("stdout", data)  # a terminal has one stream, logged as stdout
                    output = _write(output, data)
                else:
                    data = _read(0)
                    if data:
                        _write(master_fd, data)
                    elif stdin_is_terminal:
                        # A terminal in raw mode reads end-of-file or EIO only
                        # after a hangup. Without this return, a shell in the
                        # container would wait for input that can never come.
                        return
                    else:
                        # End of input: stop reading stdin, keep showing output.
                        poller.unregister(0)
    finally:
        signals.signal(signals.SIGWINCH, previous)


def _read(fd: int) -> bytes | None:
    """Read one chunk; None when the pty has closed (EIO) or at end of file."""
    try:
        data = os.read(fd, BUFFER_SIZE)
    except OSError as err:
        if err.errno == errno.EIO:
            return None
        raise
    return data or None


def _write(fd: int | None, data: bytes) -> int | None:
    """Write all of `data` to `fd`; return None once `fd` is a closed pipe, and drop data then."""
    if fd is None:
        return None
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except BrokenPipeError:
        return None
    return fd
