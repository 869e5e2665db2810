"""The state stays true after faults and under concurrent commands.

Faults: a monitor killed with SIGKILL, a container process killed from the
host, a pid reused by another process, and a host reboot (a record from
another boot_id).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PYRUN
from tests.integration.run_support import cleanup, detached, popen_env, pyrun, run_env  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, pytest.mark.registry]


def record_of(run_env, container_id: str) -> dict:  # noqa: F811
    return json.loads((run_env.root / "containers" / container_id / "state.json").read_text())


def rewrite_record(run_env, container_id: str, **changes) -> None:  # noqa: F811
    path = run_env.root / "containers" / container_id / "state.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        if ") Z " in stat:
            return
        time.sleep(0.05)


def mounted_under(root: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line]


def status_column(run_env, container_id: str) -> str:  # noqa: F811
    return pyrun(run_env, "ps", "-a", "--filter", f"id={container_id}", "--format", "{{.Status}}").stdout.strip()


def test_monitor_killed_container_keeps_running(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "--init", "busybox", "sleep", "600")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    wait_gone(record["monitor_pid"])

    assert Path(f"/proc/{record['pid']}").exists()
    assert status_column(run_env, container).startswith("Up ")
    executed = pyrun(run_env, "exec", container, "echo", "still here")
    assert executed.stdout == "still here\n"

    # stop's SIGTERM ended the container, so stop records 128 + 15 though no monitor saw the exit.
    assert pyrun(run_env, "stop", "-t", "5", container).returncode == 0
    assert status_column(run_env, container).startswith("Exited (143) ")
    document = json.loads(pyrun(run_env, "inspect", container).stdout)[0]
    assert document["State"]["ExitCode"] == 143
    assert document["State"]["Error"] == ""
    assert mounted_under(run_env.root / "containers" / container) == []


def test_monitor_killed_stop_timeout_is_137(run_env, cleanup):  # noqa: F811
    # As pid 1 without --init, sh ignores SIGTERM, so stop needs its SIGKILL.
    container = detached(run_env, "busybox", "sh", "-c", "while true; do sleep 1; done")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    wait_gone(record["monitor_pid"])

    assert pyrun(run_env, "stop", "-t", "1", container).returncode == 0
    assert status_column(run_env, container).startswith("Exited (137) ")
    assert pyrun(run_env, "wait", container).stdout.strip() == "137"
    assert mounted_under(run_env.root / "containers" / container) == []


def test_monitor_killed_then_kill_is_137(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "600")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    wait_gone(record["monitor_pid"])

    assert pyrun(run_env, "kill", container).returncode == 0
    assert status_column(run_env, container).startswith("Exited (137) ")
    document = json.loads(pyrun(run_env, "inspect", container).stdout)[0]
    assert document["State"]["ExitCode"] == 137
    assert mounted_under(run_env.root / "containers" / container) == []


def test_monitor_killed_then_rm_force(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "600")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    wait_gone(record["monitor_pid"])

    assert pyrun(run_env, "rm", "-f", container).returncode == 0
    wait_gone(record["pid"])
    assert not Path(f"/proc/{record['pid']}").exists() or ") Z " in Path(f"/proc/{record['pid']}/stat").read_text()
    assert not (run_env.root / "containers" / container).exists()
    assert mounted_under(run_env.root / "containers" / container) == []


def test_container_killed_from_host_shows_code(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "600")
    os.kill(record_of(run_env, container)["pid"], signal.SIGKILL)
    assert pyrun(run_env, "wait", container).stdout.strip() == "137"
    assert status_column(run_env, container).startswith("Exited (137) ")


def test_reused_pid_is_not_the_container(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "600")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    os.kill(record["pid"], signal.SIGKILL)
    wait_gone(record["pid"])
    # Another process now has a pid the record names, with another start time.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        rewrite_record(run_env, container, pid=stranger.pid)
        assert status_column(run_env, container).startswith("Exited (unknown) ")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_record_from_before_reboot_is_exited(run_env, cleanup):  # noqa: F811
    container = detached(run_env, "busybox", "sleep", "600")
    record = record_of(run_env, container)
    os.kill(record["monitor_pid"], signal.SIGKILL)
    wait_gone(record["monitor_pid"])
    # The pid and its start time still match a live process, but the boot differs.
    rewrite_record(run_env, container, boot_id="00000000-0000-0000-0000-000000000000")
    assert status_column(run_env, container).startswith("Exited (unknown) ")
    assert pyrun(run_env, "rm", container).returncode == 0


def test_same_name_at_once_one_wins(run_env, cleanup):  # noqa: F811
    def run_named(_index: int) -> subprocess.CompletedProcess:
        return pyrun(run_env, "run", "-d", "--network", "none", "--name", "only-one", "busybox", "sleep", "60")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run_named, range(6)))
    winners = [result for result in results if result.returncode == 0]
    assert len(winners) == 1
    for result in results:
        if result.returncode != 0:
            assert "already in use" in result.stderr
    assert len(pyrun(run_env, "ps", "-a", "-q").stdout.split()) == 1


def test_concurrent_commands_leave_nothing(run_env, cleanup):  # noqa: F811
    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(lambda _: detached(run_env, "busybox", "sleep", "600"), range(6)))
        listings = list(pool.map(lambda _: pyrun(run_env, "ps", "-q").returncode, range(4)))
    assert listings == [0, 0, 0, 0]
    assert sorted(pyrun(run_env, "ps", "-q", "--no-trunc").stdout.split()) == sorted(ids)

    # stop and rm -f of the same containers at the same time.
    with ThreadPoolExecutor(max_workers=8) as pool:
        stops = [pool.submit(pyrun, run_env, "stop", "-t", "1", container) for container in ids]
        removals = [pool.submit(pyrun, run_env, "rm", "-f", container) for container in ids]
        stop_results = [future.result() for future in stops]
        removal_results = [future.result() for future in removals]
    for result in removal_results:
        assert result.returncode == 0, result.stderr
    for result in stop_results:
        assert result.returncode == 0 or "no such container" in result.stderr, result.stderr
    assert pyrun(run_env, "ps", "-a", "-q").stdout == ""
    assert list((run_env.root / "containers").iterdir()) == []
    assert mounted_under(run_env.root / "containers") == []


def interrupt_run_detached(run_env, when) -> subprocess.CompletedProcess:  # noqa: F811
    """Start `run -d busybox sleep 100`, send SIGINT to pyrun once `when()` is true, and return the result."""
    command = [PYRUN, "--root", str(run_env.root), "run", "-d", "--network", "none", "busybox", "sleep", "100"]
    process = subprocess.Popen(command, env=popen_env(run_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 30
    while not when() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def container_dirs(run_env) -> list[str]:  # noqa: F811
    directory = run_env.root / "containers"
    return sorted(os.listdir(directory)) if directory.exists() else []


def assert_interrupted_leaves_nothing(run_env, result, before: list[str]) -> None:  # noqa: F811
    """Check that the interrupted run exited 130 and left no container beside those in `before`."""
    assert result.returncode == 130, result.stderr
    assert "pyrun: interrupted" in result.stderr
    assert result.stdout == ""
    new = [directory for directory in container_dirs(run_env) if directory not in before]
    assert new == []
    assert [line for line in mounted_under(run_env.root / "containers") if not any(old in line for old in before)] == []


def assert_interrupt_outcome_consistent(run_env, result, before: list[str]) -> None:  # noqa: F811
    """Check an interrupted `run -d` that may have finished first: either way nothing is half done.

    When pyrun printed the ID before the SIGINT arrived, the run had
    finished: the container runs, and pyrun exited 0, or died of the
    signal while the interpreter was shutting down after main() returned.
    Or the interrupt came in the short gap after the ID and the container
    was removed (exit 130). Without an ID, the interrupted run left nothing.
    """
    if not result.stdout:
        assert_interrupted_leaves_nothing(run_env, result, before)
        return
    container_id = result.stdout.strip()
    if result.returncode in (0, -signal.SIGINT):
        assert record_of(run_env, container_id)["status"] == "running"
        return
    assert result.returncode == 130, result.stderr
    assert container_id not in container_dirs(run_env)


def test_run_detached_interrupted_after_create(run_env, cleanup):  # noqa: F811
    # SIGINT as soon as the container's directory exists: during create or start.
    before = container_dirs(run_env)
    result = interrupt_run_detached(run_env, lambda: container_dirs(run_env) != before)
    assert_interrupted_leaves_nothing(run_env, result, before)


def test_run_detached_interrupted_when_running(run_env, cleanup):  # noqa: F811
    # SIGINT once pid 1 runs, while pyrun waits for the monitor's report or is about to print the ID.
    before = container_dirs(run_env)

    def running() -> bool:
        return any(
            record_of(run_env, container_id).get("status") == "running"
            for container_id in container_dirs(run_env)
            if container_id not in before and (run_env.root / "containers" / container_id / "state.json").exists()
        )

    result = interrupt_run_detached(run_env, running)
    assert_interrupt_outcome_consistent(run_env, result, before)


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, 0.2, 0.3, 0.4])
def test_run_detached_interrupted_after_delay(run_env, cleanup, delay):  # noqa: F811
    before = container_dirs(run_env)
    started = time.monotonic()
    result = interrupt_run_detached(run_env, lambda: time.monotonic() - started >= delay)
    assert_interrupt_outcome_consistent(run_env, result, before)


def test_start_after_killed_start_reuses_nothing_stale(run_env, cleanup):  # noqa: F811
    # A pyrun killed (SIGKILL) during a start leaves the container's cgroup
    # behind, which made every later start fail with "already exists".
    from runtime import cgroups

    created = pyrun(run_env, "create", "--network", "none", "busybox", "sleep", "60")
    assert created.returncode == 0, created.stderr
    container_id = created.stdout.strip()
    config = json.loads((run_env.root / "containers" / container_id / "config.json").read_text())
    cgroups.open_cgroup(config["linux"]["cgroupsPath"]).create()
    started = pyrun(run_env, "start", container_id)
    assert started.returncode == 0, started.stderr
    assert status_column(run_env, container_id).startswith("Up")
