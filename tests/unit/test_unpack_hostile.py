"""Hostile layers: every write stays inside the layer directory, or the layer is rejected.

Each test keeps a sentinel directory beside the layer directory, with a
file, a subdirectory and known modes and times, and checks that nothing in
it changed. Rejected layers must name the entry and the layer digest, and
leave no layer directory behind.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest

from runtime.unpack import LayerError, unpack_layer
from tests.unit.test_unpack import DIGEST, directory, entry, hardlink, symlink, tar_bytes, write_blob


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory outside the layer that no layer may touch."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.chmod(outside / "passwd", 0o644)
    os.utime(outside / "passwd", (1_000_000_000, 1_000_000_000))
    os.utime(outside / "sub", (1_000_000_000, 1_000_000_000))
    return outside


def snapshot(root: Path) -> dict[str, tuple]:
    """Record type, mode, owner, size, mtime and content hash of everything under `root`."""
    result = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        result[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest)
    return result


def unpack_hostile(tmp_path: Path, entries) -> Path:
    """Unpack into tmp_path/store/layer, two levels below the sentinel's parent."""
    blob = write_blob(tmp_path, tar_bytes(entries), "hostile.tar")
    dest = tmp_path / "store" / "layer"
    dest.mkdir(parents=True)
    unpack_layer(blob, dest, digest=DIGEST)
    return dest


def assert_rejected(tmp_path: Path, entries, entry_name: str) -> LayerError:
    with pytest.raises(LayerError) as failure:
        unpack_hostile(tmp_path, entries)
    message = str(failure.value)
    assert repr(entry_name) in message
    assert DIGEST in message
    assert not (tmp_path / "store" / "layer").exists()
    return failure.value


def test_dotdot_entry_rejected(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [entry("../../outside/evil", data=b"x")], "../../outside/evil")
    assert snapshot(sentinel) == before


def test_dotdot_inside_name_rejected(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [entry("a/../../../outside/passwd", data=b"x")], "a/../../../outside/passwd")
    assert snapshot(sentinel) == before


def test_absolute_name_confined(tmp_path, sentinel):
    before = snapshot(sentinel)
    name = str(sentinel / "passwd")
    dest = unpack_hostile(tmp_path, [entry(name, data=b"evil")])
    assert snapshot(sentinel) == before
    assert (dest / name.lstrip("/")).read_bytes() == b"evil"


def test_write_through_symlink_confined(tmp_path, sentinel):
    before = snapshot(sentinel)
    # The layer has its own directories at the names the symlinks point to,
    # so that the writes through the symlinks succeed.
    dest = unpack_hostile(tmp_path, [
        directory("outside/"),
        directory(str(sentinel) + "/"),
        symlink("escape", "../../outside"),
        entry("escape/passwd", data=b"evil"),
        symlink("absolute", str(sentinel)),
        directory("absolute/sub/", mode=0o777),
        entry("absolute/new", data=b"evil"),
    ])
    assert snapshot(sentinel) == before
    # Both symlinks resolve inside the layer, where the files land.
    assert (dest / "outside/passwd").read_bytes() == b"evil"
    assert (dest / str(sentinel).lstrip("/") / "new").read_bytes() == b"evil"
    assert stat.S_IMODE((dest / str(sentinel).lstrip("/") / "sub").stat().st_mode) == 0o777


def test_symlink_to_host_root_confined(tmp_path):
    passwd = Path("/etc/passwd")
    before = passwd.stat()
    dest = unpack_hostile(tmp_path, [symlink("root", "/"), entry("root/etc/passwd", data=b"evil")])
    after = passwd.stat()
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (before.st_mtime_ns, before.st_size, before.st_ino)
    assert (dest / "etc/passwd").read_bytes() == b"evil"


def test_file_over_symlink_replaces_link(tmp_path, sentinel):
    before = snapshot(sentinel)
    dest = unpack_hostile(tmp_path, [
        symlink("victim", str(sentinel / "passwd")),
        entry("victim", data=b"evil", mode=0o777, mtime=5),
    ])
    assert snapshot(sentinel) == before
    assert (dest / "victim").lstat().st_size == 4
    assert not (dest / "victim").is_symlink()


def test_directory_over_symlink_replaces_link(tmp_path, sentinel):
    before = snapshot(sentinel)
    dest = unpack_hostile(tmp_path, [
        symlink("victim", str(sentinel)),
        directory("victim/", mode=0o700, mtime=5),
    ])
    assert snapshot(sentinel) == before
    assert not (dest / "victim").is_symlink()
    assert (dest / "victim").is_dir()


def test_fifo_over_symlink_replaces_link(tmp_path, sentinel):
    before = snapshot(sentinel)
    unpack_hostile(tmp_path, [
        symlink("victim", str(sentinel / "passwd")),
        entry("victim", tarfile.FIFOTYPE, mode=0o777),
    ])
    assert snapshot(sentinel) == before


def test_hardlink_outside_rejected(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [hardlink("pw", "../../outside/passwd")], "pw")
    assert snapshot(sentinel) == before


def test_hardlink_absolute_host_path_not_linked(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [hardlink("pw", str(sentinel / "passwd"))], "pw")
    assert snapshot(sentinel) == before
    assert os.stat(sentinel / "passwd").st_nlink == 1


def test_hardlink_through_symlink_confined(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [
        symlink("out", "../../outside"),
        hardlink("pw", "out/passwd"),
    ], "pw")
    assert snapshot(sentinel) == before
    assert os.stat(sentinel / "passwd").st_nlink == 1


def test_write_over_hardlink_replaces_link(tmp_path, sentinel):
    before = snapshot(sentinel)
    dest = unpack_hostile(tmp_path, [
        symlink("link", str(sentinel / "passwd")),
        hardlink("alias", "link"),
        entry("alias", data=b"evil"),
    ])
    assert snapshot(sentinel) == before
    assert (dest / "alias").read_bytes() == b"evil"
    assert os.readlink(dest / "link") == str(sentinel / "passwd")


@pytest.mark.parametrize("name", [".", "./", "/", "a/.."])
def test_root_replaced_by_symlink_rejected(tmp_path, sentinel, name):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [symlink(name, str(sentinel))], name)
    assert snapshot(sentinel) == before


def test_root_replaced_by_file_rejected(tmp_path):
    assert_rejected(tmp_path, [entry(".", data=b"x")], ".")


@pytest.mark.parametrize("name", [".wh..", ".wh.", ".wh...", "sub/.wh.."])
def test_whiteout_of_parent_or_self_rejected(tmp_path, sentinel, name):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [entry(name)], name)
    assert snapshot(sentinel) == before


def test_write_through_dangling_symlink_rejected(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [symlink("out", str(sentinel)), entry("out/passwd", data=b"evil")], "out/passwd")
    assert snapshot(sentinel) == before


@pytest.mark.root
def test_whiteout_through_symlink_confined(tmp_path, sentinel):
    before = snapshot(sentinel)
    dest = unpack_hostile(tmp_path, [
        directory("outside/"),
        symlink("out", "../../outside"),
        entry("out/.wh.passwd"),
    ])
    assert snapshot(sentinel) == before
    assert stat.S_ISCHR((dest / "outside/passwd").lstat().st_mode)


@pytest.mark.root
def test_opaque_marker_through_symlink_confined(tmp_path, sentinel):
    before = snapshot(sentinel)
    dest = unpack_hostile(tmp_path, [
        directory(str(sentinel) + "/"),
        symlink("out", str(sentinel)),
        entry("out/.wh..wh..opq"),
    ])
    assert snapshot(sentinel) == before
    assert "trusted.overlay.opaque" not in os.listxattr(sentinel)
    assert os.getxattr(dest / str(sentinel).lstrip("/"), "trusted.overlay.opaque") == b"y"


def test_symlink_loop_rejected(tmp_path, sentinel):
    before = snapshot(sentinel)
    assert_rejected(tmp_path, [symlink("a", "b"), symlink("b", "a"), entry("a/x", data=b"x")], "a/x")
    assert snapshot(sentinel) == before


def test_file_under_regular_file_rejected(tmp_path):
    assert_rejected(tmp_path, [entry("f", data=b"x"), entry("f/g", data=b"y")], "f/g")


def test_truncated_layer_rejected_and_removed(tmp_path):
    data = tar_bytes([entry("big", data=b"x" * 100_000)])[:50_000]
    blob = write_blob(tmp_path, data)
    dest = tmp_path / "store" / "layer"
    dest.mkdir(parents=True)
    with pytest.raises(LayerError) as failure:
        unpack_layer(blob, dest, digest=DIGEST)
    assert DIGEST in str(failure.value)
    assert not dest.exists()


@pytest.mark.parametrize("mtime", ["1e30", "-1e30", "nan"])
def test_unrepresentable_mtime_rejected(tmp_path, mtime):
    assert_rejected(tmp_path, [entry("f", data=b"x", pax={"mtime": mtime})], "f")
