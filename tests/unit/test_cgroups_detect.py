"""Cgroup layout detection from mountinfo and /proc/filesystems text."""

import pytest

from runtime.cgroups import detect

FILESYSTEMS = "nodev\tcgroup\nnodev\tcgroup2\n"

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

PURE_V2 = """\
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def test_hybrid_layout():
    layout = detect.layout_from_text(HYBRID, FILESYSTEMS)
    assert layout.kind == "hybrid"
    assert layout.unified == "/sys/fs/cgroup/unified"


def test_comounted_controllers_share_mount():
    layout = detect.layout_from_text(HYBRID, FILESYSTEMS)
    assert layout.v1_mounts["cpu"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1_mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1_mounts["memory"] == "/sys/fs/cgroup/memory"


def test_named_hierarchy_ignored():
    layout = detect.layout_from_text(HYBRID, FILESYSTEMS)
    assert "name=systemd" not in layout.v1_mounts
    assert "xattr" not in layout.v1_mounts
    assert set(layout.v1_mounts) == {"cpu", "cpuacct", "memory"}


def test_pure_v1_layout():
    v1_only = "\n".join(line for line in HYBRID.splitlines() if "cgroup2" not in line)
    layout = detect.layout_from_text(v1_only, FILESYSTEMS)
    assert layout.kind == "v1"
    assert layout.unified is None


def test_pure_v2_layout():
    layout = detect.layout_from_text(PURE_V2, FILESYSTEMS)
    assert layout.kind == "v2"
    assert layout.unified == "/sys/fs/cgroup"
    assert layout.v1_mounts == {}


def test_escaped_mount_point():
    text = "25 22 0:23 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert detect.layout_from_text(text, FILESYSTEMS).unified == "/mnt/my cgroups"


@pytest.mark.parametrize("filesystems, hint", [(FILESYSTEMS, "mount -t cgroup2"), ("nodev\tcgroup\n", "no cgroup2")])
def test_no_hierarchy_mounted(filesystems, hint):
    text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    with pytest.raises(detect.CgroupError) as info:
        detect.layout_from_text(text, filesystems)
    assert "no cgroup hierarchy" in str(info.value)
    assert hint in info.value.hint


def test_this_host_detected():
    layout = detect.detect_layout()
    assert layout.kind in ("v1", "hybrid", "v2")


def test_filesystems_read_only_when_nothing_is_mounted(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(PURE_V2)
    missing = str(tmp_path / "no-filesystems")
    assert detect.detect_layout(str(mountinfo), missing).kind == "v2"
    mountinfo.write_text("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tcgroup\n")
    with pytest.raises(detect.CgroupError) as info:
        detect.detect_layout(str(mountinfo), str(filesystems))
    assert "no cgroup2" in info.value.hint
    with pytest.raises(detect.CgroupError, match="read the mount table"):
        detect.detect_layout(str(mountinfo), missing + "-too")
