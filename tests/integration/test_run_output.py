"""`pyrun run` in the foreground: stdout and stderr are pipes without -t, and the output is logged.

Docker never gives a container without -t the terminal that `docker run`
was typed in, and `docker logs` shows a foreground run's output afterwards.
"""

import json
import os
import subprocess

import pytest

from tests.conftest import run_pyrun
from tests.integration.run_support import popen_env, pyrun_command, pyrun_run, run_env, run_in_pty  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]

CHECK_TERMINALS = "for fd in 0 1 2; do [ -t $fd ] && echo fd$fd-is-a-terminal; done; echo checked"


def logs(run_env, name, *flags):
    return run_pyrun("logs", *flags, name, root=run_env.root, env=run_env.env, check=True)


def remove(run_env, name):
    run_pyrun("rm", "-f", name, root=run_env.root, env=run_env.env, check=True)


def test_no_terminal_reaches_the_container_without_tty(run_env):
    code, output = run_in_pty(run_env, "busybox", "sh", "-c", CHECK_TERMINALS)
    assert code == 0
    assert output.split() == ["checked"]


def test_tty_still_gives_a_terminal(run_env):
    code, output = run_in_pty(run_env, "-t", "busybox", "sh", "-c", CHECK_TERMINALS)
    assert code == 0
    assert output.split() == ["fd0-is-a-terminal", "fd1-is-a-terminal", "fd2-is-a-terminal", "checked"]


def test_interactive_stdin_is_a_pipe(run_env):
    # -i passes pyrun's stdin on through a pipe, as Docker does, never the terminal itself.
    code, output = run_in_pty(run_env, "-i", "busybox", "sh", "-c", CHECK_TERMINALS)
    assert code == 0
    assert output.split() == ["checked"]


def test_interactive_stdin_passes_all_input(run_env):
    data = os.urandom(3 * 1024 * 1024)
    result = pyrun_run(run_env, "-i", "busybox", "sh", "-c", "wc -c; md5sum </dev/null >/dev/null", input=data.hex())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(data) * 2)]


def test_unread_stdin_never_blocks_output(run_env):
    # The container reads none of its stdin and writes 2 MB: pyrun keeps
    # copying the output while its own stdin waits, as `yes` keeps it full.
    command = pyrun_command(run_env, "-i", "busybox", "sh", "-c", "head -c 2000000 /dev/zero | wc -c")
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(command, stdin=yes.stdout, capture_output=True, text=True, env=popen_env(run_env),
                                timeout=60)
    finally:
        yes.kill()
        yes.wait()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2000000"]


def test_streams_stay_apart(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "to-out\n"
    assert result.stderr == "to-err\n"


def test_foreground_output_is_logged(run_env):
    name = "foreground-logged"
    result = pyrun_run(run_env, "--name", name, "busybox", "sh", "-c", "echo first; echo oops >&2; printf last",
                       keep=True)
    try:
        assert result.returncode == 0, result.stderr
        logged = logs(run_env, name)
        assert logged.stdout == "first\nlast"
        assert logged.stderr == "oops\n"
        log_file = run_env.root / "containers" / container_id(run_env, name) / f"{container_id(run_env, name)}-json.log"
        entries = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert [(entry["stream"], entry["log"]) for entry in entries] == [
            ("stdout", "first\n"), ("stderr", "oops\n"), ("stdout", "last")]
    finally:
        remove(run_env, name)


def test_kept_container_listed_with_command(run_env):
    name = "foreground-listed"
    assert pyrun_run(run_env, "--name", name, "busybox", "echo", "listed", keep=True).returncode == 0
    try:
        listing = run_pyrun("ps", "-a", "--filter", f"name={name}", "--format", "{{.Image}} {{.Command}} {{.Status}}",
                            root=run_env.root, env=run_env.env, check=True).stdout
        assert listing.startswith('busybox "echo listed" Exited (0) ')
    finally:
        remove(run_env, name)


def test_foreground_terminal_output_is_logged(run_env):
    name = "foreground-tty-logged"
    code, output = run_in_pty(run_env, "-t", "--name", name, "busybox", "echo", "through-the-pty", keep=True)
    try:
        assert code == 0
        assert "through-the-pty" in output
        assert logs(run_env, name).stdout.strip() == "through-the-pty"
    finally:
        remove(run_env, name)


def test_rm_run_leaves_no_log_behind(run_env):
    before = set((run_env.root / "containers").iterdir())
    assert pyrun_run(run_env, "busybox", "echo", "gone").stdout == "gone\n"
    assert set((run_env.root / "containers").iterdir()) == before


@pytest.mark.parametrize("closed", [1, 2])
def test_closed_stream_keeps_exit_code_and_log(run_env, closed):
    # `pyrun run ... >&-` or `2>&-`: the container's output to the closed
    # stream is dropped, its exit code kept, and its log stays JSON.
    name = f"closed-fd{closed}"
    process = subprocess.run(pyrun_command(run_env, "--name", name, "busybox", "sh", "-c",
                                           "echo to-out; echo to-err >&2; exit 4", keep=True),
                             capture_output=True, env=popen_env(run_env), preexec_fn=lambda: os.close(closed))
    try:
        assert process.returncode == 4
        assert b"Traceback" not in process.stderr + process.stdout
        logged = logs(run_env, name)
        assert (logged.stdout, logged.stderr) == ("to-out\n", "to-err\n")
    finally:
        remove(run_env, name)


def test_full_stdout_keeps_exit_code(run_env):
    with open("/dev/full", "w") as full:
        result = subprocess.run(pyrun_command(run_env, "busybox", "sh", "-c", "yes | head -c 1000000; exit 3"),
                                stdout=full, stderr=subprocess.PIPE, text=True, env=popen_env(run_env))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "cannot write the container's output to pyrun's stdout (No space left on device)" in result.stderr


def test_closed_stdout_ends_the_container(run_env):
    # `pyrun run busybox yes | head -1`: once head has gone, yes must stop too.
    process = subprocess.Popen(pyrun_command(run_env, "busybox", "yes"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=popen_env(run_env))
    assert process.stdout.readline() == b"y\n"
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=30) == 1  # yes, as pid 1, ignores SIGPIPE and fails with EPIPE
    assert b"Broken pipe" in stderr


def container_id(run_env, name):
    return run_pyrun("inspect", "--format", "{{.Id}}", name, root=run_env.root, env=run_env.env,
                     check=True).stdout.strip()
