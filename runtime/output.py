"""The stdio of a container that runs in the foreground without a terminal.

Docker gives such a container pipes for stdout and stderr, and with -i for
stdin. It never passes on the terminal `docker run` was typed in, so `ls`
prints one name per line, and isatty(3) finds no terminal on any of them. It copies what
comes through the pipes to its own stdout and stderr, and into the
container's json-file log, so `docker logs` shows it after the run; and
it copies its own stdin into the stdin pipe.

pyrun does the same here:

    container's pid 1 --stdout pipe--> pyrun --> pyrun's stdout, the log
                      --stderr pipe--> pyrun --> pyrun's stderr, the log
                      <--stdin pipe--- pyrun <-- pyrun's stdin (-i only)

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


class StdioPipes:
    """A stdout pipe and a stderr pipe between the container and pyrun, and with `stdin` a stdin pipe."""

    def __init__(self, *, stdin: bool = False) -> None:
        # Close-on-exec: only the container's process, which moves its ends
        # onto fd 0, 1 and 2 with dup2(2), keeps them across its execve(2).
        self.stdout_read, self.stdout_write = os.pipe2(os.O_CLOEXEC)
        self.stderr_read, self.stderr_write = os.pipe2(os.O_CLOEXEC)
        self.stdin_read, self.stdin_write = os.pipe2(os.O_CLOEXEC) if stdin else (-1, -1)

    def container_ends(self) -> tuple[int, int, int]:
        """Return the ends that become the container's stdin (-1 without a pipe), stdout and stderr."""
        return self.stdin_read, self.stdout_write, self.stderr_write

    def close_container_ends(self) -> None:
        """Close pyrun's copies of the container's ends, once the container has its own."""
        for fd in (self.stdin_read, self.stdout_write, self.stderr_write):
            if fd >= 0:
                os.close(fd)
        self.stdin_read = self.stdout_write = self.stderr_write = -1

    def close_pyrun_ends(self) -> None:
        """Close pyrun's ends: in a forked child that stays alive beside the
        container, because an end left open there would keep the container's
        writes from failing once pyrun stops reading, and its stdin from
        reaching end-of-file."""
        for fd in (self.stdout_read, self.stderr_read, self.stdin_write):
            if fd >= 0:
                os.close(fd)
        self.stdout_read = self.stderr_read = self.stdin_write = -1

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
        stdin = _StdinCopy(poller, self.stdin_write) if self.stdin_write >= 0 else None
        while streams:
            for fd, _event in poller.poll():
                if stdin is not None and stdin.handles(fd):
                    if stdin.step(fd):
                        self.stdin_write = -1  # closed: the container reads end-of-file
                    continue
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


class _StdinCopy:
    """Copy pyrun's stdin into the container's stdin pipe, inside StdioPipes.copy's poll loop.

    The pipe's end is non-blocking, and pyrun reads no more of its stdin
    until the container has taken what was read before. So a container that
    does not read its stdin never stops pyrun from copying its output.
    """

    def __init__(self, poller: select.poll, pipe: int) -> None:
        self.poller = poller
        self.pipe = pipe
        self.pending = b""
        os.set_blocking(pipe, False)
        poller.register(0, select.POLLIN)

    def handles(self, fd: int) -> bool:
        return fd == 0 or fd == self.pipe

    def step(self, fd: int) -> bool:
        """Read stdin or write to the pipe, as poll reported `fd` ready; return True once the pipe is closed."""
        if fd == 0:
            try:
                data = os.read(0, READ_SIZE)
            except BlockingIOError:
                return False  # a non-blocking stdin that poll woke early: wait for more
            except OSError:
                data = b""  # a terminal that went away (EIO) ends the input as end-of-file does
            self.poller.unregister(0)
            if not data:
                return self.close()  # end of pyrun's stdin: the container reads end-of-file
            self.pending = data
            self.poller.register(self.pipe, select.POLLOUT)
            return False
        try:
            written = os.write(self.pipe, self.pending)
        except BlockingIOError:
            return False
        except OSError:
            # EPIPE: the container closed its stdin, so the rest has no reader.
            self.poller.unregister(self.pipe)
            return self.close()
        self.pending = self.pending[written:]
        if not self.pending:
            self.poller.unregister(self.pipe)
            self.poller.register(0, select.POLLIN)
        return False

    def close(self) -> bool:
        os.close(self.pipe)
        self.pipe = -1
        return True


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
