"""Attach to a detached container: its output, its stdin and its terminal, through FIFOs.

There is no daemon to connect to, so each container's monitor offers named
pipes (fifo(7)) in the container's directory, and `pyrun attach` and
`pyrun start -a` are the clients:

    attach.ctl            control lines from clients, one per write(2):
                            "attach TOKEN"         send output to this client's FIFOs
                            "resize ROWS COLUMNS"  set the pty's size (TIOCSWINSZ)
                            "close-stdin"          close the container's stdin once
                                                   the input written so far is delivered
    attach.stdin          input for the container (only with -i): the monitor
                          copies it to the stdin pipe, or to the pty master with -t
    attach-TOKEN.stdout   one client's copy of the output, made by that client
    attach-TOKEN.stderr   (with -t, everything arrives on stdout)

The monitor opens attach.ctl and attach.stdin read-write, so it keeps a
writer itself and never reads end-of-file when a client goes away. A client
opens them with O_NONBLOCK, which fails with ENXIO when no monitor reads
them. Writes of up to PIPE_BUF (4096) bytes to a FIFO are atomic, so the
control lines of several clients never mix.

Output reaches a client raw, as the container writes it, because the json
log keeps an unfinished line (a shell's prompt) back until its newline.
The monitor writes the output to each client's FIFO without blocking.

NOTE: when a client's FIFO is full (1 MiB, or 64 KiB where F_SETPIPE_SZ
is not allowed), the monitor drops the output that does not fit for that
client, rather than stall the container. The json log still has all of it.

This module's top level imports only what the lean monitor may import
(`python -S`, see runtime/monitor.py); the client's side imports the rest
inside its functions.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import sys
import termios

CONTROL_FIFO = "attach.ctl"
STDIN_FIFO = "attach.stdin"
CLIENT_PREFIX = "attach-"
STREAMS = ("stdout", "stderr")
CLIENT_PIPE_SIZE = 1 << 20
READ_SIZE = 65536
# How often the monitor retries input that the container's stdin did not take.
RETRY_MILLISECONDS = 50


def client_fifo(directory: str, token: str, stream: str) -> str:
    return os.path.join(directory, f"{CLIENT_PREFIX}{token}.{stream}")


def valid_token(token: str) -> bool:
    """True for a token of 1 to 32 lowercase hex digits, which keeps FIFO paths inside the directory."""
    return 0 < len(token) <= 32 and all(character in "0123456789abcdef" for character in token)


def make_fifo(path: str) -> int:
    """Create the FIFO `path` afresh and open it read-write and non-blocking, so it never reads end-of-file."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def open_fifos(directory: str, with_stdin: bool) -> tuple[int, int]:
    """Create the attach point's FIFOs; return the fds of attach.ctl and of attach.stdin (-1 without stdin)."""
    control_fd = make_fifo(os.path.join(directory, CONTROL_FIFO))
    input_fd = make_fifo(os.path.join(directory, STDIN_FIFO)) if with_stdin else -1
    return control_fd, input_fd


def write_nonblocking(fd: int, data: bytes) -> int:
    """Write what `fd` takes now without waiting; return the bytes written (0 when full).

    O_NONBLOCK is set only for the write, because it belongs to the open file
    description, and the pty master is also read by the monitor's output loop,
    which must not see EAGAIN. Raises BrokenPipeError when no reader is left.
    """
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def window_size_bytes(rows: int, columns: int) -> bytes:
    """Return a struct winsize (unsigned shorts ws_row, ws_col, ws_xpixel, ws_ypixel) in native byte order."""
    return rows.to_bytes(2, sys.byteorder) + columns.to_bytes(2, sys.byteorder) + bytes(4)


# -- The monitor's side --------------------------------------------------------


class AttachPoint:
    """The monitor's end: reads attach.ctl and attach.stdin, and copies output to attached clients.

    `stdin_fd` is the container's stdin as the monitor keeps it: the write
    end of its stdin pipe, the pty master with -t -i, or -1 without -i.
    `console_fd` is the pty master with -t, else -1. The monitor's output
    loop owns `console_fd`, so this class never closes it.
    """

    def __init__(self, directory: str, stdin_fd: int, console_fd: int,
                 fifos: tuple[int, int] | None = None) -> None:
        self.directory = directory
        self.stdin_fd = stdin_fd
        self.console_fd = console_fd
        self.pending = b""
        self.closing_stdin = False
        self.control_buffer = b""
        self.clients: dict[str, dict[str, int]] = {}
        self.poller: select.poll | None = None
        self.input_watched = False
        # `fifos` are the ones open_fifos made before the monitor's exec.
        self.control_fd, self.input_fd = fifos or open_fifos(directory, stdin_fd >= 0)
        # `pyrun start -a` made its FIFOs before the start, so that it also
        # gets the output written before this monitor read its first byte.
        for name in os.listdir(directory):
            if name.startswith(CLIENT_PREFIX) and name.endswith(".stdout"):
                self.connect(name[len(CLIENT_PREFIX) : -len(".stdout")])

    def register(self, poller: select.poll) -> None:
        self.poller = poller
        poller.register(self.control_fd, select.POLLIN)
        for fds in self.clients.values():
            for fd in fds.values():
                poller.register(fd, 0)
        self._watch_input(True)

    def timeout(self) -> int | None:
        """Return the poll(2) timeout in milliseconds: a retry while input waits, else none."""
        return RETRY_MILLISECONDS if self.pending else None

    def handle(self, fd: int) -> None:
        """Handle a poll(2) event on `fd`; ignore an fd closed earlier in the same round of events."""
        if fd == self.control_fd:
            self._read_control()
        elif fd == self.input_fd:
            self._read_input()
        else:
            for token, fds in self.clients.items():
                if fd in fds.values():
                    # poll(2) reports POLLERR on a FIFO's write end once its reader has closed it.
                    self.disconnect(token)
                    break

    def send_output(self, stream: str, data: bytes) -> None:
        """Copy output to every client; drop what a full FIFO does not take."""
        for token in list(self.clients):
            try:
                write_nonblocking(self.clients[token][stream], data)
            except OSError:
                self.disconnect(token)  # EPIPE: the client has closed its end

    def connect(self, token: str) -> None:
        """Open a client's output FIFOs for writing; a client that has gone has its FIFOs removed."""
        if not valid_token(token) or token in self.clients:
            return
        fds: dict[str, int] = {}
        try:
            for stream in STREAMS:
                fds[stream] = os.open(
                    client_fifo(self.directory, token, stream), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
                )
        except OSError:
            # ENXIO: no reader, so the client that made the FIFOs is gone.
            for fd in fds.values():
                os.close(fd)
            for stream in STREAMS:
                try:
                    os.unlink(client_fifo(self.directory, token, stream))
                except FileNotFoundError:
                    pass
            return
        for fd in fds.values():
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CLIENT_PIPE_SIZE)
            except OSError:
                pass  # EPERM above pipe-max-size without CAP_SYS_RESOURCE: the default 64 KiB stays
        self.clients[token] = fds
        if self.poller is not None:
            for fd in fds.values():
                self.poller.register(fd, 0)

    def disconnect(self, token: str) -> None:
        """Close a client's FIFOs and remove them; a client still reading them keeps its open ends."""
        for stream, fd in self.clients.pop(token).items():
            if self.poller is not None:
                self.poller.unregister(fd)
            os.close(fd)
            try:
                os.unlink(client_fifo(self.directory, token, stream))
            except FileNotFoundError:
                pass  # the client removed it first

    def stream_closed(self, fd: int) -> None:
        """Stop using the pty master once the output loop has closed it, because its number may be reused."""
        if fd != self.console_fd:
            return
        self.console_fd = -1
        if self.stdin_fd == fd:
            self.stdin_fd = -1
            self.pending = b""

    def flush(self) -> None:
        """Deliver waiting input to the container's stdin; read more input only once it is all delivered."""
        while self.pending and self.stdin_fd >= 0:
            try:
                written = write_nonblocking(self.stdin_fd, self.pending)
            except OSError:
                # EPIPE: every process that read the container's stdin has
                # closed it. EIO: the pty's last user has closed it.
                self._close_stdin()
                break
            if written == 0:
                break
            self.pending = self.pending[written:]
        if self.stdin_fd < 0:
            self.pending = b""
        if not self.pending and self.closing_stdin:
            self._close_stdin()
        self._watch_input(not self.pending)

    def close(self) -> None:
        """Close every FIFO (clients then read end-of-file) and remove the monitor's two."""
        for token in list(self.clients):
            self.disconnect(token)
        for fd, name in ((self.control_fd, CONTROL_FIFO), (self.input_fd, STDIN_FIFO)):
            if fd < 0:
                continue
            os.close(fd)
            try:
                os.unlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
        if self.stdin_fd >= 0 and self.stdin_fd != self.console_fd:
            os.close(self.stdin_fd)
        self.stdin_fd = -1

    def _watch_input(self, watch: bool) -> None:
        if self.poller is None or self.input_fd < 0 or watch == self.input_watched:
            return
        if watch:
            self.poller.register(self.input_fd, select.POLLIN)
        else:
            self.poller.unregister(self.input_fd)
        self.input_watched = watch

    def _read_input(self) -> None:
        try:
            data = os.read(self.input_fd, READ_SIZE)
        except BlockingIOError:
            return
        if self.stdin_fd >= 0:
            self.pending += data
        self.flush()

    def _read_control(self) -> None:
        try:
            self.control_buffer += os.read(self.control_fd, READ_SIZE)
        except BlockingIOError:
            return
        *lines, self.control_buffer = self.control_buffer.split(b"\n")
        for line in lines:
            self._apply(line.decode("ascii", "replace").split())

    def _apply(self, words: list[str]) -> None:
        """Carry out one control line; ignore one that is malformed."""
        if len(words) == 2 and words[0] == "attach":
            self.connect(words[1])
        elif len(words) == 3 and words[0] == "resize" and words[1].isdigit() and words[2].isdigit():
            if self.console_fd >= 0:
                rows, columns = min(int(words[1]), 0xFFFF), min(int(words[2]), 0xFFFF)
                try:
                    fcntl.ioctl(self.console_fd, termios.TIOCSWINSZ, window_size_bytes(rows, columns))
                except OSError:
                    pass  # EIO: the container's side of the pty has closed, and the output ends soon
        elif words == ["close-stdin"] and self.console_fd < 0 and self.stdin_fd >= 0:
            # The client wrote all its input before this line, so whatever
            # attach.stdin contains now is delivered before stdin closes.
            self._drain_input()
            self.closing_stdin = True
            self.flush()

    def _drain_input(self) -> None:
        while True:
            try:
                data = os.read(self.input_fd, READ_SIZE)
            except BlockingIOError:
                return
            self.pending += data

    def _close_stdin(self) -> None:
        """Close the container's stdin, so that its reader sees end-of-file; later input is dropped."""
        self.closing_stdin = False
        if self.stdin_fd >= 0 and self.stdin_fd != self.console_fd:
            os.close(self.stdin_fd)
        self.stdin_fd = -1


# -- The client's side ---------------------------------------------------------

# Signals a non-tty attach passes on to the container (Docker's --sig-proxy).
PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
# Docker's default detach keys for a -t container: Ctrl-P, then Ctrl-Q.
DETACH_KEYS = b"\x10\x11"
# How often a client checks that the monitor still runs while no output comes.
LIVENESS_MILLISECONDS = 250


class NoAttachPoint(Exception):
    """The container's monitor offers no attach.ctl: it predates attach support, or it is gone."""


class Client:
    """One attached `pyrun attach` or `start -a`: its output FIFOs and its lines to the monitor."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.token = os.urandom(8).hex()
        self.control_fd = -1
        self.input_fd = -1
        # Each output FIFO and the host fd its data goes to.
        self.outputs: dict[int, int] = {}
        for stream, target in zip(STREAMS, (1, 2)):
            path = client_fifo(directory, self.token, stream)
            os.mkfifo(path, 0o600)
            # A reader may open a FIFO before any writer does, if it does not wait (O_NONBLOCK).
            self.outputs[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = target

    def connect(self, stdin: bool) -> None:
        """Ask the monitor for output and, with `stdin`, open attach.stdin; raise NoAttachPoint without a monitor."""
        try:
            self.control_fd = _open_writer(os.path.join(self.directory, CONTROL_FIFO))
        except OSError as err:
            raise NoAttachPoint(str(err)) from err
        self.send(f"attach {self.token}")
        if stdin:
            try:
                self.input_fd = _open_writer(os.path.join(self.directory, STDIN_FIFO))
            except OSError:
                self.input_fd = -1  # the container has no open stdin (created without -i)

    def send(self, line: str) -> None:
        if self.control_fd < 0:
            return
        try:
            os.write(self.control_fd, (line + "\n").encode())
        except BrokenPipeError:
            pass  # the monitor has exited, so the output ends soon as well

    def send_window_size(self) -> None:
        """Send the size of this process's terminal (stdout's, else stdin's); do nothing without one."""
        for fd in (1, 0):
            if os.isatty(fd):
                size = fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8))
                rows = int.from_bytes(size[0:2], sys.byteorder)
                columns = int.from_bytes(size[2:4], sys.byteorder)
                if rows and columns:
                    self.send(f"resize {rows} {columns}")
                return

    def close_input(self) -> None:
        if self.input_fd >= 0:
            os.close(self.input_fd)
            self.input_fd = -1

    def close(self) -> None:
        """Close every fd and remove this client's FIFOs."""
        self.close_input()
        if self.control_fd >= 0:
            os.close(self.control_fd)
            self.control_fd = -1
        for fd in self.outputs:
            os.close(fd)
        self.outputs = {}
        for stream in STREAMS:
            try:
                os.unlink(client_fifo(self.directory, self.token, stream))
            except FileNotFoundError:
                pass  # removed with the container (an --rm container)


def _open_writer(path: str) -> int:
    """Open a FIFO for writing; fail with ENXIO at once when no process reads it, then write blocking."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def session(root: str, container_id: str, *, stdin: bool, sig_proxy: bool, start: bool = False) -> int:
    """Attach to a container, starting it first when `start`; return its exit code, or 0 after a detach.

    With `stdin`, input is forwarded when the container was created with
    -i. A -t container gets this terminal in raw mode, its size, and the
    detach keys (Ctrl-P Ctrl-Q). Otherwise, with `sig_proxy`, the signals
    in PROXIED_SIGNALS that this process receives go to the container.
    Raises NoAttachPoint when the container's monitor offers no attach.ctl.
    """
    from runtime import lifecycle, state
    from runtime.errors import NotFoundError

    directory = state.container_dir(root, container_id)
    client = Client(directory)
    try:
        if start:
            # After the FIFOs exist, so the new monitor connects them before it reads any output.
            lifecycle.start(root, container_id)
        record = state.load_record(root, container_id)
        tty = bool(record.get("tty"))
        forward = stdin and bool(record.get("interactive"))
        try:
            client.connect(forward)
        except NoAttachPoint:
            if not start:
                raise
            # A short-lived container's monitor may be gone already; its
            # output came through the FIFOs it connected at its start.
        detached = _relay(client, record, forward=client.input_fd >= 0, tty=tty, sig_proxy=sig_proxy and not tty)
    finally:
        client.close()
    if detached:
        return 0
    try:
        code = lifecycle.wait(root, container_id)
    except NotFoundError:
        return 0  # an --rm container removed itself, and its exit code with it
    return 0 if code is None else code


def _relay(client: Client, record: dict, *, forward: bool, tty: bool, sig_proxy: bool) -> bool:
    """Copy the output to stdout and stderr, and stdin to the container, until the output ends.

    Returns True when the user detached (the detach keys, or a terminal
    that hung up), False when the output ended.
    """
    import contextlib

    from runtime import lifecycle, signals, terminal

    poller = select.poll()
    for fd in client.outputs:
        poller.register(fd, select.POLLIN)
    input_relay = InputRelay(client, tty=tty, stdin_once=bool(record.get("stdin_once")))
    if forward:
        poller.register(0, select.POLLIN)
    with contextlib.ExitStack() as stack:
        if tty:
            if forward:
                stack.enter_context(terminal.raw_mode(0))
            client.send_window_size()
            stack.enter_context(_signal_handler(signals.SIGWINCH, lambda _signum, _frame: client.send_window_size()))
        elif sig_proxy:
            for name in PROXIED_SIGNALS:
                handler = lambda signum, _frame: _proxy_signal(record, signum)  # noqa: E731
                stack.enter_context(_signal_handler(getattr(signals, name), handler))
        while client.outputs:
            events = poller.poll(LIVENESS_MILLISECONDS)
            # A monitor that exits closes the FIFOs it connected, which poll(2)
            # reports. Silence with no monitor means it never connected them.
            if not events and not lifecycle.monitor_alive(client.directory):
                return False
            for fd, _event in events:
                if fd != 0:
                    _copy_output(client, poller, fd)
                elif input_relay.forward() == "detach":
                    return True
                elif client.input_fd < 0:
                    poller.unregister(0)
    return False


class InputRelay:
    """Copies this process's stdin to attach.stdin, watching for the detach keys with -t."""

    def __init__(self, client: Client, *, tty: bool, stdin_once: bool) -> None:
        self.client = client
        self.tty = tty
        self.stdin_once = stdin_once
        # Checked once, because isatty(3) returns False on a terminal that has hung up.
        self.stdin_is_terminal = os.isatty(0)
        self.held_key = b""

    def forward(self) -> str:
        """Forward one read of stdin; return "detach" to end the attach, else "".

        At end-of-file, the client stops forwarding, and closes the
        container's stdin when it was created by `create -i` (Docker's
        StdinOnce). A -t container's stdin never closes.
        """
        try:
            data = os.read(0, READ_SIZE)
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            data = b""  # EIO: the terminal hung up
        if not data:
            if self.tty and self.stdin_is_terminal:
                # A terminal in raw mode reads end-of-file or EIO only after a hangup.
                return "detach"
            if self.stdin_once and not self.tty:
                self.client.send("close-stdin")
            self.client.close_input()
            return ""
        detach = False
        if self.tty:
            data, detach = self._take_detach_keys(data)
        if data and not _write_all(self.client.input_fd, data):
            self.client.close_input()  # the monitor has exited
        return "detach" if detach else ""

    def _take_detach_keys(self, data: bytes) -> tuple[bytes, bool]:
        """Return the keys to forward, and True once Ctrl-P Ctrl-Q was typed.

        A Ctrl-P at the end of a read is held back until the next read
        shows whether Ctrl-Q follows, as Docker does.
        """
        data, self.held_key = self.held_key + data, b""
        index = data.find(DETACH_KEYS)
        if index >= 0:
            return data[:index], True
        if data.endswith(DETACH_KEYS[:1]):
            data, self.held_key = data[:-1], data[-1:]
        return data, False


def _copy_output(client: Client, poller: select.poll, fd: int) -> None:
    """Copy one read of an output FIFO to its host fd; close the FIFO at end-of-file."""
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        return
    if data:
        _write_all(client.outputs[fd], data)
        return
    poller.unregister(fd)
    os.close(fd)
    del client.outputs[fd]


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of `data`; return False when the reader is gone (EPIPE)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError:
        return False
    return True


def _proxy_signal(record: dict, signum: int) -> None:
    from runtime import lifecycle
    from runtime.errors import PyrunError

    try:
        lifecycle.send_signal(record, signum)
    except PyrunError:
        pass  # the container has exited, and its output ends soon


def _signal_handler(signum: int, handler):
    """Return a context manager that handles `signum` with `handler` inside the block."""
    import contextlib

    from runtime import signals

    @contextlib.contextmanager
    def installed():
        previous = signals.signal(signum, handler)
        try:
            yield
        finally:
            signals.signal(signum, previous)

    return installed()
