"""Interactive attach to detached containers: `run -d -i`, `attach`, `start -a -i`, and -t terminals.

The -t tests play the user's terminal with a pty pair: `pyrun attach`
gets the slave as stdin, stdout and stderr, and the test types on the
master and reads the screen from it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import PYRUN
from tests.integration.run_support import cleanup, detached, popen_env, pyrun, run_env, wait_for  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, pytest.mark.registry]

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q


def attach_command(run_env, *args: str) -> list[str]:  # noqa: F811
    return [PYRUN, "--root", str(run_env.root), "attach", *args]


def state_of(run_env, container: str) -> str:  # noqa: F811
    return pyrun(run_env, "inspect", "-f", "{{.State.Status}}", container).stdout.strip()


def container_files(run_env, container: str) -> list[str]:  # noqa: F811
    full_id = pyrun(run_env, "inspect", "-f", "{{.Id}}", container).stdout.strip()
    return sorted(os.listdir(run_env.root / "containers" / full_id))


class Terminal:
    """A pty pair that plays the user's terminal for one `pyrun attach`."""

    def __init__(self, rows: int = 30, columns: int = 100) -> None:
        self.master, self.slave = pty.openpty()
        self.resize(rows, columns)
        self.screen = b""

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def start(self, argv: list[str], env: dict) -> subprocess.Popen:
        process = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env,
                                   start_new_session=True)
        os.close(self.slave)
        return process

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def read_until(self, expected: bytes, timeout: float = 10) -> bytes:
        """Read the screen until `expected` appears; return everything read since the last call."""
        deadline = time.monotonic() + timeout
        while expected not in self.screen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:
                    break  # EIO: the attach exited and closed the slave
        screen, self.screen = self.screen, b""
        return screen

    def close(self) -> None:
        os.close(self.master)


def test_attach_stdin_reaches_read(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c", "read x; echo got:$x")
    # Without an attach, the command waits for input instead of reading end-of-file.
    time.sleep(0.5)
    assert state_of(run_env, container) == "running"

    attached = subprocess.run(attach_command(run_env, container), input="hello\n", capture_output=True,
                              text=True, env=popen_env(run_env), timeout=30)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == "got:hello\n"
    assert pyrun(run_env, "logs", container).stdout == "got:hello\n"


def test_attach_eof_keeps_run_d_stdin_open(run_env, cleanup):  # noqa: F811
    # `run -d -i` is not StdinOnce in Docker: the end of one attach's input
    # leaves the container's stdin open for the next attach.
    container = detached(run_env, "-i", "busybox", "cat")
    first = subprocess.Popen(attach_command(run_env, container), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env=popen_env(run_env))
    first.stdin.write(b"one\n")
    first.stdin.close()
    assert first.stdout.readline() == b"one\n"
    time.sleep(0.5)
    assert first.poll() is None  # still attached: cat runs on
    assert state_of(run_env, container) == "running"
    first.kill()
    first.wait()

    second = subprocess.run(attach_command(run_env, "--sig-proxy=false", container), input=b"two\n",
                            capture_output=True, env=popen_env(run_env), timeout=30,
                            preexec_fn=lambda: signal.alarm(3))
    assert second.returncode == -signal.SIGALRM
    assert second.stdout == b"two\n"
    assert pyrun(run_env, "logs", container).stdout == "one\ntwo\n"


def test_attach_eof_closes_create_i_stdin(run_env, cleanup):  # noqa: F811
    created = pyrun(run_env, "create", "-i", "--network", "none", "busybox", "sh", "-c", "cat; echo done")
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()
    assert pyrun(run_env, "start", container).returncode == 0

    attached = subprocess.run(attach_command(run_env, container), input="line\n", capture_output=True,
                              text=True, env=popen_env(run_env), timeout=30)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == "line\ndone\n"
    assert state_of(run_env, container) == "exited"


def test_start_attach_interactive(run_env, cleanup):  # noqa: F811
    created = pyrun(run_env, "create", "-i", "--network", "none", "busybox", "sh", "-c",
                    "read x; echo got:$x; exit 7")
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()

    started = pyrun(run_env, "start", "-a", "-i", container, input="hello\n")
    assert started.returncode == 7, started.stderr
    assert started.stdout == "got:hello\n"
    assert pyrun(run_env, "logs", container).stdout == "got:hello\n"


def test_start_attach_without_i_sends_nothing(run_env, cleanup):  # noqa: F811
    created = pyrun(run_env, "create", "-i", "--network", "none", "busybox", "sh", "-c",
                    "read -t 1 x; echo got:$x; readlink /proc/$$/fd/0")
    assert created.returncode == 0, created.stderr
    started = pyrun(run_env, "start", "-a", created.stdout.strip(), input="hello\n")
    assert started.returncode == 0, started.stderr
    got, stdin = started.stdout.splitlines()
    assert got == "got:"
    assert stdin.startswith("pipe:")  # open, and waiting for an attach with stdin


def test_attach_no_stdin_forwards_nothing(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c", "read x; echo got:$x")
    watching = subprocess.Popen(attach_command(run_env, "--no-stdin", container), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=popen_env(run_env))
    watching.stdin.write(b"ignored\n")
    watching.stdin.close()
    time.sleep(1)
    assert state_of(run_env, container) == "running"

    typing = subprocess.run(attach_command(run_env, container), input=b"typed\n", capture_output=True,
                            env=popen_env(run_env), timeout=30)
    assert typing.stdout == b"got:typed\n"
    assert watching.stdout.read() == b"got:typed\n"
    assert watching.wait(timeout=30) == 0


def test_attach_stderr_stays_apart(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c", "read x; echo out; echo err >&2")
    attached = subprocess.run(attach_command(run_env, container), input="go\n", capture_output=True,
                              text=True, env=popen_env(run_env), timeout=30)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == "out\n"
    assert attached.stderr == "err\n"


def test_attach_proxies_ctrl_c(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c",
                         "trap 'echo got INT; exit 3' INT; echo ready; while true; do sleep 0.1; done")
    # An attach shows what the monitor reads after it connects, as Docker's
    # does: wait until the monitor has logged "ready", so it is not shown.
    assert wait_for(lambda: pyrun(run_env, "logs", container).stdout == "ready\n")
    attached = subprocess.Popen(attach_command(run_env, container), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=popen_env(run_env))
    time.sleep(1)  # until the attach has connected
    attached.send_signal(signal.SIGINT)
    output, _ = attached.communicate(timeout=30)
    assert output == b"got INT\n"
    assert attached.returncode == 3


def test_tty_attach_is_interactive(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "-t", "busybox", "sh")
    terminal = Terminal(rows=30, columns=100)
    try:
        attached = terminal.start(attach_command(run_env, container), popen_env(run_env))
        time.sleep(0.5)
        terminal.type(b"echo hi\r")
        assert b"echo hi\r\nhi\r\n" in terminal.read_until(b"hi\r\n/ #")

        terminal.type(b"stty size\r")
        assert b"30 100\r\n" in terminal.read_until(b"30 100")
        terminal.resize(40, 120)
        attached.send_signal(signal.SIGWINCH)
        time.sleep(0.3)
        terminal.type(b"stty size\r")
        assert b"40 120\r\n" in terminal.read_until(b"40 120")

        terminal.type(b"exit 5\r")
        assert attached.wait(timeout=30) == 5
    finally:
        terminal.close()
    assert state_of(run_env, container) == "exited"


def test_tty_attach_detach_keys(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "-t", "busybox", "sh")
    terminal = Terminal()
    try:
        attached = terminal.start(attach_command(run_env, container), popen_env(run_env))
        time.sleep(0.5)
        terminal.type(b"echo one\r")
        assert b"one\r\n" in terminal.read_until(b"one\r\n")
        terminal.type(DETACH_KEYS)
        assert attached.wait(timeout=30) == 0
    finally:
        terminal.close()
    assert state_of(run_env, container) == "running"

    # The shell is still there for the next attach.
    terminal = Terminal()
    try:
        attached = terminal.start(attach_command(run_env, container), popen_env(run_env))
        time.sleep(0.5)
        terminal.type(b"echo two\r")
        assert b"two\r\n" in terminal.read_until(b"two\r\n")
        terminal.type(b"exit\r")
        assert attached.wait(timeout=30) == 0
    finally:
        terminal.close()


def test_attach_leaves_no_fifos(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c", "read x; echo got:$x")
    attached = subprocess.run(attach_command(run_env, container), input=b"x\n", capture_output=True,
                              env=popen_env(run_env), timeout=30)
    assert attached.returncode == 0
    assert attached.stdout == b"got:x\n"
    assert wait_for(lambda: state_of(run_env, container) == "exited")
    assert not [name for name in container_files(run_env, container) if name.startswith("attach")]


def test_interactive_container_gets_no_extra_fds(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "-i", "busybox", "sh", "-c", "ls /proc/$$/fd; readlink /proc/$$/fd/0; read x")
    assert wait_for(lambda: len(pyrun(run_env, "logs", container).stdout.split()) == 4)
    *descriptors, stdin = pyrun(run_env, "logs", container).stdout.split()
    assert descriptors == ["0", "1", "2"]
    assert stdin.startswith("pipe:")
