"""Whole-file reads and writes through os.read and os.write, for pyrun's start-up path.

open() builds a file object around each file: an fstat(2), an ioctl(2)
that checks whether the file is a terminal, a buffer, and for text an
encoder or decoder. That costs about 20 microseconds more than the
system calls on the development VM, and `pyrun run` reads or writes some
twenty small files (its records, the image config, cgroup control files,
/etc/resolv.conf). These functions make only the system calls, and raise
OSError as open() does.
"""

from __future__ import annotations

import os

# Larger than the files read here, so a read takes one read(2) and one more at the end.
READ_SIZE = 1 << 18


def read_bytes(path: str) -> bytes:
    """Return the contents of the file `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """Return the contents of the UTF-8 file `path`."""
    return read_bytes(path).decode()


def write_text(path: str, text: str, mode: int = 0o644) -> None:
    """Create or truncate the file `path` and write `text` to it in UTF-8.

    `mode` applies to a new file, less the umask, as with open().
    """
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)
