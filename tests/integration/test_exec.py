"""`pyrun exec`: a process joins a running container's namespaces, cgroup,
capabilities, user and environment, and brings none of pyrun's files or its
Python interpreter into the container."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import PYRUN, run_pyrun
from tests.integration.run_support import run_env  # noqa: F401 - fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


def pyrun(run_env, *args, **kwargs) -> subprocess.CompletedProcess:  # noqa: F811 - fixture name
    return run_pyrun(*args, root=run_env.root, env=run_env.env, **kwargs)


@pytest.fixture
def container(run_env):  # noqa: F811
    """A running busybox container, removed after the test."""
    result = pyrun(run_env, "run", "-d", "--network", "none", "-e", "FROM_RUN=yes", "--hostname", "box",
                   "busybox", "sleep", "600")
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    yield container_id
    pyrun(run_env, "rm", "-f", container_id)


def in_container(run_env, container, *command, **kwargs) -> subprocess.CompletedProcess:  # noqa: F811
    return pyrun(run_env, "exec", *kwargs.pop("flags", []), container, *command)


def test_exec_joins_every_namespace(run_env, container):  # noqa: F811
    script = "for ns in pid mnt uts ipc net cgroup; do " \
             "[ $(readlink /proc/self/ns/$ns) = $(readlink /proc/1/ns/$ns) ] || echo differs: $ns; done; hostname"
    result = in_container(run_env, container, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "box\n"


def test_exec_joins_cgroup_and_capabilities(run_env, container):  # noqa: F811
    result = in_container(run_env, container, "sh", "-c",
                          "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup; "
                          "grep CapEff /proc/self/status; grep CapEff /proc/1/status")
    assert result.returncode == 0, result.stderr
    own, _, first = result.stdout.partition("---\n")
    first_cgroups, _, capabilities = first.partition("CapEff")
    assert own == first_cgroups
    lines = ("CapEff" + capabilities).splitlines()
    assert lines[0].split()[1] == lines[1].split()[1]


def test_exec_env_user_workdir(run_env, container):  # noqa: F811
    result = in_container(run_env, container, "sh", "-c", 'echo "$FROM_RUN $EXTRA"; id -u; id -g; pwd',
                          flags=["-e", "EXTRA=added", "-u", "tester", "-w", "/tmp"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["yes added", "1000", "1000", "/tmp"]


def test_exec_returns_exit_code(run_env, container):  # noqa: F811
    assert in_container(run_env, container, "sh", "-c", "exit 5").returncode == 5
    missing = in_container(run_env, container, "no-such-command")
    assert missing.returncode == 127
    assert "no-such-command" in missing.stderr


def test_exec_closes_pyrun_descriptors(run_env, container):  # noqa: F811
    # `ls` itself opens the directory it lists, as fd 3.
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            ["pyrun", "--root", str(run_env.root), "exec", container, "ls", "/proc/self/fd"],
            capture_output=True, text=True, env={**os.environ, **run_env.env}, pass_fds=[write_end], timeout=60,
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2", "3"]


def test_exec_exposes_no_host_python(run_env, container):  # noqa: F811
    # While this exec runs, every process the container can see runs a
    # container binary: the joining process stays outside the pid namespace.
    script = "for p in /proc/[0-9]*; do readlink $p/exe; done"
    result = in_container(run_env, container, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"/bin/busybox"}


def test_exec_exe_is_container_binary(run_env, container):  # noqa: F811
    result = in_container(run_env, container, "sleep", "77", flags=["-d"])
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    listing = ""
    while time.monotonic() < deadline:
        listing = in_container(run_env, container, "ps", "-o", "pid,args").stdout
        if "sleep 77" in listing:
            break
        time.sleep(0.1)
    assert "sleep 77" in listing
    pid = next(int(line.split()[0]) for line in listing.splitlines() if line.endswith("sleep 77"))
    exe = in_container(run_env, container, "readlink", f"/proc/{pid}/exe").stdout.strip()
    assert exe == "/bin/busybox"


def exec_in_terminal(run_env, container, flags: str, command: str) -> subprocess.CompletedProcess:  # noqa: F811
    """Run `pyrun exec FLAGS CONTAINER COMMAND` under script(1), which gives pyrun a terminal."""
    if shutil.which("script") is None:
        pytest.skip("needs script(1) to give pyrun a terminal")
    line = f"{PYRUN} --root {run_env.root} exec {flags} {container} {command}"
    return subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True, text=True,
                          env={**os.environ, **run_env.env}, timeout=60, stdin=subprocess.DEVNULL)


def test_exec_tty_gets_pty(run_env, container):  # noqa: F811
    result = exec_in_terminal(run_env, container, "-t", "tty")
    assert result.returncode == 0, result.stdout
    assert "/dev/pts/0" in result.stdout


def test_exec_without_tty_gets_pipes_not_the_terminal(run_env, container):  # noqa: F811
    check = "for fd in 1 2; do [ -t $fd ] && echo fd$fd-is-a-terminal; done; echo checked"
    result = exec_in_terminal(run_env, container, "", f"sh -c '{check}'")
    assert result.returncode == 0, result.stdout
    assert result.stdout.split() == ["checked"]


def test_exec_interactive_stdin_is_a_pipe(run_env, container):  # noqa: F811
    result = exec_in_terminal(run_env, container, "-i", "sh -c '[ -t 0 ] && echo fd0-is-a-terminal; echo checked'")
    assert result.returncode == 0, result.stdout
    assert result.stdout.split() == ["checked"]


def test_exec_interactive_passes_input(run_env, container):  # noqa: F811
    result = pyrun(run_env, "exec", "-i", container, "sh", "-c", "read line; echo got $line", input="hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "got hello\n"


def test_exec_closed_reader_keeps_container(run_env, container):  # noqa: F811
    # `pyrun exec C yes | head -1`: yes dies of SIGPIPE, as it would writing to head itself.
    process = subprocess.Popen([PYRUN, "--root", str(run_env.root), "exec", container, "yes"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **run_env.env})
    assert process.stdout.readline() == b"y\n"
    process.stdout.close()
    assert process.wait(timeout=30) == 128 + 13
    status = pyrun(run_env, "inspect", "--format", "{{.State.Status}}", container).stdout.strip()
    assert status == "running"


def test_exec_in_stopped_container_fails(run_env, container):  # noqa: F811
    assert pyrun(run_env, "stop", "-t", "0", container).returncode == 0
    result = in_container(run_env, container, "true")
    assert result.returncode != 0
    assert "is not running" in result.stderr



def test_exec_passes_on_sigterm(run_env, container):  # noqa: F811
    command = ["pyrun", "--root", str(run_env.root), "exec", container, "sh", "-c",
               "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **run_env.env})
    assert process.stdout.readline() == "ready\n"
    process.terminate()
    output, _ = process.communicate(timeout=30)
    assert output == "got TERM\n"
    assert process.returncode == 3
