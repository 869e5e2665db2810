"""`pyrun run`: terminals, stdin, signals, zombies, leaked descriptors, /proc/<pid>/exe."""

import glob
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.run_support import popen_env, pyrun_command, pyrun_run, run_env, run_in_pty  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_interactive_tty_needs_a_terminal_on_stdin(run_env):
    result = pyrun_run(run_env, "-it", "busybox", "cat", input="piped\n")
    assert result.returncode == 1
    assert "the input device is not a TTY" in result.stderr
    assert pyrun_run(run_env, "-i", "busybox", "cat", input="piped\n").stdout == "piped\n"


def test_tty_allocates_container_pty(run_env):
    code, output = run_in_pty(run_env, "-t", "busybox", "tty")
    assert code == 0
    assert output.strip() == "/dev/pts/0"


def test_tty_passes_window_size(run_env):
    code, output = run_in_pty(run_env, "-it", "busybox", "stty", "size")
    assert code == 0
    assert output.strip() == "33 101"


def test_without_tty_no_terminal(run_env):
    result = pyrun_run(run_env, "busybox", "tty")
    assert result.returncode == 1
    assert "not a tty" in result.stdout


def test_interactive_forwards_stdin(run_env):
    result = pyrun_run(run_env, "-i", "busybox", "cat", input="through stdin\n")
    assert result.stdout == "through stdin\n"


def test_stdin_closed_without_interactive(run_env):
    result = pyrun_run(run_env, "busybox", "cat", input="not passed\n")
    assert result.returncode == 0
    assert result.stdout == ""


def start_and_wait_ready(run_env, *args):
    process = subprocess.Popen(pyrun_command(run_env, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=popen_env(run_env), text=True)
    assert process.stdout.readline() == "ready\n"
    return process


def test_sigterm_reaches_container(run_env):
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done'
    process = start_and_wait_ready(run_env, "busybox", "sh", "-c", script)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)
    assert stdout == "got-term\n"
    assert process.returncode == 7


def test_sigint_under_init_ends_command(run_env):
    process = start_and_wait_ready(run_env, "--init", "busybox", "sh", "-c", "echo ready; exec sleep 60")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGINT


def wait_for_sigint_blocked(pid: int) -> None:
    """Wait until the launcher's first line has blocked SIGINT (and only SIGINT) in process `pid`."""
    status = f"/proc/{pid}/status"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(status) as file:
            blocked = next(line for line in file if line.startswith("SigBlk:")).split()[1]
        if int(blocked, 16) == 1 << (signal.SIGINT - 1):
            return
        time.sleep(0.0002)
    raise AssertionError(f"process {pid} never blocked SIGINT alone (SigBlk {blocked})")


@pytest.mark.parametrize("delay", [0, 0.002, 0.004])
def test_early_ctrl_c_leaves_nothing(run_env, delay):
    # From its first line until the command line is parsed, pyrun blocks
    # SIGINT (runtime/console.py). A Ctrl-C then ends with the usual
    # message, never a traceback, and before any container exists.
    before = set(os.listdir(run_env.root / "containers"))
    name = f"early-interrupt-{int(delay * 1000)}"
    process = subprocess.Popen(pyrun_command(run_env, "--name", name, "busybox", "true"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=popen_env(run_env), text=True)
    wait_for_sigint_blocked(process.pid)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert stderr == "pyrun: interrupted\n"
    assert process.returncode == 130
    assert set(os.listdir(run_env.root / "containers")) == before
    assert not (run_env.root / "names" / name).exists()


# Runs pyrun with a Ctrl-C raised right after one kernel call succeeds,
# before the code that made the call has noted what it created.
INTERRUPT_AFTER_CALL = """
import sys
from runtime import syscalls
from runtime.console import run

def interrupt(call):
    if call.name == {name!r} and call.error is None and {match!r} in str(call.args):
        raise KeyboardInterrupt

syscalls.add_listener(interrupt)
run()
"""


@pytest.mark.parametrize(("call", "match"), [("mount", "'overlay'"), ("mkdir", "/memory/pyrun/")])
def test_ctrl_c_after_kernel_call_leaves_nothing(run_env, call, match):
    # The overlay mount and a cgroup leaf (here the memory hierarchy's, made
    # after others) are removed even when the interrupt comes before the
    # call's wrapper returns. The fixture host_resources_released checks too.
    before = set(os.listdir(run_env.root / "containers"))
    cgroups_before = set(glob.glob("/sys/fs/cgroup/*/pyrun/*"))
    script = INTERRUPT_AFTER_CALL.format(name=call, match=match)
    command = [sys.executable, "-c", script, *pyrun_command(run_env, "busybox", "true")[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env=popen_env(run_env), timeout=60)
    assert result.stderr == "pyrun: interrupted\n"
    assert result.returncode == 130
    assert set(os.listdir(run_env.root / "containers")) == before
    with open("/proc/self/mountinfo") as mountinfo:
        assert str(run_env.root) not in mountinfo.read()
    assert set(glob.glob("/sys/fs/cgroup/*/pyrun/*")) <= cgroups_before


# Runs pyrun on its fallback path (clone3 fails with ENOSYS), with a Ctrl-C
# to the whole process group from the setup process right after it forks
# pid 1: the moment when the setup process is still needed.
CTRL_C_IN_SETUP_PROCESS = """
import errno, os, signal
from runtime import syscalls
from runtime.console import run

pyrun_pid = os.getpid()

def without_clone3(*args, **kwargs):
    raise OSError(errno.ENOSYS, "clone3 disabled by the test")

def interrupt(call):
    if call.name == "fork" and call.result and os.getpid() != pyrun_pid:
        os.killpg(0, signal.SIGINT)

syscalls.fork_into_cgroup = without_clone3
syscalls.add_listener(interrupt)
run()
"""


def test_ctrl_c_in_setup_process_is_harmless(run_env):
    # The setup process keeps the forwarded signals blocked, and pid 1 (the
    # init of its pid namespace) ignores them, so the command runs. A setup
    # process that died here left pyrun waiting forever on the channel,
    # which pid 1 keeps open.
    command = [sys.executable, "-c", CTRL_C_IN_SETUP_PROCESS,
               *pyrun_command(run_env, "busybox", "echo", "ran")[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env=popen_env(run_env), timeout=60,
                            start_new_session=True)
    assert result.stderr == ""
    assert result.stdout == "ran\n"
    assert result.returncode == 0


def test_sigkill_of_container_gives_137(run_env):
    process = start_and_wait_ready(run_env, "busybox", "sh", "-c", "echo ready; exec sleep 60")
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1
    os.kill(int(children[0]), signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == 137


def test_init_reaps_orphaned_zombies(run_env):
    # The inner sh exits at once, so its child `sleep` is orphaned to pid 1
    # and stays a zombie after it ends unless pid 1 waits for it.
    script = "sh -c 'sleep 0.2 &'; sleep 1; grep -l 'State:.*Z' /proc/[0-9]*/status | wc -l"
    result = pyrun_run(run_env, "--init", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_no_pyrun_descriptor_leaks(run_env, tmp_path):
    # An inheritable descriptor that pyrun was started with must not reach the container.
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = pyrun_run(run_env, "busybox", "sh", "-c", "ls /proc/$$/fd; true", pass_fds=(leaked,))
    finally:
        os.close(leaked)
    assert sorted(result.stdout.split()) == ["0", "1", "2"]


def test_init_command_has_only_stdio(run_env):
    result = pyrun_run(run_env, "--init", "busybox", "sh", "-c", "ls /proc/$$/fd; true")
    assert sorted(result.stdout.split()) == ["0", "1", "2"]


def test_proc_self_exe_is_container_binary(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "readlink /proc/self/exe; readlink /proc/1/exe")
    assert result.stdout.split() == ["/bin/busybox", "/bin/busybox"]


def test_init_exe_not_reachable(run_env):
    # pid 1 is pyrun's init, a Python process: the container must not open
    # its /proc/1/exe (the host's interpreter) or its memory.
    script = "readlink /proc/1/exe || echo denied-exe; cat /proc/1/mem 2>/dev/null || echo denied-mem"
    result = pyrun_run(run_env, "--init", "busybox", "sh", "-c", script)
    assert result.stdout.split() == ["denied-exe", "denied-mem"]


def test_cwd_is_inside_container(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "readlink /proc/self/cwd; ls /proc/self/cwd/bin/busybox")
    assert result.stdout.split() == ["/", "/proc/self/cwd/bin/busybox"]


def test_no_ignored_signals_in_container(run_env):
    # Python ignores SIGPIPE; the ignored set must not survive into the command.
    result = pyrun_run(run_env, "busybox", "grep", "SigIgn", "/proc/self/status")
    assert result.stdout.split() == ["SigIgn:", "0000000000000000"]


def test_init_hides_host_command_line(run_env):
    result = pyrun_run(run_env, "--init", "busybox", "cat", "/proc/1/cmdline")
    assert result.stdout.rstrip("\0") == "pyrun-init"


@pytest.mark.parametrize("flags", [[], ["--init"]])
def test_ctrl_c_in_interactive_shell(run_env, flags):
    # Ctrl-C on the terminal reaches the container's foreground command
    # through its pty; the shell survives and runs the next line.
    master, process = start_interactive_shell(run_env, flags)
    try:
        assert b"# " in read_until(master, b"# ")
        os.write(master, b"sleep 60\n")
        time.sleep(1)
        os.write(master, b"\x03")
        os.write(master, b"echo after-ctrl-c; exit 3\n")
        assert b"after-ctrl-c\r\n" in read_until(master, b"after-ctrl-c\r\n")
        assert process.wait(timeout=30) == 3
    finally:
        # A pyrun still running after a failed check ends with the hangup.
        os.close(master)
        process.wait(timeout=30)


@pytest.mark.parametrize(("flags", "expected_code"), [([], 0), (["--init"], 128 + signal.SIGHUP)])
def test_hangup_ends_interactive_shell(run_env, flags, expected_code):
    # Closing the host terminal hangs up the container's terminal: the shell
    # reads end-of-file as pid 1, or gets SIGHUP under --init, and pyrun
    # exits and cleans up.
    master, process = start_interactive_shell(run_env, flags)
    try:
        assert b"# " in read_until(master, b"# ")
    finally:
        os.close(master)
    assert process.wait(timeout=30) == expected_code


def start_interactive_shell(run_env, flags: list[str]) -> tuple[int, subprocess.Popen]:
    """Start `pyrun run -it FLAGS busybox sh` on a new pty; return the pty master and the process."""
    master, slave = os.openpty()
    process = subprocess.Popen(pyrun_command(run_env, "-it", *flags, "busybox", "sh"), stdin=slave,
                               stdout=slave, stderr=slave, env=popen_env(run_env), start_new_session=True)
    os.close(slave)
    return master, process


def read_until(master: int, marker: bytes, timeout: float = 20) -> bytes:
    """Read the pty master until `marker` arrives or `timeout` seconds pass; return what was read."""
    output = b""
    deadline = time.monotonic() + timeout
    while marker not in output and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                output += os.read(master, 4096)
            except OSError:
                break
    return output
