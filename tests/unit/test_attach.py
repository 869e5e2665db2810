"""The monitor's attach point and the client's input relay, with real FIFOs, pipes and ptys in a temp dir."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios

import pytest

from runtime import attach


def pump(point: attach.AttachPoint, poller: select.poll, rounds: int = 3) -> None:
    """Run the monitor's loop for the attach point's fds only, as runtime.monitor does."""
    for _ in range(rounds):
        for fd, _event in poller.poll(50):
            point.handle(fd)
        point.flush()


def write_fifo(directory, name: str, data: bytes) -> None:
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


@pytest.fixture
def stdin_pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)


def open_point(directory, stdin_fd: int = -1, console_fd: int = -1):
    point = attach.AttachPoint(str(directory), stdin_fd, console_fd)
    poller = select.poll()
    point.register(poller)
    return point, poller


def test_point_makes_fifos(tmp_path):
    point, _ = open_point(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["attach.ctl"]
    point.close()
    assert os.listdir(tmp_path) == []


def test_input_reaches_stdin_pipe(tmp_path, stdin_pipe):
    read_end, write_end = stdin_pipe
    point, poller = open_point(tmp_path, write_end)
    assert sorted(os.listdir(tmp_path)) == ["attach.ctl", "attach.stdin"]
    write_fifo(tmp_path, "attach.stdin", b"hello\n")
    pump(point, poller)
    assert read_available(read_end) == b"hello\n"
    point.close()


def test_close_stdin_delivers_input_first(tmp_path, stdin_pipe):
    read_end, write_end = stdin_pipe
    point, poller = open_point(tmp_path, write_end)
    write_fifo(tmp_path, "attach.stdin", b"last words\n")
    # The control line is handled before the input, as poll(2) may order them.
    write_fifo(tmp_path, "attach.ctl", b"close-stdin\n")
    point.handle(point.control_fd)
    os.set_blocking(read_end, True)
    assert os.read(read_end, 100) == b"last words\n"
    assert os.read(read_end, 100) == b""  # end-of-file: the monitor closed its write end
    point.close()


def test_full_stdin_waits_for_reader(tmp_path, stdin_pipe):
    read_end, write_end = stdin_pipe
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    point, poller = open_point(tmp_path, write_end)
    data = bytes(range(256)) * 64  # 16 KiB, four times the pipe
    write_fifo(tmp_path, "attach.stdin", data)
    pump(point, poller)
    assert point.pending
    assert point.timeout() == attach.RETRY_MILLISECONDS
    received = b""
    for _ in range(20):
        received += read_available(read_end)
        pump(point, poller, rounds=1)
    received += read_available(read_end)
    assert received == data
    assert point.timeout() is None
    point.close()


def test_stdin_of_exited_reader_is_dropped(tmp_path):
    read_end, write_end = os.pipe()
    point, poller = open_point(tmp_path, write_end)
    os.close(read_end)
    write_fifo(tmp_path, "attach.stdin", b"nobody reads this\n")
    pump(point, poller)
    assert point.stdin_fd == -1
    assert point.pending == b""
    point.close()


def test_client_gets_output_per_stream(tmp_path):
    client = attach.Client(str(tmp_path))
    point, poller = open_point(tmp_path)
    write_fifo(tmp_path, "attach.ctl", f"attach {client.token}\n".encode())
    pump(point, poller)
    point.send_output("stdout", b"out\n")
    point.send_output("stderr", b"err\n")
    received = {target: read_available(fd) for fd, target in client.outputs.items()}
    assert received == {1: b"out\n", 2: b"err\n"}
    point.close()
    assert all(os.read(fd, 10) == b"" for fd in client.outputs)  # end-of-file after close
    client.close()
    assert os.listdir(tmp_path) == []


def test_waiting_client_connects_at_start(tmp_path):
    # `start -a` makes its FIFOs before the monitor exists.
    client = attach.Client(str(tmp_path))
    point, _ = open_point(tmp_path)
    assert list(point.clients) == [client.token]
    point.close()
    client.close()


def test_gone_client_is_removed(tmp_path):
    client = attach.Client(str(tmp_path))
    point, poller = open_point(tmp_path)
    for fd in client.outputs:
        os.close(fd)
    client.outputs = {}
    pump(point, poller)
    assert point.clients == {}
    assert sorted(os.listdir(tmp_path)) == ["attach.ctl"]
    point.close()


def test_stale_fifos_without_reader_are_removed(tmp_path):
    for stream in attach.STREAMS:
        os.mkfifo(attach.client_fifo(str(tmp_path), "abc123", stream))
    point, _ = open_point(tmp_path)
    assert point.clients == {}
    assert sorted(os.listdir(tmp_path)) == ["attach.ctl"]
    point.close()


@pytest.mark.parametrize("token", ["../../etc", "ABC", "", "a" * 33, "12 34"])
def test_invalid_token_is_ignored(tmp_path, token):
    point, poller = open_point(tmp_path)
    write_fifo(tmp_path, "attach.ctl", f"attach {token}\n".encode())
    pump(point, poller)
    assert point.clients == {}
    point.close()


def test_resize_sets_pty_size(tmp_path):
    master, slave = os.openpty()
    try:
        point, poller = open_point(tmp_path, master, master)
        write_fifo(tmp_path, "attach.ctl", b"resize 20 70\nresize x y\n")
        pump(point, poller)
        size = fcntl.ioctl(slave, termios.TIOCGWINSZ, bytes(8))
        assert struct.unpack("HHHH", size)[:2] == (20, 70)
        point.close()
        os.fstat(master)  # the monitor's output loop owns the master: still open
    finally:
        os.close(master)
        os.close(slave)


def test_pty_input_and_no_close_stdin(tmp_path):
    master, slave = os.openpty()
    try:
        point, poller = open_point(tmp_path, master, master)
        write_fifo(tmp_path, "attach.stdin", b"typed\n")
        write_fifo(tmp_path, "attach.ctl", b"close-stdin\n")
        pump(point, poller)
        assert point.stdin_fd == master  # a terminal's input never closes
        assert read_available(slave) == b"typed\n"
        point.close()
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("reads, forwarded, detached", [
    ([b"ls\r"], b"ls\r", False),
    ([b"ab\x10\x11cd"], b"ab", True),
    ([b"ab\x10", b"\x11"], b"ab", True),
    ([b"ab\x10", b"x"], b"ab\x10x", False),
])
def test_detach_keys(reads, forwarded, detached):
    relay = attach.InputRelay(client=None, tty=True, stdin_once=False)
    sent, seen = b"", False
    for data in reads:
        data, detach = relay._take_detach_keys(data)
        sent += data
        seen = seen or detach
    assert sent == forwarded
    assert seen == detached


def test_closed_console_is_not_used(tmp_path):
    master, slave = os.openpty()
    try:
        point, poller = open_point(tmp_path, master, master)
        point.stream_closed(master)
        write_fifo(tmp_path, "attach.stdin", b"late\n")
        write_fifo(tmp_path, "attach.ctl", b"resize 20 70\n")
        pump(point, poller)
        assert point.stdin_fd == -1
        assert point.console_fd == -1
        assert read_available(slave) == b""
        point.close()
    finally:
        os.close(master)
        os.close(slave)
