"""The image store's names, lookups, removal and pruning, on a store built in the test."""

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from runtime.errors import NotFoundError, UsageError
from runtime.store import ImageInUseError, ImageStore
from runtime.store.pull import chain_ids, clean_stale_work


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_image(store: ImageStore, names: list[str], layer_texts: list[str],
              repo_digest: str = "") -> str:
    """Write an image as a pull would: blobs, layer directories, then the record."""
    store.layout.create()
    diff_ids = [sha(text.encode()) for text in layer_texts]
    chains = chain_ids(diff_ids)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "created": "2024-01-01T00:00:00.123456789Z",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image_id = sha(config)
    Path(store.layout.blob(image_id)).write_bytes(config)
    layers = []
    for text, diff_id, chain in zip(layer_texts, diff_ids, chains):
        blob = ("compressed " + text).encode()
        Path(store.layout.blob(sha(blob))).write_bytes(blob)
        directory = Path(store.layout.layer(chain))
        directory.mkdir(exist_ok=True)
        (directory / "file").write_text(text)
        layers.append({"digest": sha(blob), "diff_id": diff_id, "chain_id": chain,
                       "size": len(blob), "media_type": "x", "unpacked_size": len(text)})
    with store.index.update() as data:
        data["images"][image_id] = {
            "repo_digests": [repo_digest] if repo_digest else [],
            "layers": layers, "size": sum(len(t) for t in layer_texts),
            "pulled": "2024-01-02T00:00:00Z", "manifest_blobs": [],
        }
        for name in names:
            data["references"][name] = image_id
    return image_id


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "root")


def test_chain_ids_follow_image_spec():
    first, second = sha(b"a"), sha(b"b")
    assert chain_ids([first, second]) == [first, sha(f"{first} {second}".encode())]


def test_lookup_by_name_id_and_digest(store):
    digest = "sha256:" + "d" * 64
    image_id = add_image(store, ["docker.io/library/busybox:latest"], ["base"],
                         repo_digest=f"docker.io/library/busybox@{digest}")
    assert store.lookup("busybox").id == image_id
    assert store.lookup("busybox").reference == "docker.io/library/busybox:latest"
    assert store.lookup(image_id).id == image_id
    assert store.lookup(image_id.removeprefix("sha256:")[:12]).id == image_id
    assert store.lookup(f"busybox@{digest}").id == image_id
    assert store.lookup("busybox:other") is None
    assert store.lookup("httpd") is None


def test_lookup_gives_layer_dirs_lowest_first(store):
    add_image(store, ["docker.io/library/two:latest"], ["lower", "upper"])
    image = store.lookup("two")
    assert [open(f"{d}/file").read() for d in image.layer_dirs] == ["lower", "upper"]
    assert image.config["os"] == "linux"


def test_lookup_does_not_import_requests(store):
    add_image(store, ["docker.io/library/busybox:latest"], ["base"])
    sys.modules.pop("requests", None)
    store.lookup("busybox")
    assert "requests" not in sys.modules


def test_get_missing_image_names_it(store):
    with pytest.raises(NotFoundError, match="no such image: nothere"):
        store.get("nothere")


def test_tag_adds_a_name(store):
    image_id = add_image(store, ["docker.io/library/busybox:latest"], ["base"])
    assert store.tag("busybox", "myrepo/box:v1") == "docker.io/myrepo/box:v1"
    assert store.lookup("myrepo/box:v1").id == image_id
    with pytest.raises(NotFoundError):
        store.tag("absent", "x:y")


def test_rmi_of_one_of_two_names_only_untags(store):
    image_id = add_image(store, ["docker.io/library/a:latest", "docker.io/library/b:latest"],
                         ["base"])
    assert store.remove("a") == [("Untagged", "a:latest")]
    assert store.lookup("b").id == image_id


def test_rmi_by_id_with_two_names_needs_force(store):
    image_id = add_image(store, ["docker.io/library/a:latest", "docker.io/library/b:latest"],
                         ["base"])
    with pytest.raises(UsageError, match="must be forced"):
        store.remove(image_id)
    steps = store.remove(image_id, force=True)
    assert ("Deleted", image_id) in steps


def test_rmi_deletes_unshared_layers_and_blobs(store):
    shared_id = add_image(store, ["docker.io/library/keep:latest"], ["base"])
    gone_id = add_image(store, ["docker.io/library/gone:latest"], ["base", "top"])
    keep_dirs = store.lookup("keep").layer_dirs
    gone_dirs = store.lookup("gone").layer_dirs
    assert store.remove("gone") == [("Untagged", "gone:latest"), ("Deleted", gone_id)]
    assert store.lookup("gone") is None
    assert all(os.path.isdir(d) for d in keep_dirs)
    assert not os.path.exists(gone_dirs[1])
    assert not os.path.exists(store.layout.blob(gone_id))
    assert os.path.exists(store.layout.blob(shared_id))


def test_rmi_removes_stale_lock_files(store):
    add_image(store, ["docker.io/library/gone:latest"], ["base"])
    stale = Path(store.layout.lock_file("blob-" + "a" * 64))
    stale.touch()
    store.remove("gone")
    assert not stale.exists()
    assert os.path.exists(store.layout.lock_file("images"))


def test_rmi_of_image_used_by_container(store):
    image_id = add_image(store, ["docker.io/library/busy:latest"], ["base"])
    container = Path(store.layout.containers) / ("c" * 64)
    container.mkdir(parents=True)
    (container / "state.json").write_text(json.dumps({"image_id": image_id}))
    with pytest.raises(ImageInUseError, match="container cccccccccccc is using it"):
        store.remove("busy")
    assert store.remove("busy", force=True) == [("Untagged", "busy:latest")]
    # The image stays, nameless, for the container's sake.
    assert store.lookup(image_id) is not None
    assert store.prune() == ([], 0)


def test_prune_removes_dangling_images(store):
    named = add_image(store, ["docker.io/library/named:latest"], ["one"])
    dangling = add_image(store, [], ["two"])
    removed, freed = store.prune()
    assert removed == [dangling]
    assert freed > 0
    assert store.lookup(dangling) is None
    assert store.lookup(named) is not None


def test_list_images(store):
    add_image(store, ["docker.io/library/a:latest", "docker.io/library/a:v2"], ["x"])
    [image] = store.list_images()
    assert image.repo_tags == ["docker.io/library/a:latest", "docker.io/library/a:v2"]


def test_stale_work_of_dead_processes_removed(store):
    store.layout.create()
    dead_pid = 2 ** 22 + 1  # above the kernel's maximum PID, so no such process
    tmp = Path(store.layout.tmp)
    stale = [tmp / f"unpack-{dead_pid}-abc", tmp / f"trash-{'a' * 64}-{dead_pid}", tmp / f"init-{'c' * 64}-{dead_pid}"]
    alive = [tmp / f"unpack-{os.getpid()}-abc", tmp / f"trash-{'b' * 64}-{os.getppid()}",
             tmp / f"init-{'d' * 64}-{os.getppid()}"]
    for path in stale + alive:
        path.mkdir()
    clean_stale_work(store.layout)
    for path in stale:
        assert not path.exists()
    for path in alive:
        assert path.exists()
