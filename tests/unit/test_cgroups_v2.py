"""The v2 driver against a temporary directory laid out like a cgroup2 mount."""

import errno
import os

import pytest

from runtime import cgroups, syscalls
from runtime.cgroups import files
from runtime.cgroups.v2 import V2Cgroup, cpu_weight_from_shares
from tests.unit.cgroupfs_fake import FakeCgroupfs, record_fork_into

MiB = 1024 * 1024


@pytest.fixture
def fakefs(tmp_path):
    fake = FakeCgroupfs(tmp_path, "v2")
    yield fake
    fake.close()


@pytest.fixture
def written():
    """Collect (path, value) of every control file written, as the trace records them."""
    writes = []

    def listen(call):
        if call.name == "write_cgroup_file":
            writes.append((call.args["path"], call.args["value"]))

    syscalls.add_listener(listen)
    yield writes
    syscalls.remove_listener(listen)


def leaf(fakefs, name=""):
    return fakefs.unified_mount() / "pyrun" / "c1" / name


def test_open_picks_v2_driver(fakefs):
    manager = fakefs.open("/pyrun/c1")
    assert isinstance(manager, V2Cgroup)
    assert manager.layout.kind == "v2"
    assert manager.directory == str(leaf(fakefs)).rstrip("/")


def test_create_enables_controllers_top_down(fakefs, written):
    fakefs.open("/pyrun/c1").create()
    assert leaf(fakefs).is_dir()
    root = str(fakefs.unified_mount())
    enabled_at_root = [v for p, v in written if p == f"{root}/cgroup.subtree_control"]
    enabled_at_parent = [v for p, v in written if p == f"{root}/pyrun/cgroup.subtree_control"]
    expected = ["+cpuset", "+cpu", "+io", "+memory", "+pids", "+hugetlb"]
    assert enabled_at_root == expected
    assert enabled_at_parent == expected
    # The leaf contains the container's processes, so it enables no controllers below it.
    assert not any(p.endswith("/c1/cgroup.subtree_control") for p, _ in written)


def test_create_skips_enabled_controllers(fakefs, written):
    (fakefs.unified_mount() / "cgroup.subtree_control").write_text("cpu memory pids\n")
    fakefs.open("/pyrun/c1").create()
    root = str(fakefs.unified_mount())
    enabled_at_root = [v for p, v in written if p == f"{root}/cgroup.subtree_control"]
    assert enabled_at_root == ["+cpuset", "+io", "+hugetlb"]


def test_create_busy_parent_explains_rule(fakefs):
    with syscalls.recording() as recorder:
        recorder.fail["write_cgroup_file"] = errno.EBUSY
        with pytest.raises(cgroups.CgroupError) as info:
            fakefs.open("/pyrun/c1").create()
    assert "enable the cpuset controller" in str(info.value)
    assert "--cgroup-parent" in info.value.hint


def test_create_existing_leaf_rejected(fakefs):
    fakefs.open("/pyrun/c1").create()
    with pytest.raises(cgroups.CgroupError, match="already exists"):
        fakefs.open("/pyrun/c1").create()


def test_apply_writes_each_limit(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB},
        "cpu": {"shares": 1024, "period": 100_000, "quota": 50_000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 10},
    })
    assert leaf(fakefs, "memory.max").read_text() == str(64 * MiB)
    assert leaf(fakefs, "memory.swap.max").read_text() == str(32 * MiB)
    assert leaf(fakefs, "memory.low").read_text() == str(32 * MiB)
    assert leaf(fakefs, "cpu.weight").read_text() == "39"
    assert leaf(fakefs, "cpu.max").read_text() == "50000 100000"
    assert leaf(fakefs, "cpuset.cpus").read_text() == "0"
    assert leaf(fakefs, "cpuset.mems").read_text() == "0"
    assert leaf(fakefs, "pids.max").read_text() == "10"


def test_apply_unlimited_values(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({"memory": {"limit": 64 * MiB, "swap": -1}, "pids": {"limit": -1}})
    assert leaf(fakefs, "memory.swap.max").read_text() == "max"
    assert leaf(fakefs, "pids.max").read_text() == "max"


def test_oom_kill_disable_is_warned_not_written(fakefs, written, caplog):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.apply({"memory": {"disableOOMKiller": True}})
    assert written == []
    assert "--oom-kill-disable is ignored" in caplog.text


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (262144, 10000), (1, 1), (10**6, 10000)])
def test_cpu_weight_from_shares(shares, weight):
    assert cpu_weight_from_shares(shares) == weight


def test_rejected_value_names_flag_value_and_file(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    with syscalls.recording() as recorder:
        recorder.fail["write_cgroup_file"] = errno.EINVAL
        with pytest.raises(cgroups.CgroupError) as info:
            manager.apply({"cpu": {"cpus": "7"}})
    message = str(info.value)
    assert "--cpuset-cpus" in message
    assert " 7 " in message
    assert "cpuset.cpus" in message


def test_join_self_writes_zero_to_leaf_procs(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.join_self()
    assert written == [(str(leaf(fakefs, "cgroup.procs")), "0")]
    written.clear()
    manager.join_self(cgroup2=False)  # born there by clone3: nothing left to join
    assert written == []


def test_fork_into_clones_into_leaf(fakefs, monkeypatch):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    recorder, born_inside = record_fork_into(manager, monkeypatch)
    assert recorder.names() == ["clone3"]
    assert recorder.calls[0].args == {"flags": "CLONE_INTO_CGROUP", "cgroup": str(leaf(fakefs))}
    assert born_inside


def test_add_process_writes_leaf_procs(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.add_process(4242)
    assert written == [(str(leaf(fakefs, "cgroup.procs")), "4242")]


def test_pids_include_nested_cgroups(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    nested = leaf(fakefs, "inner")
    nested.mkdir()
    leaf(fakefs, "cgroup.procs").write_text("7\n")
    (nested / "cgroup.procs").write_text("8\n9\n")
    assert manager.pids() == [7, 8, 9]


def test_stats_and_oom_killed(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({"memory": {"limit": 64 * MiB}, "pids": {"limit": 5}})
    leaf(fakefs, "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    leaf(fakefs, "memory.current").write_text(f"{10 * MiB}\n")
    leaf(fakefs, "memory.stat").write_text(f"anon 1\ninactive_file {MiB}\n")
    leaf(fakefs, "pids.current").write_text("3\n")
    stats = manager.stats()
    assert stats.cpu_usage_ns == 2_500_000
    assert stats.memory_usage == 9 * MiB
    assert stats.memory_limit == 64 * MiB
    assert stats.pids_current == 3
    assert stats.pids_limit == 5
    assert manager.oom_killed() is False
    leaf(fakefs, "memory.events").write_text("oom 1\noom_kill 1\n")
    assert manager.oom_killed() is True


def test_freeze_waits_for_frozen_event(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    leaf(fakefs, "cgroup.events").write_text("populated 1\nfrozen 1\n")
    manager.freeze()
    assert leaf(fakefs, "cgroup.freeze").read_text() == "1"


def test_remove_empty_cgroup(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    with syscalls.recording() as recorder:
        manager.remove()
    assert recorder.names() == ["rmdir"]
    assert recorder.calls[0].args["path"] == manager.directory


def test_remove_uses_cgroup_kill(fakefs, monkeypatch):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    leaf(fakefs, "cgroup.procs").write_text("7\n")
    # The recorder performs no kill, so process 7 stays and remove times out.
    monkeypatch.setattr(files, "EMPTY_TIMEOUT_SECONDS", 0.05)
    with syscalls.recording() as recorder:
        recorder.fail["rmdir"] = errno.EBUSY  # as the kernel rejects a cgroup that has processes
        with pytest.raises(cgroups.CgroupError, match="still in"):
            manager.remove()
    assert recorder.calls[0].name == "rmdir"
    assert recorder.calls[1].name == "write_cgroup_file"
    assert recorder.calls[1].args["path"].endswith("/c1/cgroup.kill")
    assert recorder.calls[1].args["value"] == "1"


def test_missing_control_file_names_flag(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    leaf(fakefs, "pids.max").unlink()
    with pytest.raises(cgroups.CgroupError) as info:
        manager.apply({"pids": {"limit": 5}})
    assert "cannot apply --pids-limit" in str(info.value)
    assert "pids.max is missing" in str(info.value)
    assert "not enabled" in info.value.hint


def test_rejected_value_names_path_once():
    with syscalls.recording() as recorder, pytest.raises(cgroups.CgroupError) as caught:
        recorder.fail["write_cgroup_file"] = errno.ERANGE
        files.write_file("/cg/c1", "cpuset.cpus", "99", flag="--cpuset-cpus")
    message = str(caught.value)
    assert message.startswith("invalid value for --cpuset-cpus: the kernel rejected 99 in /cg/c1/cpuset.cpus")
    assert message.endswith(os.strerror(errno.ERANGE))
    assert message.count("/cg/c1/cpuset.cpus") == 1
    assert caught.value.__cause__ is None
