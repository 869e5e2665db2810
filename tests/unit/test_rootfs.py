"""The container filesystem: safe mount targets, overlay options, mount steps, masked paths."""

import os

import pytest

from runtime import mounts, overlay, rootfs, syscalls
from runtime.errors import UsageError


def make_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


def test_open_in_root_creates_missing_dirs(tmp_path):
    root = make_root(tmp_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        os.close(rootfs.open_in_root(root_fd, "/new/deep/dir"))
    finally:
        os.close(root_fd)
    assert (root / "new" / "deep" / "dir").is_dir()


def test_open_in_root_creates_file_target(tmp_path):
    root = make_root(tmp_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        os.close(rootfs.open_in_root(root_fd, "/etc/hostname", is_dir=False))
    finally:
        os.close(root_fd)
    assert (root / "etc" / "hostname").is_file()


def test_proc_symlink_is_rejected(tmp_path):
    root = make_root(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "proc").symlink_to(outside)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(rootfs.RootfsError, match="symlink at /proc"):
            rootfs.open_in_root(root_fd, "/proc")
    finally:
        os.close(root_fd)


@pytest.mark.parametrize("destination", ["/dev/pts", "/dev/pts/ptmx"])
def test_dev_symlink_inside_path_is_rejected(tmp_path, destination):
    # The message names the symlink, also when the destination lies below it.
    root = make_root(tmp_path)
    (root / "dev").mkdir()
    (root / "dev" / "pts").symlink_to("/etc")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(rootfs.RootfsError, match=f"destination '{destination}': .* symlink at /dev/pts$"):
            rootfs.open_in_root(root_fd, destination, is_dir=False)
    finally:
        os.close(root_fd)
    assert not (root / "etc" / "ptmx").exists()


def opened_path(root, destination, **kwargs):
    """Open `destination` with open_in_root and return the host path the descriptor names."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = rootfs.open_in_root(root_fd, destination, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        os.close(fd)
    finally:
        os.close(root_fd)
    return target


def test_absolute_symlink_stays_inside_root(tmp_path):
    # An image's /data -> /etc must land on the image's /etc, not the host's.
    root = make_root(tmp_path)
    (root / "data").symlink_to("/etc")
    assert opened_path(root, "/data") == str(root / "etc")


def test_read_file_in_root_ignores_host_file(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "group").symlink_to("/etc/passwd")
    assert rootfs.read_file_in_root(str(root), "/etc/group") == "root:x:0:0:root:/root:/bin/sh\n"


def test_read_file_in_root_missing_is_empty(tmp_path):
    assert rootfs.read_file_in_root(str(make_root(tmp_path)), "/etc/shadow") == ""


def test_overlay_options_fit_a_page():
    assert overlay.overlay_options(2) == "lowerdir=l/1:l/0,upperdir=upper,workdir=work"
    assert len(overlay.overlay_options(overlay.MAX_LAYERS)) < 4096


def test_mount_overlay_uses_relative_paths(tmp_path):
    layers = []
    for index in range(45):
        layer = tmp_path / "layers" / f"{index:064x}"
        layer.mkdir(parents=True)
        layers.append(str(layer))
    container_dir = tmp_path / "container"
    container_dir.mkdir()
    with syscalls.recording() as recorder:
        overlay.mount_overlay(str(container_dir), layers, volatile=True)
    assert recorder.names() == ["chdir", "mount", "fchdir"]
    assert recorder.calls[0].args["path"] == str(container_dir)
    data = recorder.calls[1].args["data"]
    assert data.startswith("lowerdir=l/44:l/43:")
    assert data.endswith(",upperdir=upper,workdir=work,volatile")
    assert os.readlink(container_dir / "l" / "0") == layers[0]


def test_mount_overlay_names_few_layers_by_full_path(tmp_path):
    layers = [str(tmp_path / "layers" / name) for name in ("a" * 64, "b" * 64)]
    container_dir = tmp_path / "container"
    container_dir.mkdir()
    with syscalls.recording() as recorder:
        overlay.mount_overlay(str(container_dir), layers, volatile=True)
    assert recorder.names() == ["mount"]
    assert recorder.calls[0].args["target"] == str(container_dir / "rootfs")
    assert recorder.calls[0].args["data"] == (
        f"lowerdir={layers[1]}:{layers[0]},upperdir={container_dir}/upper,"
        f"workdir={container_dir}/work,volatile"
    )
    assert not (container_dir / "l").exists()
    assert overlay.linked_layers(str(container_dir)) == []


@pytest.mark.parametrize("mark", [",", ":", "\\", "="])
def test_mount_overlay_links_paths_that_options_cannot_hold(tmp_path, mark):
    layer = tmp_path / f"store{mark}root" / "layer"
    container_dir = tmp_path / "container"
    container_dir.mkdir()
    with syscalls.recording() as recorder:
        overlay.mount_overlay(str(container_dir), [str(layer)])
    assert recorder.names() == ["chdir", "mount", "fchdir"]
    assert recorder.calls[1].args["data"] == "lowerdir=l/0,upperdir=upper,workdir=work"
    assert overlay.linked_layers(str(container_dir)) == [str(container_dir / "l" / "0")]


def test_mount_overlay_does_not_remake_removed_container(tmp_path):
    # `rm -f` during a start deletes the container directory: the start must fail.
    with syscalls.recording() as recorder, pytest.raises(FileNotFoundError):
        overlay.mount_overlay(str(tmp_path / "removed"), [str(tmp_path / "layer")])
    assert recorder.names() == []
    assert not (tmp_path / "removed").exists()


def test_mask_and_readonly_paths_recorded(tmp_path):
    masked_dir = tmp_path / "dir"
    masked_dir.mkdir()
    masked_file = tmp_path / "file"
    masked_file.write_text("secret")
    with syscalls.recording() as recorder:
        rootfs.mask_paths([str(masked_dir), str(masked_file), str(tmp_path / "absent")])
        rootfs.make_readonly([str(masked_dir)])
    calls = recorder.calls
    assert [call.args["fstype"] for call in calls[:2]] == ["tmpfs", "none"]
    assert calls[0].args["flags"] == "MS_RDONLY"
    assert calls[1].args["source"] == "/dev/null"
    assert calls[1].args["flags"] == "MS_BIND"
    assert calls[2].args["flags"] == "MS_BIND|MS_REC"
    assert "MS_RDONLY" in calls[3].args["flags"]
    assert "MS_REMOUNT" in calls[3].args["flags"]
    assert len(calls) == 4


def test_pivot_sequence_recorded():
    with syscalls.recording() as recorder:
        rootfs.pivot_into("/store/containers/x/rootfs")
    assert recorder.names() == ["chdir", "pivot_root", "umount2", "chdir"]
    assert recorder.calls[2].args["flags"] == "MNT_DETACH"


@pytest.mark.parametrize(
    "options, flags, propagation, data",
    [
        (["nosuid", "noexec", "nodev"], syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV, 0, ""),
        (["rbind", "ro", "rprivate"], syscalls.MS_BIND | syscalls.MS_REC | syscalls.MS_RDONLY,
         syscalls.MS_PRIVATE | syscalls.MS_REC, ""),
        (["mode=755", "size=65536k", "strictatime"], syscalls.MS_STRICTATIME, 0, "mode=755,size=65536k"),
        (["ro", "rw"], 0, 0, ""),
    ],
)
def test_parse_options(options, flags, propagation, data):
    assert mounts.parse_options(options) == (flags, propagation, data)


def test_parse_volume(tmp_path):
    entry = mounts.parse_volume(f"{tmp_path}/host:/data:ro")
    assert entry == {"destination": "/data", "type": "bind", "source": f"{tmp_path}/host",
                     "options": ["rbind", "ro", "rprivate"]}
    assert not (tmp_path / "host").exists()


def test_parse_volume_keeps_a_file_source(tmp_path):
    host_file = tmp_path / "passwd"
    host_file.write_text("root:x:0:0::/root:/bin/sh\n")
    entry = mounts.parse_volume(f"{host_file}:/etc/passwd:ro")
    assert entry["source"] == str(host_file)
    assert host_file.is_file()


def test_create_missing_sources_makes_dirs(tmp_path):
    host_file = tmp_path / "notes.txt"
    host_file.write_text("kept\n")
    entries = [
        mounts.parse_volume(f"{tmp_path}/new/sub:/data"),
        mounts.parse_volume(f"{host_file}:/notes.txt"),
        mounts.parse_tmpfs("/scratch"),
    ]
    mounts.create_missing_sources(entries)
    assert (tmp_path / "new" / "sub").is_dir()
    assert host_file.read_text() == "kept\n"


@pytest.mark.parametrize("value", ["named:/data", "/host", "/host:relative", "/host:/data:zz", "/host:/"])
def test_parse_volume_invalid(value):
    with pytest.raises(UsageError):
        mounts.parse_volume(value)


def test_parse_mount_tmpfs():
    entry = mounts.parse_mount("type=tmpfs,target=/cache,tmpfs-size=1m,tmpfs-mode=1770")
    assert entry["type"] == "tmpfs"
    assert "size=1m" in entry["options"]
    assert "mode=1770" in entry["options"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("type=volume,target=/x", "unsupported --mount type"),
        ("type=tmpfs", "target is missing"),
        ("type=bind,source=/no/such/dir,target=/x", "does not exist"),
        ("type=tmpfs,target=/x,tmpfs-mode=rwx", "tmpfs-mode"),
        ("type=tmpfs,target=/x,colour=blue", "colour"),
    ],
)
def test_parse_mount_invalid(value, message):
    with pytest.raises(UsageError, match=message):
        mounts.parse_mount(value)


def test_parse_tmpfs_options():
    entry = mounts.parse_tmpfs("/run:size=1m,mode=1777")
    assert entry["options"] == ["nosuid", "nodev", "noexec", "size=1m", "mode=1777"]


def test_dangling_symlink_target_created_inside_root(tmp_path):
    # Images often link /etc/resolv.conf to a file that exists only at run time.
    root = make_root(tmp_path)
    (root / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    target = opened_path(root, "/etc/resolv.conf", is_dir=False)
    assert target == str(root / "run" / "systemd" / "resolve" / "stub-resolv.conf")
    assert (root / "run" / "systemd" / "resolve" / "stub-resolv.conf").is_file()


def test_symlink_loop_is_error(tmp_path):
    root = make_root(tmp_path)
    (root / "loop").symlink_to("loop")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError):
            rootfs.open_in_root(root_fd, "/loop/x")
    finally:
        os.close(root_fd)


def lookups_of(root_fd, destination, **kwargs):
    """Open `destination` with open_in_root; return the openat2 paths it asked the kernel for."""
    seen = []
    syscalls.add_listener(seen.append)
    try:
        os.close(rootfs.open_in_root(root_fd, destination, **kwargs))
    finally:
        syscalls.remove_listener(seen.append)
    return [call.args["path"] for call in seen if call.name == "openat2"]


def test_existing_destination_takes_one_lookup(tmp_path):
    root = make_root(tmp_path)
    (root / "dev" / "pts").mkdir(parents=True)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert lookups_of(root_fd, "/dev/pts") == ["dev/pts"]
    finally:
        os.close(root_fd)


def test_missing_destination_opens_its_parent_once(tmp_path):
    root = make_root(tmp_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert lookups_of(root_fd, "/etc/hosts", is_dir=False) == ["etc/hosts", "etc", "etc/hosts"]
    finally:
        os.close(root_fd)
    assert (root / "etc" / "hosts").is_file()


def test_dangling_middle_symlink_stays_inside_root(tmp_path):
    root = make_root(tmp_path)
    (root / "data").symlink_to("/srv/missing")
    assert opened_path(root, "/data/cache") == str(root / "srv" / "missing" / "cache")
