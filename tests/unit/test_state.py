"""Container records: IDs, name reservation, state.json updates and lookup."""

import json
import os

import pytest

from runtime import state
from runtime.errors import ContainerNotFoundError, NotFoundError, UsageError


def test_container_id_is_64_hex():
    container_id = state.new_container_id()
    assert len(container_id) == 64
    assert int(container_id, 16) >= 0
    assert container_id != state.new_container_id()


def test_record_fields_and_update(tmp_path):
    root = str(tmp_path)
    state.create_record(root, "a" * 64, {"name": "web", "image": "docker.io/library/busybox:latest"})
    record = state.update_record(root, "a" * 64, status=state.STATUS_EXITED, exit_code=3)
    on_disk = json.loads((tmp_path / "containers" / ("a" * 64) / "state.json").read_text())
    assert on_disk == record
    for key in ("id", "name", "image", "image_id", "created", "status", "pid", "exit_code", "started_at",
                "finished_at"):
        assert key in record
    assert record["status"] == "exited"
    assert record["exit_code"] == 3
    assert record["created"].endswith("Z")


def test_name_reserved_once(tmp_path):
    state.reserve_name(str(tmp_path), "web", "a" * 64)
    with pytest.raises(UsageError, match="already in use by container aaaaaaaaaaaa"):
        state.reserve_name(str(tmp_path), "web", "b" * 64)


@pytest.mark.parametrize("name", ["", "a", "-x", "a/b", "a b", "../x", "x" * 129, "x" * 300])
def test_invalid_names_rejected(tmp_path, name):
    with pytest.raises(UsageError, match="invalid container name"):
        state.reserve_name(str(tmp_path), name, "a" * 64)


def test_long_name_error_gives_length(tmp_path):
    with pytest.raises(UsageError, match="has 300 characters, more than the maximum of 128"):
        state.reserve_name(str(tmp_path), "x" * 300, "a" * 64)


def test_longest_valid_name_reserved(tmp_path):
    state.reserve_name(str(tmp_path), "x" * 128, "a" * 64)
    assert state.id_for_name(str(tmp_path), "x" * 128) == "a" * 64


def test_generated_name_is_reserved(tmp_path):
    name = state.reserve_generated_name(str(tmp_path), "c" * 64)
    assert "_" in name
    assert state.id_for_name(str(tmp_path), name) == "c" * 64


def test_release_name_only_by_owner(tmp_path):
    state.reserve_name(str(tmp_path), "web", "a" * 64)
    state.release_name(str(tmp_path), "web", "b" * 64)
    assert state.id_for_name(str(tmp_path), "web") == "a" * 64
    state.release_name(str(tmp_path), "web", "a" * 64)
    assert state.id_for_name(str(tmp_path), "web") is None


def test_find_by_name_id_and_prefix(tmp_path):
    root = str(tmp_path)
    state.create_record(root, "ab" + "0" * 62, {"name": "first"})
    state.create_record(root, "ac" + "0" * 62, {"name": "second"})
    state.reserve_name(root, "first", "ab" + "0" * 62)
    assert state.find_container(root, "first") == "ab" + "0" * 62
    assert state.find_container(root, "ac") == "ac" + "0" * 62
    with pytest.raises(UsageError, match="ambiguous"):
        state.find_container(root, "a")
    with pytest.raises(NotFoundError):
        state.find_container(root, "ff")


@pytest.mark.parametrize("count", [1, 2])
def test_find_rejects_empty_reference(tmp_path, count):
    # An empty string is a prefix of every ID: it must match none of them.
    root = str(tmp_path)
    for number in range(count):
        state.create_record(root, f"{number}" * 64, {"name": f"box{number}"})
    with pytest.raises(UsageError, match="empty string is not a container name"):
        state.find_container(root, "")


def test_remove_container_releases_name(tmp_path):
    root = str(tmp_path)
    state.create_record(root, "d" * 64, {"name": "gone"})
    state.reserve_name(root, "gone", "d" * 64)
    state.remove_container(root, "d" * 64)
    assert not (tmp_path / "containers" / ("d" * 64)).exists()
    assert state.id_for_name(root, "gone") is None
    assert state.list_records(root) == []


def test_remove_tree_keeps_link_targets(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "container"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file").write_text("x")
    (tree / "a" / "link").symlink_to(outside)
    (tree / "dangling").symlink_to("/nonexistent")
    os.mkfifo(tree / "fifo")
    (tree / "work" / "work").mkdir(parents=True)
    (tree / "work" / "work").chmod(0)
    state.remove_tree(str(tree))
    assert not tree.exists()
    assert (outside / "keep").exists()


def test_remove_tree_of_missing_path_or_link(tmp_path):
    state.remove_tree(str(tmp_path / "missing"))
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    state.remove_tree(str(tmp_path / "link"))
    assert target.exists()


def test_update_of_half_removed_container_adds_nothing(tmp_path):
    root = str(tmp_path)
    directory = state.container_dir(root, "e" * 64)
    state.create_record(root, "e" * 64, {"name": "gone"})
    # A removal that got this far: the lock and the record are gone, the directory not yet.
    os.unlink(os.path.join(directory, "lock"))
    os.unlink(os.path.join(directory, "state.json"))

    with pytest.raises(ContainerNotFoundError):
        state.update_record(root, "e" * 64, status="exited")
    assert os.listdir(directory) == []


def test_update_waiting_for_lock_sees_removal(tmp_path):
    import fcntl
    import threading
    import time

    root = str(tmp_path)
    directory = state.container_dir(root, "f" * 64)
    state.create_record(root, "f" * 64, {"name": "racing"})
    holder = os.open(os.path.join(directory, "lock"), os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    errors = []

    def update():
        try:
            state.update_record(root, "f" * 64, status="exited")
        except ContainerNotFoundError as err:
            errors.append(err)

    waiter = threading.Thread(target=update)
    waiter.start()
    time.sleep(0.2)  # the waiter is in flock(2) by now; if not, it finds no lock file, with the same result
    state.remove_tree(directory)
    os.close(holder)
    waiter.join(timeout=10)

    assert len(errors) == 1
    assert not os.path.exists(directory)


def test_generated_name_taken_gets_another(tmp_path):
    root = str(tmp_path)
    state.reserve_name(root, "brave_turing", "a" * 64)
    name = state.reserve_generated_name(root, "b" * 64, first="brave_turing")
    assert name != "brave_turing"
    assert state.id_for_name(root, name) == "b" * 64
