"""The output of a container that runs in the foreground without a terminal.

Docker gives such a container pipes for stdout and stderr, never the
terminal `docker run` was typed in: `ls` prints one name per line, and
isatty(3) finds no terminal on stdout or stderr. It copies what comes
through the pipes to its own stdout and stderr, and into the container's
json-file log, so `docker logs` shows it after the run.

pyrun does the same here:

    container's pid 1 --stdout pipe--> pyrun --> pyrun's stdout, the log
                      --stderr pipe--> pyrun --> pyrun's stderr, the log

The container's process puts the write ends on fd 1 and 2 as its last
stdio step (runtime.process.setup_plain_stdio). pyrun closes its own copies
once the container runs, so each pipe reads end-of-file when the last
process in the container with its write end open has exited.

NOTE: the two pipes are read in the order poll(2) reports them, so lines
written to stdout and stderr close together may come out, and be logged,
in another order than they were written; Docker's two streams do the same.
"""

from __future__ import annotations

import errno
import os
import select

from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.logs import JsonFileWriter

READ_SIZE = 65536

log = get_logger(__name__)


class OutputPipes:
    """A stdout pipe and a stderr pipe between the container and pyrun."""

    def __init__(self) -> None:
        # Close-on-exec: only the container's process, which moves the write
        # ends onto fd 1 and 2 with dup2(2), keeps them across its execve(2).
        self.stdout_read, self.stdout_write = os.pipe2(os.O_CLOEXEC)
        self.stderr_read, self.stderr_write = os.pipe2(os.O_CLOEXEC)

    def container_ends(self) -> tuple[int, int]:
        """Return the write ends, which become the container's stdout and stderr."""
        return self.stdout_write, self.stderr_write

    def close_container_ends(self) -> None:
        """Close pyrun's copies of the write ends, once the container has its own."""
        for fd in (self.stdout_write, self.stderr_write):
            if fd >= 0:
                os.close(fd)
        self.stdout_write = self.stderr_write = -1

    def close_pyrun_ends(self) -> None:
        """Close the read ends: in a forked child that stays alive beside the
        container, because a read end left open there would keep the container's
        writes from failing once pyrun stops reading."""
        for fd in (self.stdout_read, self.stderr_read):
            if fd >= 0:
                os.close(fd)
        self.stdout_read = self.stderr_read = -1

    def close(self) -> None:
        self.close_container_ends()
        self.close_pyrun_ends()

    def copy(self, log_file: JsonFileWriter | None) -> None:
        """Copy both pipes to pyrun's stdout and stderr, and to `log_file`, until both end.

        When pyrun's own stdout or stderr is a pipe whose reader has gone
        (`pyrun run busybox yes | head`), pyrun closes the matching pipe from
        the container too. The container's next write then fails with EPIPE,
        or SIGPIPE ends it, as if it had written to that reader itself.
        """
        streams = {self.stdout_read: (1, "stdout"), self.stderr_read: (2, "stderr")}
        poller = select.poll()
        for fd in streams:
            poller.register(fd, select.POLLIN)
        while streams:
            for fd, _event in poller.poll():
                target, name = streams[fd]
                data = os.read(fd, READ_SIZE)
                if data:
                    if log_file is not None:
                        log_file.write(name, data)
                    if _write_all(target, data):
                        continue
                # The stream has ended, or pyrun's side takes no more of it.
                if log_file is not None:
                    log_file.flush_partial(name)
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
                if fd == self.stdout_read:
                    self.stdout_read = -1
                else:
                    self.stderr_read = -1


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of `data` to `fd`; return False when it takes no more (its reader has gone, a full disk)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as err:
            if err.errno != errno.EPIPE:
                name = "stdout" if fd == 1 else "stderr"
                log.warning("cannot write the container's output to pyrun's %s (%s): the rest is dropped",
                            name, err.strerror)
            return False
        view = view[written:]
    return True
