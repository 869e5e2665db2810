"""The v2 driver on a pure cgroup v2 host: controllers, cgroup.kill, memory.events.

test_cgroups_manager.py checks the limits themselves on every layout, and
this file covers what only v2 has. On a v1 or
hybrid host every test here skips.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.cgroups import detect
from runtime.cgroups.v2 import V2Cgroup
from tests.integration.test_cgroups_manager import (  # noqa: F401 (fixtures)
    BUSY_LOOP,
    GATE,
    MEMORY_HOG,
    MiB,
    cgroup_parent,
    manager,
    start_in,
    wait_for,
)

pytestmark = [pytest.mark.root]

needs_pure_v2 = [
    pytest.mark.cgroupv2,
    pytest.mark.skipif(
        detect.detect_layout().kind != "v2",
        reason="needs a pure cgroup v2 host; this one is v1 or hybrid (run it in the test VM)",
    ),
]


class TestPureV2:
    """The v2 driver with its controllers, on a host where cgroup2 is the only hierarchy."""

    pytestmark = needs_pure_v2

    def test_parent_enables_controllers(self, manager):
        parent = Path(manager.directory).parent
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        available = (parent / "cgroup.controllers").read_text().split()
        for controller in ("cpu", "memory", "pids"):
            if controller in available:
                assert controller in enabled

    def test_parent_holds_no_processes(self, manager):
        start_in(manager, BUSY_LOOP)
        parent = Path(manager.directory).parent
        assert (parent / "cgroup.procs").read_text().strip() == ""

    def test_cpu_weight_from_shares(self, manager):
        manager.apply({"cpu": {"shares": 512}})
        assert Path(manager.directory, "cpu.weight").read_text().strip() == "20"

    def test_memory_events_report_oom(self, manager):
        manager.apply({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
        process = start_in(manager, MEMORY_HOG)
        process.communicate(timeout=60)
        assert process.returncode == -9
        assert manager.oom_killed() is True

    def test_remove_with_cgroup_kill(self, cgroup_parent):
        from runtime import cgroups

        manager = cgroups.open_cgroup(f"/{cgroup_parent}/c1")
        manager.create()
        process = start_in(manager, BUSY_LOOP)
        time.sleep(0.2)
        manager.remove()
        assert process.wait(timeout=10) == -9
        assert not Path(manager.directory).exists()


# -- The core of v2 on the cgroup2 mount of a hybrid host -----------------------
# A hybrid host's cgroup2 mount has none of the controllers that pyrun sets
# limits with. Creating, joining, freezing, cgroup.kill and removal work as
# on pure v2, though, so the v2 driver runs there with no controllers.
# Enabling none also leaves the host's root cgroup.subtree_control unchanged.

hybrid_only = pytest.mark.skipif(
    detect.detect_layout().kind != "hybrid",
    reason="needs a hybrid host, whose cgroup2 mount is free of the v1 controllers",
)


@pytest.fixture
def core_v2(cgroup_parent):
    layout = detect.detect_layout()
    manager = V2Cgroup(f"/{cgroup_parent}/c1", detect.Layout("v2", {}, layout.unified))
    manager.controllers = ()
    manager.create()
    yield manager
    manager.remove()


@hybrid_only
def test_core_v2_join_and_list(core_v2):
    process = start_in(core_v2, BUSY_LOOP)
    assert core_v2.pids() == [process.pid]
    cgroup_line = Path(f"/proc/{process.pid}/cgroup").read_text().splitlines()[-1]
    assert cgroup_line == f"0::/{core_v2.path}"


@hybrid_only
def test_core_v2_freeze_and_thaw(core_v2):
    process = start_in(core_v2, BUSY_LOOP)
    time.sleep(0.2)
    core_v2.freeze()
    state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    events_frozen = Path(core_v2.directory, "cgroup.events").read_text()
    core_v2.thaw()
    events_thawed = Path(core_v2.directory, "cgroup.events").read_text()
    assert "frozen 1" in events_frozen
    assert state in ("S", "D")  # a frozen busy loop no longer runs (R)
    assert "frozen 0" in events_thawed


@hybrid_only
def test_core_v2_remove_kills_subtree(cgroup_parent):
    layout = detect.detect_layout()
    manager = V2Cgroup(f"/{cgroup_parent}/c1", detect.Layout("v2", {}, layout.unified))
    manager.controllers = ()
    manager.create()
    process = start_in(manager, GATE + "import os, time\nos.fork()\ntime.sleep(60)")
    wait_for(lambda: len(manager.pids()) == 2)
    assert len(manager.pids()) == 2
    manager.remove()
    assert process.wait(timeout=10) == -9
    assert not Path(manager.directory).exists()

