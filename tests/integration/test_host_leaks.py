"""The leak guard of tests/conftest.py: it must see each kind of leftover, and only this session's."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from runtime import cgroups, syscalls
from tests.conftest import run_pyrun
from tests.fixtures import hostleaks

pytestmark = [pytest.mark.root]


@pytest.fixture
def basetemp(tmp_path_factory):
    return tmp_path_factory.getbasetemp()


def kinds(leaks: list[hostleaks.Leak]) -> set[str]:
    return {leak.kind for leak in leaks}


def test_guard_sees_mount(tmp_path, basetemp):
    before = hostleaks.take_snapshot()
    point = tmp_path / "mnt"
    point.mkdir()
    syscalls.mount("tmpfs", str(point), "tmpfs", 0, "size=1m")
    try:
        leaks = hostleaks.find_leaks(before, basetemp)
        assert [str(leak) for leak in leaks] == [f"mount {point}"]
    finally:
        assert hostleaks.remove_leaks(leaks) == []
    assert str(point) not in hostleaks.mount_points()


def test_guard_sees_cgroup_without_record(basetemp):
    before = hostleaks.take_snapshot()
    container_id = secrets.token_hex(32)
    manager = cgroups.open_cgroup(f"/pyrun/{container_id}")
    manager.create()
    try:
        leaks = hostleaks.find_leaks(before, basetemp)
        assert [str(leak) for leak in leaks] == [f"cgroup pyrun/{container_id}"]
    finally:
        assert hostleaks.remove_leaks(leaks) == []
    assert not manager.exists()


def test_guard_sees_process_in_test_dir(tmp_path, basetemp):
    before = hostleaks.take_snapshot()
    process = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        leaks = hostleaks.find_leaks(before, basetemp)
        assert [leak.target for leak in leaks] == [str(process.pid)]
        assert leaks[0].detail == "sleep 60"
    finally:
        assert hostleaks.remove_leaks(leaks) == []
    assert process.wait(timeout=10) == -9


def test_guard_ignores_other_sessions(tmp_path, basetemp):
    before = hostleaks.take_snapshot()
    process = subprocess.Popen(["sleep", "60"], cwd="/")
    try:
        assert hostleaks.find_leaks(before, basetemp) == []
    finally:
        process.kill()
        process.wait()


@pytest.mark.registry
def test_guard_sees_detached_container(pyrun_env, store_root, basetemp):
    before = hostleaks.take_snapshot()
    started = run_pyrun("run", "-d", "--network", "none", "busybox", "sleep", "60", env=pyrun_env)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        leaks = hostleaks.find_leaks(before, basetemp)
        assert kinds(leaks) == {"mount", "cgroup", "process"}
        assert f"mount {store_root}/containers/{container_id}/rootfs" in [str(leak) for leak in leaks]
        assert f"cgroup pyrun/{container_id}" in [str(leak) for leak in leaks]
        details = [leak.detail for leak in leaks if leak.kind == "process"]
        assert "sleep 60" in details
        assert any("monitor.py" in detail for detail in details)
    finally:
        removed = run_pyrun("rm", "-f", container_id, env=pyrun_env)
    assert removed.returncode == 0, removed.stderr
    # The container's pid 1 is killed, and its monitor exits once it has cleaned up.
    assert hostleaks.wait_for_leaks(before, basetemp) == []


def test_guard_waits_for_late_clean_up(tmp_path, basetemp):
    # A process that ends within the grace time is no leak, and the guard
    # returns only once it has ended (a zombie counts as ended).
    before = hostleaks.take_snapshot()
    process = subprocess.Popen(["sleep", "1"], cwd=tmp_path)
    assert hostleaks.wait_for_leaks(before, basetemp, grace=30) == []
    assert process.poll() == 0
