"""Detached busybox containers: run -d, create, start, ps, logs, stop, kill, restart,
wait, attach, inspect, rename, rm and container prune, with Docker's flags and output."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.conftest import PYRUN
from tests.integration.run_support import cleanup, detached, popen_env, pyrun, run_env, wait_for  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, pytest.mark.registry]


def state_of(run_env, container: str) -> str:  # noqa: F811
    return pyrun(run_env, "inspect", "-f", "{{.State.Status}}", container).stdout.strip()


def test_run_detached_prints_id(run_env, cleanup):  # noqa: F811
    started = time.monotonic()
    container_id = detached(run_env, "busybox", "sleep", "60")
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    assert time.monotonic() - started < 30
    assert state_of(run_env, container_id) == "running"


def test_ps_columns_and_status(run_env, cleanup):  # noqa: F811
    running = detached(run_env, "--name", "ps-running", "busybox", "sleep", "60")
    exited = detached(run_env, "--name", "ps-exited", "busybox", "sh", "-c", "exit 3")
    assert wait_for(lambda: state_of(run_env, exited) == "exited")

    listing = pyrun(run_env, "ps").stdout.splitlines()
    assert listing[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(listing) == 2
    assert listing[1].startswith(running[:12] + "   busybox")
    assert re.search(r'"sleep 60"\s+\S.* ago\s+Up (Less than a second|\d+ seconds?)\s+ps-running$', listing[1])

    everything = pyrun(run_env, "ps", "-a").stdout
    assert re.search(r"Exited \(3\) (Less than a second|\d+ seconds?) ago\s+ps-exited", everything)
    assert pyrun(run_env, "ps", "-q").stdout.split() == [running[:12]]
    assert pyrun(run_env, "ps", "-a", "-q", "--no-trunc").stdout.split() == [exited, running]
    assert pyrun(run_env, "ps", "-a", "--filter", "status=exited", "-q").stdout.split() == [exited[:12]]
    assert pyrun(run_env, "ps", "-a", "--filter", "name=ps-run", "-q").stdout.split() == [running[:12]]
    assert pyrun(run_env, "ps", "-a", "--filter", "exited=3", "-q").stdout.split() == [exited[:12]]
    formatted = pyrun(run_env, "ps", "--format", "{{.Names}}\\t{{.Status}}").stdout
    assert formatted.startswith("ps-running\tUp ")
    table = pyrun(run_env, "ps", "--format", "table {{.ID}}\\t{{.Names}}").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"]
    assert pyrun(run_env, "ps", "--format", "table").stdout.splitlines()[0].split()[:2] == ["CONTAINER", "ID"]
    as_json = json.loads(pyrun(run_env, "ps", "--format", "json").stdout.splitlines()[0])
    assert as_json["Names"] == "ps-running"


def test_ps_last_latest_and_size(run_env, cleanup):  # noqa: F811
    oldest = detached(run_env, "--name", "ps-oldest", "busybox", "sh", "-c", "exit 0")
    middle = detached(run_env, "--name", "ps-middle", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /zeros; sleep 60")
    newest = detached(run_env, "--name", "ps-newest", "busybox", "sh", "-c", "exit 1")
    assert wait_for(lambda: state_of(run_env, newest) == "exited")
    assert wait_for(lambda: pyrun(run_env, "exec", middle, "test", "-s", "/zeros").returncode == 0)
    # -n and -l count containers in any state, newest first.
    assert pyrun(run_env, "ps", "-q", "-n", "2", "--no-trunc").stdout.split() == [newest, middle]
    assert pyrun(run_env, "ps", "-q", "-l", "--no-trunc").stdout.split() == [newest]
    assert oldest in pyrun(run_env, "ps", "-q", "-n", "0", "--no-trunc").stdout.split()
    sized = pyrun(run_env, "ps", "-s", "--filter", "name=ps-middle").stdout.splitlines()
    assert sized[0].split()[-1] == "SIZE"
    # 5000 bytes of the container's own, and busybox's 2MB or so under it.
    assert re.search(r"ps-middle\s+5kB \(virtual [12](\.\d+)?MB\)$", sized[1]), sized[1]


def test_pyrun_messages_stay_out_of_the_log(run_env, cleanup):  # noqa: F811
    result = pyrun(run_env, "--log-level", "debug", "run", "-d", "--network", "none", "--name", "quiet-log",
                   "busybox", "sh", "-c", "echo from-container; echo also-container >&2")
    assert result.returncode == 0, result.stderr
    assert "DEBUG: " in result.stderr  # the start helper's messages reach the caller
    assert wait_for(lambda: state_of(run_env, "quiet-log") == "exited")
    logged = pyrun(run_env, "logs", "quiet-log")
    assert (logged.stdout, logged.stderr) == ("from-container\n", "also-container\n")


def test_logs_follow_busy_container_once(run_env, cleanup):  # noqa: F811
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; sleep 1"
    container = detached(run_env, "--name", "busy-log", "busybox", "sh", "-c", script)
    followed = pyrun(run_env, "logs", "-f", container).stdout.split()
    assert followed == [f"line{index}" for index in range(3000)]


def test_ps_rejects_unknown_filter(run_env):  # noqa: F811
    result = pyrun(run_env, "ps", "--filter", "colour=blue")
    assert result.returncode != 0
    assert "invalid filter 'colour=blue'" in result.stderr


def test_logs_tail_timestamps_since(run_env, cleanup):  # noqa: F811
    # The pause keeps "three" the last entry: the monitor reads stdout and stderr separately.
    container = detached(run_env, "busybox", "sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three")
    assert pyrun(run_env, "wait", container).stdout.strip() == "0"

    logs = pyrun(run_env, "logs", container)
    assert logs.stdout == "one\nthree\n"
    assert logs.stderr == "two\n"
    last = pyrun(run_env, "logs", "--tail", "1", container)
    assert last.stdout == "three\n"
    assert last.stderr == ""
    stamped = pyrun(run_env, "logs", "-t", container).stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z one", stamped[0])
    assert pyrun(run_env, "logs", "--since", "2999-01-01T00:00:00Z", container).stdout == ""
    assert pyrun(run_env, "logs", "--since", "10m", container).stdout == "one\nthree\n"
    raw = (run_env.root / "containers" / container / f"{container}-json.log").read_text().splitlines()
    assert set(json.loads(raw[0])) == {"log", "stream", "time"}


def test_logs_follow_until_exit(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sh", "-c", "echo first; sleep 1; echo second")
    result = pyrun(run_env, "logs", "-f", container, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "first\nsecond\n"


def test_logs_into_a_closed_pipe_ends_quietly(run_env, cleanup):  # noqa: F811
    # As `pyrun logs C | head -2` once head has exited: no traceback, and
    # the status of a program that SIGPIPE ended.
    container = detached(run_env, "busybox", "seq", "1", "50000")
    assert wait_for(lambda: state_of(run_env, container) == "exited")
    reader = subprocess.Popen([PYRUN, "--root", str(run_env.root), "logs", container],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=popen_env(run_env))
    assert reader.stdout.readline() == b"1\n"
    reader.stdout.close()
    stderr = reader.stderr.read().decode()
    assert reader.wait(timeout=30) == 141
    assert stderr == ""


def test_logs_rotate_at_max_size(run_env, cleanup):  # noqa: F811
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"
    container = detached(run_env, "--log-opt", "max-size=4k", "--log-opt", "max-file=3", "busybox", "sh", "-c", script)
    assert pyrun(run_env, "wait", container).stdout.strip() == "0"
    directory = run_env.root / "containers" / container
    files = sorted(path.name for path in directory.glob(f"{container}-json.log*"))
    assert files == [f"{container}-json.log", f"{container}-json.log.1", f"{container}-json.log.2"]
    for path in directory.glob(f"{container}-json.log*"):
        assert path.stat().st_size <= 4096
    lines = pyrun(run_env, "logs", container).stdout.splitlines()
    assert lines[-1] == "line-399"
    assert lines == [f"line-{index}" for index in range(400 - len(lines), 400)]


def test_log_opt_rejects_unknown_key(run_env):  # noqa: F811
    result = pyrun(run_env, "run", "-d", "--log-opt", "compress=true", "busybox", "true")
    assert result.returncode != 0
    assert "compress" in result.stderr


def test_stop_uses_signal_then_kill(run_env, cleanup):  # noqa: F811
    # A shell as pid 1 ignores SIGTERM, so stop falls back to SIGKILL after -t.
    stubborn = detached(run_env, "busybox", "sh", "-c", "sleep 60")
    started = time.monotonic()
    assert pyrun(run_env, "stop", "-t", "1", stubborn).returncode == 0
    assert 1 <= time.monotonic() - started < 15
    assert pyrun(run_env, "inspect", "-f", "{{.State.ExitCode}}", stubborn).stdout.strip() == "137"

    # With a handler, SIGTERM ends it at once, with the handler's exit code.
    polite = detached(run_env, "busybox", "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done")
    assert pyrun(run_env, "stop", polite).returncode == 0
    assert pyrun(run_env, "inspect", "-f", "{{.State.ExitCode}}", polite).stdout.strip() == "42"


def test_stop_with_negative_timeout_waits(run_env, cleanup):  # noqa: F811
    # Docker's -t -1: no SIGKILL however long the container takes.
    stubborn = detached(run_env, "busybox", "sh", "-c", "sleep 60")
    command = [PYRUN, "--root", str(run_env.root), "stop", "-t", "-1", stubborn]
    stopping = subprocess.Popen(command, env=popen_env(run_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)
        assert stopping.poll() is None
        assert state_of(run_env, stubborn) == "running"
    finally:
        pyrun(run_env, "kill", stubborn)
        stopping.wait(timeout=30)
    assert stopping.returncode == 0


def test_kill_with_signal_and_wait(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    waiter = subprocess.Popen([PYRUN, "--root", str(run_env.root), "wait", container],
                              stdout=subprocess.PIPE, text=True, env=popen_env(run_env))
    time.sleep(0.5)
    assert pyrun(run_env, "kill", "-s", "USR1", container).returncode == 0
    assert waiter.communicate(timeout=30)[0].strip() == "7"
    not_running = pyrun(run_env, "kill", container)
    assert not_running.returncode != 0
    assert "is not running" in not_running.stderr


def test_restart_gives_new_pid(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "--init", "busybox", "sleep", "60")
    first_pid = pyrun(run_env, "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    assert pyrun(run_env, "restart", "-t", "1", container).returncode == 0
    second_pid = pyrun(run_env, "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    assert state_of(run_env, container) == "running"
    assert second_pid != first_pid


def test_create_then_start(run_env, cleanup):  # noqa: F811
    created = pyrun(run_env, "create", "--network", "none", "--name", "made", "busybox", "echo", "hello")
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()
    assert state_of(run_env, container) == "created"
    assert "Created" in pyrun(run_env, "ps", "-a").stdout

    attached = pyrun(run_env, "start", "-a", "made")
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == "hello\n"
    assert state_of(run_env, container) == "exited"
    # A second start of the exited container runs the command again.
    assert pyrun(run_env, "start", "made").returncode == 0
    assert pyrun(run_env, "wait", "made").stdout.strip() == "0"
    assert pyrun(run_env, "logs", "made").stdout == "hello\nhello\n"


def test_container_verb_spellings(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "60")
    assert container[:12] in pyrun(run_env, "container", "ls").stdout
    assert container[:12] in pyrun(run_env, "container", "list").stdout
    assert pyrun(run_env, "container", "port", container).returncode == 0
    assert pyrun(run_env, "container", "stop", "-t", "0", container).returncode == 0
    pruned = pyrun(run_env, "container", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert container in pruned.stdout
    assert pyrun(run_env, "ps", "-a", "-q").stdout == ""


def test_container_prune_reports_reclaimed_space(run_env, cleanup):  # noqa: F811
    # 300 kB written in the container's writable layer: Docker counts it.
    container = detached(run_env, "busybox", "dd", "if=/dev/zero", "of=/blob", "bs=1000", "count=300")
    assert pyrun(run_env, "wait", container).stdout.strip() == "0"
    pruned = pyrun(run_env, "container", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.endswith("Total reclaimed space: 300kB\n")


def test_rm_running_needs_force(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "--name", "keep-me", "busybox", "sleep", "60")
    refused = pyrun(run_env, "rm", "keep-me")
    assert refused.returncode != 0
    assert "cannot remove container 'keep-me': it is running" in refused.stderr
    assert state_of(run_env, container) == "running"
    assert pyrun(run_env, "rm", "-f", "keep-me").returncode == 0
    assert not (run_env.root / "containers" / container).exists()
    assert pyrun(run_env, "inspect", "keep-me").returncode != 0


def test_run_rm_removes_after_exit(run_env):  # noqa: F811
    container = detached(run_env, "--rm", "busybox", "true")
    assert wait_for(lambda: not (run_env.root / "containers" / container).exists())


def test_rename_and_addressing(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "--name", "old-name", "busybox", "sleep", "60")
    assert pyrun(run_env, "rename", "old-name", "new-name").returncode == 0
    assert pyrun(run_env, "inspect", "-f", "{{.Name}}", container[:5]).stdout.strip() == "/new-name"
    assert pyrun(run_env, "inspect", "old-name").returncode != 0
    taken = detached(run_env, "--name", "taken", "busybox", "sleep", "60")
    clash = pyrun(run_env, "rename", "new-name", "taken")
    assert clash.returncode != 0
    assert "already in use" in clash.stderr
    assert taken


def test_ambiguous_prefix_lists_matches(run_env, cleanup):  # noqa: F811
    ids = [detached(run_env, "busybox", "true") for _ in range(20)]
    by_first = {}
    for container_id in ids:
        by_first.setdefault(container_id[0], []).append(container_id)
    prefix, matches = next((first, group) for first, group in by_first.items() if len(group) > 1)
    result = pyrun(run_env, "inspect", prefix)
    assert result.returncode != 0
    assert f"container ID prefix {prefix!r} is ambiguous" in result.stderr
    for match in matches:
        assert match[:12] in result.stderr


def test_inspect_is_docker_shaped(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "--name", "shape", "-e", "COLOUR=blue", "busybox", "sleep", "60")
    document = json.loads(pyrun(run_env, "inspect", "shape").stdout)[0]
    assert document["Id"] == container
    assert document["Name"] == "/shape"
    assert document["Path"] == "sleep"
    assert document["Args"] == ["60"]
    state = document["State"]
    assert set(state) == {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                          "Error", "StartedAt", "FinishedAt"}
    assert state["Running"] is True
    assert state["Pid"] > 0
    assert document["Image"].startswith("sha256:")
    assert "COLOUR=blue" in document["Config"]["Env"]
    assert document["HostConfig"]["NetworkMode"] == "none"
    assert document["NetworkSettings"]["Ports"] == {}
    assert isinstance(document["Mounts"], list)


def test_unsupported_flag_is_named(run_env):  # noqa: F811
    result = pyrun(run_env, "run", "-d", "--restart", "always", "busybox", "true")
    assert result.returncode != 0
    assert "--restart is not supported by pyrun" in result.stderr
    assert pyrun(run_env, "ps", "-a", "-q").stdout == ""


def test_rmi_of_image_in_use_needs_force(run_env, cleanup):  # noqa: F811
    detached(run_env, "busybox", "sleep", "60")
    refused = pyrun(run_env, "rmi", "busybox")
    assert refused.returncode != 0
    assert pyrun(run_env, "images", "-q").stdout.strip() != ""


def test_oom_killed_is_recorded(run_env, cleanup):  # noqa: F811
    # `tail -c` keeps 90 MiB in memory, far above the 16 MiB limit.
    container = detached(run_env, "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
                         "head -c 100m /dev/zero | tail -c 90m > /dev/null")
    assert pyrun(run_env, "wait", container).stdout.strip() == "137"
    assert pyrun(run_env, "inspect", "-f", "{{.State.OOMKilled}}", container).stdout.strip() == "true"


def test_missing_command_exit_code(run_env, cleanup):  # noqa: F811
    result = pyrun(run_env, "run", "-d", "--network", "none", "--name", "broken", "busybox", "no-such-command")
    assert result.returncode == 127
    assert "no-such-command" in result.stderr
    assert "executable file not found" in result.stderr
    assert pyrun(run_env, "inspect", "-f", "{{.State.ExitCode}}", "broken").stdout.strip() == "127"


def test_inspect_falls_back_to_images(run_env, cleanup):  # noqa: F811
    # As `docker inspect`: a name that no container has is looked up among the images.
    image = pyrun(run_env, "inspect", "-f", "{{.Os}} {{json .Config.Cmd}}", "busybox")
    assert image.returncode == 0, image.stderr
    assert image.stdout == 'linux ["sh"]\n'
    container = detached(run_env, "--name", "busybox", "busybox", "sleep", "60")
    preferred = pyrun(run_env, "inspect", "-f", "{{.Id}}", "busybox")
    assert preferred.stdout.strip() == container
    as_image = pyrun(run_env, "inspect", "--type", "image", "-f", "{{.Os}}", "busybox")
    assert as_image.stdout == "linux\n"
    image_command = pyrun(run_env, "image", "inspect", "-f", "{{.Os}}", "busybox")
    assert image_command.stdout == "linux\n"


def test_inspect_type_container_and_missing_object(run_env):
    only_containers = pyrun(run_env, "inspect", "--type", "container", "busybox")
    assert only_containers.returncode == 1
    assert "no such container: busybox" in only_containers.stderr
    missing = pyrun(run_env, "inspect", "no-such-thing")
    assert missing.returncode == 1
    assert "no such object: no-such-thing" in missing.stderr
