"""The init layer: the mountpoints an image lacks, built once per image in the store."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

from runtime import overlay
from runtime.store import init_layer

IMAGE_ID = "sha256:" + "ab" * 32
OLD_TIME_NS = 1_700_000_000 * 10**9


def make_image(tmp_path, *layers: dict[str, str | None]):
    """Build layer directories from {path: file text, or None for a directory}, lowest first."""
    directories = []
    for number, entries in enumerate(layers):
        layer = tmp_path / "layers" / str(number)
        layer.mkdir(parents=True)
        for path, text in entries.items():
            target = layer / path
            if text is None:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        directories.append(str(layer))
    return SimpleNamespace(id=IMAGE_ID, layer_dirs=directories)


def test_adds_only_missing_mountpoints(tmp_path):
    image = make_image(tmp_path, {"proc": None, "sys": None, "dev": None, "etc/hostname": "old\n"})
    root = str(tmp_path / "store")
    layers = init_layer.rootfs_layers(root, image)
    init_dir = layers[-1]
    assert layers[:-1] == image.layer_dirs
    assert init_dir == init_layer.init_layer_path(root, IMAGE_ID)
    assert sorted(os.listdir(init_dir)) == ["etc"]
    assert sorted(os.listdir(os.path.join(init_dir, "etc"))) == ["hosts", "resolv.conf"]
    assert os.path.getsize(os.path.join(init_dir, "etc", "hosts")) == 0


def test_missing_directories_are_made(tmp_path):
    image = make_image(tmp_path, {"bin/sh": "#!"})
    init_dir = init_layer.rootfs_layers(str(tmp_path / "store"), image)[-1]
    for name in ("proc", "sys", "dev", "etc"):
        assert stat.S_IMODE(os.stat(os.path.join(init_dir, name)).st_mode) == 0o755
    assert os.path.isfile(os.path.join(init_dir, "etc", "hostname"))


def test_image_directory_attributes_are_kept(tmp_path):
    image = make_image(tmp_path, {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    etc = os.path.join(image.layer_dirs[0], "etc")
    os.chmod(etc, 0o750)
    os.utime(etc, ns=(OLD_TIME_NS, OLD_TIME_NS))
    init_dir = init_layer.rootfs_layers(str(tmp_path / "store"), image)[-1]
    copied = os.stat(os.path.join(init_dir, "etc"))
    assert stat.S_IMODE(copied.st_mode) == 0o750
    assert copied.st_mtime_ns == OLD_TIME_NS


def test_topmost_layer_directory_wins(tmp_path):
    # The topmost layer that has /etc gives its attributes, as overlayfs does.
    image = make_image(tmp_path, {"etc/group": "root:x:0:\n"}, {"etc/passwd": "root:x:0:0::/:/bin/sh\n"})
    os.chmod(os.path.join(image.layer_dirs[0], "etc"), 0o700)
    os.chmod(os.path.join(image.layer_dirs[1], "etc"), 0o711)
    init_dir = init_layer.rootfs_layers(str(tmp_path / "store"), image)[-1]
    assert stat.S_IMODE(os.stat(os.path.join(init_dir, "etc")).st_mode) == 0o711


def test_symlinked_etc_is_left_to_the_container(tmp_path):
    image = make_image(tmp_path, {"proc": None, "sys": None, "dev": None, "data/etc": None})
    os.symlink("data/etc", os.path.join(image.layer_dirs[0], "etc"))
    root = str(tmp_path / "store")
    assert init_layer.rootfs_layers(root, image) == image.layer_dirs
    assert os.listdir(init_layer.init_layer_path(root, IMAGE_ID)) == []


def test_empty_init_layer_is_not_stacked(tmp_path):
    image = make_image(tmp_path, {"proc": None, "sys": None, "dev": None, "etc/hostname": "", "etc/hosts": "",
                                  "etc/resolv.conf": ""})
    root = str(tmp_path / "store")
    assert init_layer.rootfs_layers(root, image) == image.layer_dirs
    assert init_layer.rootfs_layers(root, image) == image.layer_dirs


def test_umask_does_not_narrow_modes(tmp_path):
    image = make_image(tmp_path, {"bin/sh": "#!"})
    previous = os.umask(0o077)
    try:
        init_dir = init_layer.rootfs_layers(str(tmp_path / "store"), image)[-1]
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(os.path.join(init_dir, "etc")).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(init_dir, "etc", "hosts")).st_mode) == 0o644


def test_image_directory_xattrs_are_kept(tmp_path):
    image = make_image(tmp_path, {"etc/passwd": ""})
    os.setxattr(os.path.join(image.layer_dirs[0], "etc"), "user.origin", b"image")
    init_dir = init_layer.rootfs_layers(str(tmp_path / "store"), image)[-1]
    assert os.getxattr(os.path.join(init_dir, "etc"), "user.origin") == b"image"


def test_image_at_layer_limit_gets_none(tmp_path):
    image = make_image(tmp_path, *([{}] * overlay.MAX_LAYERS))
    root = str(tmp_path / "store")
    assert init_layer.rootfs_layers(root, image) == image.layer_dirs
    assert not os.path.exists(init_layer.init_layers_dir(root))


def test_image_without_layers_gets_none(tmp_path):
    image = SimpleNamespace(id=IMAGE_ID, layer_dirs=[])
    assert init_layer.rootfs_layers(str(tmp_path / "store"), image) == []


def test_made_once_per_image(tmp_path):
    image = make_image(tmp_path, {"etc/passwd": ""})
    root = str(tmp_path / "store")
    init_dir = init_layer.rootfs_layers(root, image)[-1]
    marker = os.path.join(init_dir, "marker")
    open(marker, "w").close()
    assert init_layer.rootfs_layers(root, image)[-1] == init_dir
    assert os.path.exists(marker)


def test_one_made_elsewhere_first_is_kept(tmp_path):
    # Another container of the image renamed its layer into place first.
    image = make_image(tmp_path, {"etc/passwd": ""})
    root = str(tmp_path / "store")
    other = init_layer.init_layer_path(root, IMAGE_ID)
    os.makedirs(other)
    open(os.path.join(other, "marker"), "w").close()
    init_layer._make_init_layer(root, image, other)
    assert os.listdir(other) == ["marker"]
    assert os.listdir(os.path.join(root, "tmp")) == []


def test_failure_falls_back_to_image_layers(tmp_path):
    image = make_image(tmp_path, {"etc/passwd": ""})
    root = tmp_path / "store"
    root.mkdir()
    (root / "tmp").write_text("a file where the store's tmp directory belongs")
    assert init_layer.rootfs_layers(str(root), image) == image.layer_dirs


def test_unused_init_layers_are_removed(tmp_path):
    root = str(tmp_path / "store")
    kept_id, removed_id = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    for image_id in (kept_id, removed_id):
        os.makedirs(os.path.join(init_layer.init_layer_path(root, image_id), "etc"))
    init_layer.remove_unused_init_layers(root, {kept_id})
    assert os.listdir(init_layer.init_layers_dir(root)) == ["1" * 64]
    assert os.listdir(os.path.join(root, "tmp")) == []
