"""The cgroup manager on this host's real hierarchy, with real processes in it.

Each test puts a Python process into a cgroup under its own parent
(pyrun-test-<random>), checks a limit from the kernel's side, and leaves no
cgroup behind. The process waits on stdin until it is in the cgroup, so it
runs nothing outside it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import cgroups
from runtime.cgroups import detect

pytestmark = [pytest.mark.root, pytest.mark.cgroupv2]

MiB = 1024 * 1024

# Waits for one line on stdin, then runs the rest of the script.
GATE = "import sys\nsys.stdin.readline()\n"

MEMORY_HOG = GATE + """
chunks = []
for _ in range(512):
    chunks.append(b"x" * (1 << 20))
print("survived", flush=True)
"""

BUSY_LOOP = GATE + """
while True:
    pass
"""

# Starts 60 sleeping children, and the pids limit makes the later forks fail.
FORKER = GATE + """
import subprocess, time
started, failed = 0, 0
children = []
for _ in range(60):
    try:
        children.append(subprocess.Popen(["sleep", "30"]))
        started += 1
    except OSError as err:
        failed += 1
        last_error = err.strerror
print(f"started {started} failed {failed}", flush=True)
time.sleep(30)
"""


def hierarchy_roots() -> list[str]:
    layout = detect.detect_layout()
    roots = set(layout.v1_mounts.values())
    if layout.unified:
        roots.add(layout.unified)
    return sorted(roots)


def empty_and_remove(directory: Path) -> None:
    """Kill whatever a failed test left in a cgroup, then remove it."""
    if (directory / "freezer.state").exists():
        (directory / "freezer.state").write_text("THAWED")
    for pid in (directory / "cgroup.procs").read_text().split():
        os.kill(int(pid), 9)
    deadline = time.monotonic() + 10
    while (directory / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.rmdir(directory)


@pytest.fixture
def cgroup_parent():
    """Return a parent cgroup name for one test, and fail the test if anything is left in it."""
    parent = f"pyrun-test-{secrets.token_hex(4)}"
    yield parent
    leftovers = []
    for root in hierarchy_roots():
        directory = Path(root) / parent
        if not directory.exists():
            continue
        for child in directory.iterdir():
            if child.is_dir():
                leftovers.append(str(child))
                empty_and_remove(child)
        os.rmdir(directory)
    assert leftovers == [], "container cgroups left behind"


@pytest.fixture
def manager(cgroup_parent):
    manager = cgroups.open_cgroup(f"/{cgroup_parent}/c1")
    manager.create()
    yield manager
    manager.remove()


def start_in(manager, script: str) -> subprocess.Popen:
    """Start a Python process, move it into `manager`'s cgroup, then let it run."""
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manager.add_process(process.pid)
    process.stdin.write("go\n")
    process.stdin.flush()
    return process


def wait_for(condition, timeout: float = 20) -> None:
    """Poll `condition` until it is true or `timeout` seconds pass (slow VMs need the time)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_process_lands_in_cgroup(manager):
    process = start_in(manager, GATE + "import time; time.sleep(30)")
    try:
        assert manager.pids() == [process.pid]
        lines = Path(f"/proc/{process.pid}/cgroup").read_text().splitlines()
        joined = [line for line in lines if line.endswith(f":/{manager.path}")]
        if manager.layout.kind == "v2":
            assert joined == [f"0::/{manager.path}"]
        else:
            assert len(joined) == len(manager.all_directories())
    finally:
        manager.remove()
        process.wait(timeout=10)


def test_memory_hog_oom_killed(manager):
    manager.apply({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    process = start_in(manager, MEMORY_HOG)
    out, _ = process.communicate(timeout=60)
    assert "survived" not in out
    assert process.returncode == -9
    assert manager.oom_killed() is True


def test_oom_killed_false_without_oom(manager):
    manager.apply({"memory": {"limit": 256 * MiB}})
    process = start_in(manager, GATE + "print('ok')")
    out, _ = process.communicate(timeout=30)
    assert out.strip() == "ok"
    assert manager.oom_killed() is False


def test_pids_limit_stops_forks(manager):
    manager.apply({"pids": {"limit": 10}})
    process = start_in(manager, FORKER)
    line = process.stdout.readline()
    started, failed = int(line.split()[1]), int(line.split()[3])
    stats = manager.stats()
    manager.remove()
    process.wait(timeout=10)
    # The Python process itself is one of the ten.
    assert started == 9
    assert failed == 51
    assert stats.pids_current == 10
    assert stats.pids_limit == 10


def cpu_seconds_over(manager, window: float) -> float:
    """Return the CPU seconds the cgroup used during `window` seconds of wall time."""
    before = manager.stats().cpu_usage_ns
    start = time.monotonic()
    time.sleep(window)
    used = manager.stats().cpu_usage_ns - before
    return used / 1e9 / (time.monotonic() - start)


def throttled_periods(manager) -> int:
    """Return how many CFS periods the scheduler throttled the cgroup in (cpu.stat)."""
    if manager.layout.kind == "v2":
        directory = manager.directory
    else:
        directory = manager.controller_directory("cpu")
    lines = Path(directory, "cpu.stat").read_text().splitlines()
    return int(dict(line.split() for line in lines)["nr_throttled"])


@pytest.mark.slow
def test_cpus_half_caps_usage(manager):
    manager.apply({"cpu": {"quota": 50_000, "period": 100_000}})
    process = start_in(manager, BUSY_LOOP)
    try:
        time.sleep(0.3)
        share = cpu_seconds_over(manager, 3.0)
        throttled = throttled_periods(manager)
    finally:
        manager.remove()
        process.wait(timeout=10)
    # A busy loop would use a whole core, but the quota allows half of one.
    assert share < 0.6
    # On a busy host the loop may get less than half a core anyway. Then the
    # quota never bites, and the measurement cannot show the cap.
    if throttled == 0:
        pytest.skip(f"the host is too busy to test the cap: the loop got {share:.2f} cores without throttling")
    assert share > 0.3


def test_cpuset_restricts_cpus(manager):
    cpus = os.sched_getaffinity(0)
    last = max(cpus)
    manager.apply({"cpu": {"cpus": str(last)}})
    process = start_in(manager, GATE + "import os; print(sorted(os.sched_getaffinity(0)))")
    out, _ = process.communicate(timeout=30)
    assert out.strip() == f"[{last}]"


def test_cpuset_rejected_value_names_flag(manager):
    missing_cpu = os.cpu_count() + 7
    with pytest.raises(cgroups.CgroupError) as info:
        manager.apply({"cpu": {"cpus": str(missing_cpu)}})
    message = str(info.value)
    assert "--cpuset-cpus" in message
    assert str(missing_cpu) in message
    assert "cpuset.cpus" in message


@pytest.mark.slow
def test_cpu_shares_split_contended_core(cgroup_parent):
    # Two busy loops pinned to one CPU: shares 1024 against 256 should give
    # the first about four times the CPU time of the second.
    cpu = str(max(os.sched_getaffinity(0)))
    heavy = cgroups.open_cgroup(f"/{cgroup_parent}/heavy")
    light = cgroups.open_cgroup(f"/{cgroup_parent}/light")
    processes = []
    try:
        for manager, shares in ((heavy, 1024), (light, 256)):
            manager.create()
            manager.apply({"cpu": {"shares": shares, "cpus": cpu}})
            processes.append(start_in(manager, BUSY_LOOP))
        time.sleep(0.3)
        heavy_before, light_before = heavy.stats().cpu_usage_ns, light.stats().cpu_usage_ns
        time.sleep(3.0)
        heavy_used = heavy.stats().cpu_usage_ns - heavy_before
        light_used = light.stats().cpu_usage_ns - light_before
    finally:
        heavy.remove()
        light.remove()
        for process in processes:
            process.wait(timeout=10)
    assert light_used > 0
    assert heavy_used / light_used > 2.0


def test_freeze_stops_cpu_use(manager):
    process = start_in(manager, BUSY_LOOP)
    try:
        time.sleep(0.2)
        manager.freeze()
        frozen_share = cpu_seconds_over(manager, 0.5)
        manager.thaw()
        running_share = cpu_seconds_over(manager, 0.5)
    finally:
        manager.remove()
        process.wait(timeout=10)
    assert frozen_share < 0.05
    # A thawed busy loop runs again; how much CPU it gets depends on the
    # host's load, so only require clearly more than while frozen.
    assert running_share > 0.1


def test_remove_kills_leftover_processes(cgroup_parent):
    manager = cgroups.open_cgroup(f"/{cgroup_parent}/c1")
    manager.create()
    process = start_in(manager, GATE + "import os, time\nos.fork(); os.fork()\ntime.sleep(60)")
    wait_for(lambda: len(manager.pids()) == 4)
    assert len(manager.pids()) == 4
    manager.remove()
    assert process.wait(timeout=10) == -9
    for root in hierarchy_roots():
        assert not (Path(root) / cgroup_parent / "c1").exists()


def test_failed_create_leaves_nothing(cgroup_parent):
    # The leaf exists in the last hierarchy, so create fails after making
    # it everywhere else. It must remove what it made.
    roots = hierarchy_roots()
    blocking = Path(roots[-1]) / cgroup_parent / "c1"
    blocking.mkdir(parents=True)
    with pytest.raises(cgroups.CgroupError, match="already exists"):
        cgroups.open_cgroup(f"/{cgroup_parent}/c1").create()
    made = [root for root in roots[:-1] if (Path(root) / cgroup_parent / "c1").exists()]
    os.rmdir(blocking)
    assert made == []


def test_stats_read_live_values(manager):
    manager.apply({"memory": {"limit": 64 * MiB}, "pids": {"limit": 20}})
    script = GATE + "data = b'x' * (8 << 20)\nprint('ready', flush=True)\nimport time; time.sleep(30)"
    process = start_in(manager, script)
    try:
        assert process.stdout.readline() == "ready\n"
        stats = manager.stats()
    finally:
        manager.remove()
        process.wait(timeout=10)
    assert stats.memory_limit == 64 * MiB
    assert stats.memory_usage > 8 * MiB
    assert stats.pids_current == 1
    assert stats.pids_limit == 20
    assert stats.cpu_usage_ns > 0


def test_oom_kill_disable_pauses_hog(manager):
    if manager.layout.kind == "v2" or manager.controller_directory("memory") is None:
        pytest.skip("--oom-kill-disable needs the cgroup v1 memory controller")
    memory_dir = manager.controller_directory("memory")
    manager.apply({"memory": {"limit": 32 * MiB, "swap": 32 * MiB, "disableOOMKiller": True}})
    process = start_in(manager, MEMORY_HOG)
    try:
        deadline = time.monotonic() + 20
        control = {}
        while time.monotonic() < deadline:
            control = dict(line.split() for line in Path(memory_dir, "memory.oom_control").read_text().splitlines())
            if control["under_oom"] == "1":
                break
            time.sleep(0.1)
        alive = process.poll() is None
    finally:
        manager.remove()
        process.wait(timeout=10)
    assert control["oom_kill_disable"] == "1"
    assert control["under_oom"] == "1"
    assert alive
