"""`pyrun --explain` on real containers: every call at the seam is narrated, in order.

The seam's own trace (`--log-level trace`, one ``trace: CALL`` line per call
from `syscalls.trace_to_stderr`) is the record the narration is compared
with. Both listeners see each call, the trace first because it is
registered first, and both write to the same stderr, so each narration
line follows the trace line of its call. Lines of the parent and of the
container's child may interleave, which is why the check allows a few
calls in flight at once rather than strict alternation.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from runtime.cgroups import detect
from tests.conftest import PYRUN, run_pyrun

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.network, pytest.mark.slow]

# A narrated call line: four spaces, the call, then its manual page.
CALL_LINE = re.compile(r"^    (\S.*?)    \[[^\]]+\]$")
# How many calls may be traced but not yet narrated at one time: one per
# process that narrates (pyrun, the container's child and its own child).
MAX_IN_FLIGHT = 3


def call_key(rendered: str) -> str:
    """Return what must match between trace and narration for one call.

    nft scripts are narrated one command per line, with the call line
    counting them, so only the call name before the arguments is compared.
    """
    if rendered.startswith("nft "):
        return rendered.split("(", 1)[0]
    return rendered


def is_child_copy(key: str) -> bool:
    """Return True for the child's copy of a fork or clone3: the child returns from it with 0."""
    return key.startswith(("fork(", "clone3(")) and key.endswith(" = 0")


def match_trace_and_narration(stderr: str) -> tuple[list[str], list[str]]:
    """Pair each narrated call with a traced one; return (narrated, left unmatched).

    Fails the test when a narrated call was never traced, or when more than
    MAX_IN_FLIGHT traced calls wait for their narration at once.
    """
    in_flight: list[str] = []
    narrated: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("trace: "):
            in_flight.append(call_key(line[len("trace: "):]))
            # The child's copy of each fork or clone3 is never narrated (see the test), so it does not count.
            waiting = [key for key in in_flight if not is_child_copy(key)]
            assert len(waiting) <= MAX_IN_FLIGHT, f"calls traced but never narrated: {waiting}"
            continue
        match = CALL_LINE.match(line)
        if not match or match.group(1).startswith("registry "):
            continue
        key = call_key(match.group(1))
        assert key in in_flight, f"narrated without a traced call: {key}"
        in_flight.remove(key)
        narrated.append(key)
    return narrated, in_flight


@pytest.fixture
def pulled_env(pyrun_env):
    """pyrun's environment with busybox already pulled, so runs narrate no registry steps."""
    run_pyrun("pull", "busybox", env=pyrun_env, check=True)
    return pyrun_env


def test_every_call_narrated_in_order(pulled_env, test_network):
    # In the test network namespace: the bridge, NAT and -p must not touch the host's network.
    result = test_network.pyrun("--log-level", "trace", "--explain", "run", "--rm", "--memory", "64m",
                                "-p", "127.0.0.1:8089:80", "busybox", "echo", "hi", env=pulled_env)
    assert result.returncode == 0, result.stderr[-3000:]
    narrated, left = match_trace_and_narration(result.stderr)

    # fork(2) and clone3(2) return in two processes, the child's pid in the
    # parent and 0 in the child. The trace lists both, the narration only the
    # parent's, so the children's copies are the only calls left unmatched.
    forks = [key for key in narrated if key.startswith(("fork(", "clone3("))]
    assert forks
    assert all(not key.endswith(" = 0") for key in forks)
    assert len(left) == len(forks)
    assert all(is_child_copy(key) for key in left)
    if detect.detect_layout().unified:
        assert any(key.startswith("clone3(") for key in narrated), "pid 1's parent was not cloned into its cgroup"

    names = [key.split("(", 1)[0] for key in narrated]
    for expected in ("unshare", "mount", "pivot_root", "umount2", "sethostname", "write_cgroup_file",
                     "netlink RTM_NEWLINK", "netlink RTM_NEWADDR", "netlink RTM_NEWROUTE", "nft add rule",
                     "capbset_drop", "capset", "execve"):
        assert expected in names, f"{expected} is missing from the narration"
    assert names.index("unshare") < names.index("pivot_root") < names.index("execve")


def test_memory_limit_narrated_with_value(pulled_env):
    result = run_pyrun("--explain", "run", "--rm", "--network", "none", "--memory", "32m",
                       "busybox", "true", env=pulled_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Limit the container's memory to 33554432 bytes" in result.stderr
    assert re.search(r"write_cgroup_file\(path='\S+/memory\.(max|limit_in_bytes)', value='33554432'\)",
                     result.stderr)


def test_stdout_unchanged_by_explain(pulled_env):
    command = ["run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2"]
    plain = run_pyrun(*command, env=pulled_env)
    explained = run_pyrun("--explain", *command, env=pulled_env)
    assert plain.returncode == 0
    assert explained.returncode == 0
    assert explained.stdout == plain.stdout == "out\n"
    assert "err\n" in explained.stderr
    assert "Run the container's command /bin/sh" in explained.stderr


@pytest.mark.parametrize("flag", ["--explain", "--log-level=trace"])
def test_closed_stderr_leaves_the_run_intact(pulled_env, tmp_path, flag):
    # As `pyrun --explain run ... 2>&1 >out | head -1` in class: once head
    # exits, narration fails with EPIPE, and the container must still run.
    output = tmp_path / "out"
    with open(output, "w") as stdout:
        process = subprocess.Popen(
            [PYRUN, flag, "run", "--rm", "--network", "none", "busybox", "echo", "hi"],
            stdout=stdout, stderr=subprocess.PIPE, env={**os.environ, **pulled_env})
        assert process.stderr.readline()
        process.stderr.close()
        assert process.wait(timeout=60) == 0
    assert output.read_text() == "hi\n"


def test_nothing_narrated_after_execve(pulled_env):
    # One pipe for stdout and stderr, so the order of what the student sees
    # is kept: the container's output comes after the execve step, and the
    # child narrates nothing after it.
    result = subprocess.run(
        [PYRUN, "--explain", "run", "--rm", "--network", "none", "busybox", "echo", "container output"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, **pulled_env), timeout=120,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout[-3000:]
    execve = next(i for i, line in enumerate(lines) if line.startswith("[child] Run the container's command"))
    output = lines.index("container output")
    assert execve < output
    assert not any(line.startswith("[child] ") for line in lines[execve + 1:])


def test_failed_exec_narrated(pulled_env):
    result = run_pyrun("--explain", "run", "--rm", "--network", "none", "busybox", "/no/such/command",
                       env=pulled_env)
    # NOTE: the seam notifies listeners of execve(2) only before the call, so
    # its failure shows in pyrun's error message, not as a narrated step.
    assert result.returncode == 127
    assert "[child] Run the container's command /no/such/command: unless execve fails" in result.stderr
    assert "execve(path=/no/such/command" in result.stderr
    assert "No such file or directory" in result.stderr


def test_pull_narrates_registry_requests(pyrun_env):
    result = run_pyrun("--explain", "pull", "busybox", env=pyrun_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Download the manifest or index at http://127.0.0.1:" in result.stderr
    assert "Download the blob at http://127.0.0.1:" in result.stderr
    assert "    registry request: method=GET, url=http://127.0.0.1:" in result.stderr


def test_plain_text_when_piped(pulled_env):
    result = run_pyrun("--explain", "run", "--rm", "--network", "none", "busybox", "true", env=pulled_env)
    assert "\033[" not in result.stderr


def test_colour_on_terminal(pulled_env):
    # script(1) gives pyrun a terminal as stdout and stderr.
    command = f"{PYRUN} --explain run --rm --network none busybox true"
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                            env=dict(os.environ, **pulled_env), timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "\033[1mStack the image's layers" in result.stdout


def test_detached_setup_narrated_before_id(pulled_env):
    result = subprocess.run(
        [PYRUN, "--explain", "run", "-d", "--rm", "--network", "none", "busybox", "sleep", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, **pulled_env),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    id_line = next(i for i, line in enumerate(lines) if re.fullmatch(r"[0-9a-f]{64}", line))
    execve = next(i for i, line in enumerate(lines) if line.startswith("[child] Run the container's command"))
    assert execve < id_line
