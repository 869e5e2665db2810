"""The v1 and hybrid driver against a temporary directory laid out like /sys/fs/cgroup."""

import errno
import os

import pytest

from runtime import cgroups, syscalls
from runtime.cgroups import files
from runtime.cgroups.v1 import V1Cgroup
from tests.unit.cgroupfs_fake import FakeCgroupfs, record_fork_into

MiB = 1024 * 1024


@pytest.fixture(params=["v1", "hybrid"])
def fakefs(request, tmp_path):
    fake = FakeCgroupfs(tmp_path, request.param)
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


def read(fakefs, controller, name, path="pyrun/c1"):
    return (fakefs.v1_mount(controller) / path / name).read_text().strip()


def test_open_picks_v1_driver(fakefs):
    manager = fakefs.open("/pyrun/c1")
    assert isinstance(manager, V1Cgroup)
    assert manager.layout.kind == fakefs.kind


def test_create_makes_every_hierarchy(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    for controller in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"):
        assert (fakefs.v1_mount(controller) / "pyrun" / "c1").is_dir(), controller
    unified = fakefs.base / "cgroup" / "unified" / "pyrun" / "c1"
    assert unified.is_dir() == (fakefs.kind == "hybrid")


def test_create_copies_cpuset_from_parent(fakefs):
    fakefs.open("/pyrun/c1").create()
    assert read(fakefs, "cpuset", "cpuset.cpus") == "0-1"
    assert read(fakefs, "cpuset", "cpuset.mems") == "0"
    assert read(fakefs, "cpuset", "cpuset.cpus", "pyrun") == "0-1"


def test_create_with_existing_parents_makes_only_leaves(fakefs):
    fakefs.open("/pyrun/c1").create()
    calls = []
    syscalls.add_listener(calls.append)
    try:
        fakefs.open("/pyrun/c2").create()
    finally:
        syscalls.remove_listener(calls.append)
    made = [c.args["path"] for c in calls if c.name == "mkdir"]
    assert made
    assert all(path.endswith("/pyrun/c2") for path in made)
    assert read(fakefs, "cpuset", "cpuset.cpus", "pyrun/c2") == "0-1"


def test_create_in_two_steps_cgroup2_first(fakefs):
    # pyrun clones pid 1 into the cgroup2 directory, then makes the v1 ones.
    manager = fakefs.open("/pyrun/c1")
    manager.create_in_cgroup2()
    directories = [path for path in manager.all_directories() if os.path.isdir(path)]
    assert directories == ([str(fakefs.unified_mount() / "pyrun" / "c1")] if fakefs.kind == "hybrid" else [])
    manager.create_in_v1()
    assert all(os.path.isdir(path) for path in manager.all_directories())
    assert read(fakefs, "cpuset", "cpuset.cpus", "pyrun/c1") == "0-1"


def test_create_existing_leaf_rejected(fakefs):
    fakefs.open("/pyrun/c1").create()
    with pytest.raises(cgroups.CgroupError, match="already exists"):
        fakefs.open("/pyrun/c1").create()


def test_failed_create_removes_leaves(fakefs):
    # The pids hierarchy, the last one created, already has the leaf, so
    # create fails after making the leaves in the other hierarchies (the
    # hybrid's cgroup2 one first). The fake's rmdir fails on the control
    # files inside, so the test checks the calls: each leaf made is
    # removed, newest first.
    (fakefs.v1_mount("pids") / "pyrun" / "c1").mkdir(parents=True)
    calls = []
    syscalls.add_listener(calls.append)
    try:
        with pytest.raises(cgroups.CgroupError, match="already exists"):
            fakefs.open("/pyrun/c1").create()
    finally:
        syscalls.remove_listener(calls.append)
    made = [c.args["path"] for c in calls if c.name == "mkdir" and c.error is None]
    removed = [c.args["path"] for c in calls if c.name == "rmdir"]
    leaves = [path for path in made if path.endswith("/c1")]
    assert len(leaves) == (6 if fakefs.kind == "hybrid" else 5)
    assert removed == list(reversed(leaves))


def test_apply_writes_each_limit(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.apply({
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB, "disableOOMKiller": True},
        "cpu": {"shares": 512, "period": 100_000, "quota": 50_000, "cpus": "1"},
        "pids": {"limit": 10},
    })
    assert read(fakefs, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert read(fakefs, "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert read(fakefs, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(fakefs, "memory", "memory.oom_control") == "1"
    assert read(fakefs, "cpu", "cpu.shares") == "512"
    assert read(fakefs, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(fakefs, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(fakefs, "cpuset", "cpuset.cpus") == "1"
    assert read(fakefs, "pids", "pids.max") == "10"
    names = [path.rsplit("/", 1)[1] for path, _ in written]
    assert names.index("cpu.cfs_period_us") < names.index("cpu.cfs_quota_us")


def test_apply_memsw_first_when_raising_limit(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})
    written.clear()
    manager.apply({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}})
    names = [path.rsplit("/", 1)[1] for path, _ in written]
    assert names == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_apply_pids_unlimited(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({"pids": {"limit": -1}})
    assert read(fakefs, "pids", "pids.max") == "max"


def test_rejected_value_names_flag_value_and_file(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    with syscalls.recording() as recorder:
        recorder.fail["write_cgroup_file"] = errno.EINVAL
        with pytest.raises(cgroups.CgroupError) as info:
            manager.apply({"cpu": {"shares": 1}})
    message = str(info.value)
    assert "--cpu-shares" in message
    assert " 1 " in message
    assert "cpu.shares" in message


def test_missing_controller_names_flag(tmp_path):
    fake = FakeCgroupfs(tmp_path, "v1")
    try:
        lines = fake.mountinfo.read_text().splitlines()
        fake.mountinfo.write_text("\n".join(line for line in lines if not line.endswith(",pids")) + "\n")
        manager = fake.open("/pyrun/c1")
        with pytest.raises(cgroups.CgroupError, match="--pids-limit needs the pids"):
            manager.apply({"pids": {"limit": 5}})
    finally:
        fake.close()


def test_add_process_joins_every_hierarchy(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.add_process(4242)
    assert all(value == "4242" for _, value in written)
    assert all(path.endswith("/pyrun/c1/cgroup.procs") for path, _ in written)
    assert len(written) == (7 if fakefs.kind == "hybrid" else 6)


def test_join_self_moves_the_caller_thread_by_thread(fakefs, written):
    # "0" names the writer; a thread that moves itself through `tasks`
    # skips the lock that makes a cgroup.procs write wait.
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.join_self()
    v1 = [(path, value) for path, value in written if path.endswith("/tasks")]
    assert len(v1) == 6 and all(value == "0" for _, value in v1)
    unified = [path for path, _ in written if path.endswith("/unified/pyrun/c1/cgroup.procs")]
    assert len(unified) == (1 if fakefs.kind == "hybrid" else 0)
    assert len(written) == len(v1) + len(unified)


def test_join_self_after_clone_skips_cgroup2(fakefs, written):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    written.clear()
    manager.join_self(cgroup2=False)
    assert [path for path, _ in written if not path.endswith("/tasks")] == []


def test_fork_into_clones_into_unified_directory(fakefs, monkeypatch):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    recorder, born_inside = record_fork_into(manager, monkeypatch)
    if fakefs.kind == "hybrid":
        assert recorder.names() == ["clone3"]
        assert recorder.calls[0].args["cgroup"] == str(fakefs.unified_mount() / "pyrun" / "c1")
        assert born_inside
    else:
        assert recorder.names() == ["fork"]  # pure v1 has no cgroup2 directory to start in
        assert not born_inside


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM])
def test_fork_into_falls_back_to_fork(fakefs, monkeypatch, code):
    # Kernels before 5.7 and seccomp filters that hide clone3 (Docker's).
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    recorder, born_inside = record_fork_into(manager, monkeypatch, fail={"clone3": code})
    assert recorder.names()[-1] == "fork"
    assert not born_inside


def test_fork_into_with_threads_forks(fakefs, monkeypatch):
    # glibc's fork wrapper keeps other threads' locks usable in the child; raw clone3 does not.
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    recorder, born_inside = record_fork_into(manager, monkeypatch, threads=True)
    assert recorder.names() == ["fork"]
    assert not born_inside


def test_fork_into_reports_other_errors(tmp_path, monkeypatch):
    fake = FakeCgroupfs(tmp_path, "hybrid")  # only a hybrid host has a cgroup2 directory to clone into
    try:
        manager = fake.open("/pyrun/c1")
        manager.create()
        with pytest.raises(cgroups.CgroupError, match="unified/pyrun/c1"):
            record_fork_into(manager, monkeypatch, fail={"clone3": errno.EBUSY})
    finally:
        fake.close()


@pytest.mark.parametrize("code, hint", [
    (errno.ENOSPC, "a limit on namespaces was reached"),
    (errno.EAGAIN, "too many processes: check the cgroup's pids.max"),
])
def test_fork_into_names_namespaces_and_hint(tmp_path, monkeypatch, code, hint):
    from runtime.cgroups import base

    fake = FakeCgroupfs(tmp_path, "hybrid")
    try:
        manager = fake.open("/pyrun/c1")
        manager.create()
        monkeypatch.setattr(base, "_has_other_threads", lambda: False)
        with syscalls.recording() as recorder, pytest.raises(cgroups.CgroupError) as caught:
            recorder.fail["clone3"] = code
            manager.fork_into(syscalls.CLONE_NEWPID | syscalls.CLONE_NEWNET)
        assert str(caught.value).endswith("unified/pyrun/c1 and new namespaces")
        assert caught.value.hint.startswith(hint)
    finally:
        fake.close()


def test_pids_and_stats(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({"memory": {"limit": 64 * MiB}, "pids": {"limit": 10}})
    (fakefs.v1_mount("memory") / "pyrun/c1/cgroup.procs").write_text("12\n13\n")
    (fakefs.v1_mount("pids") / "pyrun/c1/cgroup.procs").write_text("13\n")
    (fakefs.v1_mount("memory") / "pyrun/c1/memory.usage_in_bytes").write_text(str(10 * MiB))
    (fakefs.v1_mount("memory") / "pyrun/c1/memory.stat").write_text(f"total_inactive_file {2 * MiB}\n")
    (fakefs.v1_mount("cpuacct") / "pyrun/c1/cpuacct.usage").write_text("5000000\n")
    (fakefs.v1_mount("pids") / "pyrun/c1/pids.current").write_text("2\n")
    assert manager.pids() == [12, 13]
    stats = manager.stats()
    assert stats.cpu_usage_ns == 5_000_000
    assert stats.memory_usage == 8 * MiB
    assert stats.memory_limit == 64 * MiB
    assert stats.pids_current == 2
    assert stats.pids_limit == 10


def test_stats_unlimited_is_none(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    stats = manager.stats()
    assert stats.memory_limit is None
    assert stats.pids_limit is None


def test_oom_killed_reads_oom_control(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    assert manager.oom_killed() is False
    control = fakefs.v1_mount("memory") / "pyrun/c1/memory.oom_control"
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert manager.oom_killed() is True


def test_freeze_and_thaw_write_freezer_state(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.freeze()
    assert read(fakefs, "freezer", "freezer.state") == "FROZEN"
    manager.thaw()
    assert read(fakefs, "freezer", "freezer.state") == "THAWED"


def test_remove_empty_cgroup_removes_each_directory(fakefs):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    with syscalls.recording() as recorder:
        manager.remove()
    removed = [call.args["path"] for call in recorder.calls if call.name == "rmdir"]
    assert removed == list(reversed(manager.all_directories()))
    assert "kill" not in recorder.names()


def test_remove_busy_cgroup_kills_first(fakefs, monkeypatch):
    manager = fakefs.open("/pyrun/c1")
    manager.create()
    (fakefs.v1_mount("pids") / "pyrun" / "c1" / "cgroup.procs").write_text("7\n")
    # The recorder performs no kill, so process 7 stays and remove times out.
    monkeypatch.setattr(files, "EMPTY_TIMEOUT_SECONDS", 0.05)
    with syscalls.recording() as recorder:
        recorder.fail["rmdir"] = errno.EBUSY  # as the kernel rejects a cgroup that has processes
        with pytest.raises(cgroups.CgroupError, match="still in"):
            manager.remove()
    names = recorder.names()
    assert names[0] == "rmdir"
    assert "kill" in names


def test_remove_missing_cgroup_is_noop(fakefs):
    with syscalls.recording() as recorder:
        fakefs.open("/pyrun/never-made").remove()
    assert recorder.calls == []


def test_every_write_has_explain_step(fakefs, written):
    from runtime.teaching import steps

    manager = fakefs.open("/pyrun/c1")
    manager.create()
    manager.apply({
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB},
        "cpu": {"shares": 512, "period": 100_000, "quota": 50_000, "cpus": "1"},
        "pids": {"limit": 10},
    })
    manager.add_process(4242)
    generic = steps.find_step("write_cgroup_file", {"path": "/x/unknown.file", "value": "1"})
    for path, value in written:
        found = steps.find_step("write_cgroup_file", {"path": path, "value": value})
        assert found is not generic, path
