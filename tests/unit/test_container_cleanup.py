"""What the clean-up of a foreground `run` and of a monitor leaves in the store once the container exited."""

import errno
import json
import os

import pytest

from runtime import container, lifecycle, state, syscalls
from runtime.errors import PyrunError


class FakeCgroup:
    """A cgroup manager whose remove() fails when `fails` is set."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.removed = False

    def oom_killed(self) -> bool:
        return False

    def remove(self) -> None:
        if self.fails:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        self.removed = True


def created_container(root: str, cgroup: FakeCgroup) -> container.Container:
    container_id = state.new_container_id()
    state.create_record(root, container_id, {"name": "web"})
    directory = state.container_dir(root, container_id)
    spec = {"root": {"path": "rootfs"}}
    return container.Container(root, container_id, "web", directory, spec, cgroup=cgroup)


def test_rm_deletes_cleaned_container(tmp_path):
    cgroup = FakeCgroup(fails=False)
    created = created_container(str(tmp_path), cgroup)
    with syscalls.recording() as recorder:
        container.cleanup(created, 0, remove=True)
    assert cgroup.removed
    assert [call.name for call in recorder.calls] == ["umount2"]
    assert not os.path.exists(created.directory)


def test_rm_keeps_record_when_cleanup_fails(tmp_path):
    created = created_container(str(tmp_path), FakeCgroup(fails=True))
    with syscalls.recording(), pytest.raises(PyrunError) as raised:
        container.cleanup(created, 3, remove=True)
    assert f"pyrun rm {created.id[:12]}" in raised.value.hint
    record = state.load_record(str(tmp_path), created.id)
    assert record["status"] == state.STATUS_EXITED
    assert record["exit_code"] == 3


def detached_rm_container(root: str) -> str:
    """Create the record and config.json of an exited `run -d --rm` container."""
    container_id = state.new_container_id()
    state.create_record(root, container_id, {"name": "job", "auto_remove": True, "status": state.STATUS_EXITED})
    config = os.path.join(state.container_dir(root, container_id), "config.json")
    with open(config, "w", encoding="utf-8") as file:
        json.dump({"linux": {"cgroupsPath": f"/pyrun-unit-test/{container_id}"}}, file)
    return container_id


def test_cleanup_helper_removes_rm_container(tmp_path):
    container_id = detached_rm_container(str(tmp_path))
    with syscalls.recording():
        status = lifecycle.run_cleanup_helper(str(tmp_path), container_id, 0, False)
    assert status == 0
    assert not os.path.exists(state.container_dir(str(tmp_path), container_id))


def test_cleanup_helper_keeps_rm_record_on_failure(tmp_path, capsys):
    container_id = detached_rm_container(str(tmp_path))
    with syscalls.recording() as recorder:
        recorder.fail["umount2"] = errno.EBUSY
        status = lifecycle.run_cleanup_helper(str(tmp_path), container_id, 0, False)
    assert status == 1
    record = state.load_record(str(tmp_path), container_id)
    assert record["status"] == state.STATUS_EXITED
    assert "umount2" in record["error"]
    assert "umount2" in capsys.readouterr().err
