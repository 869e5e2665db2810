"""`pyrun explain TOPIC`: the lessons, checked against the live host."""

import os
from pathlib import Path

from runtime.cli import main
from runtime.teaching import lessons


def host_cgroup_layout() -> str:
    """Detect the layout another way than the lesson does: by marker files."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        return "hybrid"
    return "v1"


def test_cgroups_lesson_names_host_layout():
    text = lessons.cgroups_lesson()
    assert f"This host's layout: {host_cgroup_layout()}\n" in text
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        assert f"  {line}\n" in text


def test_decode_capabilities_by_bit():
    assert lessons.decode_capabilities(0b11) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]
    assert lessons.decode_capabilities(1 << 21) == ["CAP_SYS_ADMIN"]
    assert lessons.decode_capabilities(1 << 63) == ["CAP_63"]


def test_capabilities_lesson_shows_live_sets():
    status = Path("/proc/self/status").read_text()
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    text = lessons.capabilities_lesson()
    assert f"  effective  {effective}" in text
    assert "CAP_NET_BIND_SERVICE" in text


def test_namespaces_lesson_shows_live_inodes():
    text = lessons.namespaces_lesson()
    for name in ("mnt", "uts", "ipc", "pid", "net"):
        assert os.readlink(f"/proc/self/ns/{name}") in text


def test_network_lesson_lists_each_interface():
    text = lessons.network_lesson()
    for name in os.listdir("/sys/class/net"):
        assert f"\n  {name} " in text
    assert "  lo               loopback" in text


def test_overlay_lesson_counts_overlay_mounts():
    count = sum(1 for line in Path("/proc/self/mountinfo").read_text().splitlines() if " - overlay " in line)
    text = lessons.overlay_lesson("/srv/store")
    assert f"Overlay mounts visible now: {count}\n" in text
    assert "/srv/store/layers/" in text


def test_image_lesson_empty_store(tmp_path):
    text = lessons.image_lesson(str(tmp_path), None)
    assert f"No image in {tmp_path} yet. Try: sudo pyrun pull busybox" in text


def test_describe_image_lists_layers(tmp_path):
    from runtime.store.images import Image

    layer_dir = tmp_path / "layer"
    (layer_dir / "bin").mkdir(parents=True)
    (layer_dir / "bin" / "busybox").write_bytes(b"x" * 10)
    config = {"os": "linux", "architecture": "amd64", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"diff_ids": ["sha256:" + "d" * 64]}}
    record = {"manifest_digest": "sha256:" + "m" * 64, "from_index": True, "platform": "linux/amd64",
              "layers": [{"digest": "sha256:" + "l" * 64, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "size": 7, "diff_id": "sha256:" + "d" * 64}]}
    image = Image("sha256:" + "c" * 64, "docker.io/library/busybox:latest", config, [str(layer_dir)], record,
                  ["docker.io/library/busybox:latest"])
    lines = lessons.describe_image(image)
    assert lines[0] == "docker.io/library/busybox:latest"
    assert "  manifest  sha256:" + "m" * 64 in lines
    assert "            one manifest per platform; pyrun chose linux/amd64" in lines
    assert "            linux/amd64, command ['sh'], working directory /, 1 environment variables" in lines
    assert "    1. sha256:" + "l" * 64 in lines
    assert f"       unpacked in {layer_dir}: 1 files, 10 bytes" in lines


def test_cli_lists_topics(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Topics: namespaces, overlay, cgroups, network, capabilities, image\n")


def test_cli_prints_lesson(capsys, tmp_path):
    assert main(["--root", str(tmp_path), "explain", "overlay"]) == 0
    assert f"{tmp_path}/layers/" in capsys.readouterr().out


def test_cli_rejects_image_for_other_topic(capsys):
    assert main(["explain", "cgroups", "busybox"]) == 125
    assert "pyrun explain cgroups takes no image argument; got 'busybox'" in capsys.readouterr().err


def test_cli_topics_match_lessons():
    from runtime.cli import teach

    assert teach.TOPICS == list(lessons.TOPICS)
