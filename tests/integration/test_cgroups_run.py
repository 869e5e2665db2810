"""Resource limits of real containers started by `pyrun run`.

A limit is checked from inside the container where the container can see
it, and otherwise in the container's cgroup on the host while it runs.

Each container runs under its own --cgroup-parent (pyrun-test-<random>),
and the fixture checks that `pyrun run --rm` left no cgroup behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runtime import cgroups, state
from runtime.cgroups import detect
from tests.conftest import PYRUN, run_pyrun
from tests.integration.test_cgroups_manager import cgroup_parent  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow, pytest.mark.cgroupv2]

# A busy loop in a child, stopped after 5 s. The shell is the container's
# pid 1, which ignores SIGTERM without a handler, so the loop must not be
# pid 1 itself (busybox `timeout PROG` would make it so).
BUSY_FOR_FIVE_SECONDS = "while :; do :; done & sleep 5; kill $!"


# Every container here runs with --network none: these tests run in the
# host's network namespace, which must not get pyrun's bridge or rules.
def run_in_container(pyrun_env, parent, *args):
    return run_pyrun("run", "--rm", "--network", "none", "--cgroup-parent", parent, *args,
                     env=pyrun_env, timeout=120)


def start_container(pyrun_env, parent, *args) -> subprocess.Popen:
    """Start `pyrun run --rm` in the background, for reading its cgroup from the host."""
    command = [PYRUN, "run", "--rm", "--network", "none", "--cgroup-parent", parent, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **pyrun_env})


def wait_for_container_cgroup(parent: str, timeout: float = 60):
    """Wait until a container's cgroup with processes appears under `parent`, and return its manager."""
    layout = detect.detect_layout()
    directory = Path(layout.v1_mounts.get("pids") or layout.unified) / parent
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [child for child in directory.glob("*") if child.is_dir()] if directory.is_dir() else []
        if children:
            manager = cgroups.open_cgroup(f"/{parent}/{children[0].name}")
            if manager.pids():
                return manager
        time.sleep(0.05)
    raise AssertionError(f"no container cgroup with processes appeared under {directory}")


def control_file(manager, controller: str, name: str) -> Path:
    """Return the path of a control file of the container's cgroup, on v1 or v2."""
    if manager.layout.kind == "v2":
        return Path(manager.directory, name)
    return Path(manager.controller_directory(controller), name)


def test_cpuset_seen_inside(pyrun_env, cgroup_parent):
    result = run_in_container(pyrun_env, cgroup_parent, "--cpuset-cpus", "1",
                              "busybox", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Cpus_allowed_list:", "1"]


def test_memory_hog_oom_killed(pyrun_env, cgroup_parent):
    # dd fills a 64 MiB buffer from /dev/zero, four times the limit.
    result = run_in_container(pyrun_env, cgroup_parent, "--memory", "16m",
                              "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    assert result.returncode == 137, result.stderr


def test_oom_kill_recorded(pyrun_env, cgroup_parent, store_root):
    result = run_pyrun("run", "--network", "none", "--cgroup-parent", cgroup_parent, "--name", "hog", "--memory", "16m",
                       "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
                       env=pyrun_env, timeout=120)
    container_id = state.find_container(str(store_root), "hog")
    record = state.load_record(str(store_root), container_id)
    state.remove_container(str(store_root), container_id)
    assert result.returncode == 137, result.stderr
    assert record["exit_code"] == 137
    assert record["oom_killed"] is True


def test_no_oom_recorded_without_oom(pyrun_env, cgroup_parent, store_root):
    result = run_pyrun("run", "--network", "none", "--cgroup-parent", cgroup_parent, "--name", "calm", "--memory", "16m",
                       "busybox", "true", env=pyrun_env, timeout=120)
    container_id = state.find_container(str(store_root), "calm")
    record = state.load_record(str(store_root), container_id)
    state.remove_container(str(store_root), container_id)
    assert result.returncode == 0, result.stderr
    assert record["oom_killed"] is False



def test_pids_limit_stops_fork_bomb(pyrun_env, cgroup_parent):
    # The shell function forks two copies of itself in the background, so
    # without a limit the number of processes doubles at each step. The
    # main shell then replaces itself with sleep, which needs no fork.
    bomb = "bomb() { bomb | bomb & }; bomb; exec sleep 5"
    container = start_container(pyrun_env, cgroup_parent, "--pids-limit", "10", "busybox", "sh", "-c", bomb)
    try:
        manager = wait_for_container_cgroup(cgroup_parent)
        limit = control_file(manager, "pids", "pids.max").read_text().strip()
        highest = 0
        failed_forks = 0
        # Sample until the kernel has refused a fork (pids.events "max"),
        # or until the container ends.
        while failed_forks == 0 and container.poll() is None:
            try:
                highest = max(highest, int(control_file(manager, "pids", "pids.current").read_text()))
                events = control_file(manager, "pids", "pids.events").read_text()
            except FileNotFoundError:
                break
            failed_forks = int(dict(line.split() for line in events.splitlines()).get("max", "0"))
            time.sleep(0.02)
    finally:
        container.communicate(timeout=60)
    assert limit == "10"
    assert highest <= 10
    assert failed_forks > 0
    assert container.returncode == 0


def test_cpus_half_caps_usage(pyrun_env, cgroup_parent):
    container = start_container(pyrun_env, cgroup_parent, "--cpus", "0.5",
                                "busybox", "sh", "-c", BUSY_FOR_FIVE_SECONDS)
    try:
        manager = wait_for_container_cgroup(cgroup_parent)
        time.sleep(0.5)
        before, start = manager.stats().cpu_usage_ns, time.monotonic()
        time.sleep(3)
        after, end = manager.stats().cpu_usage_ns, time.monotonic()
        if manager.layout.kind == "v2":
            limit = control_file(manager, "cpu", "cpu.max").read_text().split()
        else:
            limit = [control_file(manager, "cpu", name).read_text().strip()
                     for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us")]
        cpu_stat = dict(line.split() for line in control_file(manager, "cpu", "cpu.stat").read_text().splitlines())
    finally:
        container.communicate(timeout=60)
    cores = (after - before) / 1e9 / (end - start)
    assert limit == ["50000", "100000"]
    # A busy loop would use one whole core, and the quota allows half.
    assert cores < 0.6
    # On a busy host the loop may get less than half a core anyway. Then the
    # quota never bites, and the measurement cannot show the cap.
    if int(cpu_stat["nr_throttled"]) == 0:
        pytest.skip(f"the host is too busy to test the cap: the loop got {cores:.2f} cores without throttling")


def test_cpu_shares_applied(pyrun_env, cgroup_parent):
    container = start_container(pyrun_env, cgroup_parent, "--cpu-shares", "512", "busybox", "sleep", "2")
    try:
        manager = wait_for_container_cgroup(cgroup_parent)
        if manager.layout.kind == "v2":
            name, expected = "cpu.weight", "20"  # 512 shares on v2's 1-10000 scale
        else:
            name, expected = "cpu.shares", "512"
        value = control_file(manager, "cpu", name).read_text().strip()
    finally:
        container.communicate(timeout=60)
    assert value == expected


def test_invalid_memory_names_flag(pyrun_env, cgroup_parent):
    result = run_in_container(pyrun_env, cgroup_parent, "--memory", "12x", "busybox", "true")
    assert result.returncode == 125
    assert "--memory" in result.stderr
    assert "12x" in result.stderr


def test_missing_cpu_rejected_before_start(pyrun_env, cgroup_parent, store_root):
    # As Docker does, at create: no container is left to remove.
    missing_cpu = str(os.cpu_count() + 7)
    containers = store_root / "containers"
    before = set(containers.iterdir()) if containers.exists() else set()
    result = run_pyrun("create", "--network", "none", "--cgroup-parent", cgroup_parent, "--cpuset-cpus",
                       missing_cpu, "busybox", "true", env=pyrun_env, timeout=120)
    assert result.returncode == 125
    assert f"invalid value for --cpuset-cpus: CPUs {missing_cpu} are not available" in result.stderr
    assert (set(containers.iterdir()) if containers.exists() else set()) == before


def test_container_sees_own_cgroup_as_root(pyrun_env, cgroup_parent):
    result = run_in_container(pyrun_env, cgroup_parent, "--memory", "64m", "busybox", "cat", "/proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        hierarchy, _, path = line.rpartition(":")
        if "name=" in hierarchy:
            continue  # named hierarchies such as name=systemd are not joined
        assert path == "/", line


def test_cgroup_joined_without_pid_write(pyrun_env, cgroup_parent):
    # The setup process is cloned into the cgroup2 directory and moves itself
    # into each v1 hierarchy by writing "0" to `tasks`. A pid written to
    # cgroup.procs would make the kernel wait for an RCU grace period.
    layout = detect.detect_layout()
    result = run_pyrun("--log-level", "trace", "run", "--rm", "--network", "none", "--cgroup-parent",
                       cgroup_parent, "busybox", "cat", "/proc/self/cgroup", env=pyrun_env, timeout=120)
    assert result.returncode == 0, result.stderr
    trace = [line for line in result.stderr.splitlines() if line.startswith("trace: ")]
    clones = [line for line in trace if line.startswith("trace: clone3(")]
    assert clones, "no clone3 into the cgroup"
    assert all("CLONE_INTO_CGROUP" in line and f"{cgroup_parent}/" in line for line in clones)
    procs = [line for line in trace if "/cgroup.procs'" in line]
    assert procs == []
    tasks = [line for line in trace if "/tasks'" in line]
    assert all("value='0'" in line for line in tasks)
    assert len(tasks) == len(set(layout.v1_mounts.values()))
    # ...and pid 1 sits in its own cgroup in every hierarchy: the root of its cgroup namespace.
    for line in result.stdout.splitlines():
        hierarchy, _, path = line.rpartition(":")
        if "name=" not in hierarchy:
            assert path == "/", line


def test_limits_applied_while_pid_1_sets_up(pyrun_env, cgroup_parent):
    # On a v1 or hybrid host pyrun clones pid 1 once the cgroup2 directory
    # exists, then makes the v1 hierarchies and writes the limits while pid 1
    # mounts its filesystems. Pid 1 joins the v1 hierarchies only after the
    # last limit. On v2, pid 1 is born in the whole cgroup, so the limits come first.
    layout = detect.detect_layout()
    result = run_pyrun("--log-level", "trace", "run", "--rm", "--network", "none", "--cgroup-parent",
                       cgroup_parent, "--memory", "64m", "--pids-limit", "50", "busybox", "true",
                       env=pyrun_env, timeout=120)
    assert result.returncode == 0, result.stderr

    trace = [line for line in result.stderr.splitlines() if line.startswith("trace: ")]
    clone = next(index for index, line in enumerate(trace) if line.startswith("trace: clone3("))
    mount = next(index for index, line in enumerate(trace) if line.startswith("trace: mount(") and index > clone)
    limits = [index for index, line in enumerate(trace)
              if "write_cgroup_file(" in line and ("memory.max'" in line or "memory.limit_in_bytes'" in line
                                                   or "pids.max'" in line)]
    assert len(limits) == 2
    if layout.kind == "v2":
        assert max(limits) < clone
    else:
        assert min(limits) > clone

    joins = [index for index, line in enumerate(trace) if "/tasks'" in line]
    assert len(joins) == len(set(layout.v1_mounts.values()))
    assert all(index > max(limits) for index in joins)
    if joins:
        # Pid 1 mounted something before it had to wait for the v1 hierarchies.
        assert mount < min(joins)
        v1_mkdirs = [index for index, line in enumerate(trace)
                     if line.startswith("trace: mkdir(") and f"{cgroup_parent}/" in line and "/unified/" not in line]
        assert v1_mkdirs
        assert min(v1_mkdirs) > clone


def test_failed_start_leaves_no_cgroup(pyrun_env, cgroup_parent):
    # The fixture fails the test if the container's cgroup is left behind.
    result = run_in_container(pyrun_env, cgroup_parent, "--memory", "16m", "--pids-limit", "5",
                              "busybox", "/no/such/command")
    assert result.returncode == 127, result.stderr
