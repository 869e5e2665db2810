"""Unpacking one layer: each test builds a small tar and checks the exact tree.

Tests that chown to other users, create device nodes or whiteouts, or set
trusted.* and security.* xattrs need root and are marked `root`. The others
run as any user. The helpers at the top are shared with the other
test_unpack_*.py files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from runtime.unpack import LayerError, unpack_layer

DIGEST = "sha256:" + "ab" * 32
MTIME = 1_650_811_740


# -- Building layers -------------------------------------------------------------


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", mode: int = 0o644,
          uid: int = 0, gid: int = 0, mtime: int = MTIME, linkname: str = "",
          device: tuple[int, int] = (0, 0), pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    """Describe one tar member and its data."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = uid
    info.gid = gid
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = device
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if pax:
        info.pax_headers = dict(pax)
    return info, data


def directory(name: str, **kwargs) -> tuple[tarfile.TarInfo, bytes]:
    kwargs.setdefault("mode", 0o755)
    return entry(name, tarfile.DIRTYPE, **kwargs)


def symlink(name: str, target: str, **kwargs) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kwargs)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.LNKTYPE, linkname=target)


def tar_bytes(entries, tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def write_blob(tmp_path: Path, data: bytes, name: str = "blob") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def unpack(tmp_path: Path, entries, *, lowers=(), name: str = "layer", **kwargs) -> Path:
    """Unpack a layer made of `entries` into a fresh directory and return it."""
    blob = write_blob(tmp_path, tar_bytes(entries), f"{name}.tar")
    dest = tmp_path / name
    dest.mkdir()
    unpack_layer(blob, dest, digest=DIGEST, lowers=lowers, **kwargs)
    return dest


def tree(root: Path) -> dict[str, str]:
    """Describe every path under `root` by type, mode and content or target."""
    result = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        mode = oct(stat.S_IMODE(st.st_mode))
        if stat.S_ISLNK(st.st_mode):
            result[rel] = f"symlink -> {os.readlink(path)}"
        elif stat.S_ISDIR(st.st_mode):
            result[rel] = f"dir {mode}"
        elif stat.S_ISREG(st.st_mode):
            result[rel] = f"file {mode} {path.read_bytes()!r}"
        elif stat.S_ISCHR(st.st_mode):
            result[rel] = f"char {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        elif stat.S_ISBLK(st.st_mode):
            result[rel] = f"block {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} {mode}"
        elif stat.S_ISFIFO(st.st_mode):
            result[rel] = f"fifo {mode}"
        else:
            result[rel] = "other"
    return result


# -- Files, directories, links -------------------------------------------------------


def test_regular_files_and_directories(tmp_path):
    dest = unpack(tmp_path, [
        directory("etc/", mode=0o755),
        entry("etc/hostname", data=b"box\n", mode=0o640),
        directory("var/empty/", mode=0o711),
    ])
    assert tree(dest) == {
        "etc": "dir 0o755",
        "etc/hostname": "file 0o640 b'box\\n'",
        "var": "dir 0o755",
        "var/empty": "dir 0o711",
    }


def test_exact_modes_ignore_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        dest = unpack(tmp_path, [
            directory("shared/", mode=0o777),
            entry("shared/open", data=b"x", mode=0o666),
        ])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((dest / "shared").stat().st_mode) == 0o777
    assert stat.S_IMODE((dest / "shared/open").stat().st_mode) == 0o666


def test_setuid_setgid_sticky_bits_kept(tmp_path):
    dest = unpack(tmp_path, [
        entry("bin/su", data=b"\x7fELF", mode=0o4755),
        directory("srv/group/", mode=0o2775),
        directory("tmp/", mode=0o1777),
    ])
    assert stat.S_IMODE((dest / "bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((dest / "srv/group").stat().st_mode) == 0o2775
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777


@pytest.mark.root
def test_owners_applied_before_modes(tmp_path):
    dest = unpack(tmp_path, [
        directory("home/user/", uid=1000, gid=1000, mode=0o2750),
        entry("home/user/tool", data=b"x", uid=1000, gid=50, mode=0o6755),
        symlink("home/user/link", "tool", uid=1001, gid=1002),
        entry("home/user/pipe", tarfile.FIFOTYPE, uid=7, gid=8, mode=0o620),
    ])
    tool = (dest / "home/user/tool").stat()
    assert (tool.st_uid, tool.st_gid) == (1000, 50)
    assert stat.S_IMODE(tool.st_mode) == 0o6755
    home = (dest / "home/user").stat()
    assert (home.st_uid, home.st_gid) == (1000, 1000)
    assert stat.S_IMODE(home.st_mode) == 0o2750
    link = (dest / "home/user/link").lstat()
    assert (link.st_uid, link.st_gid) == (1001, 1002)
    pipe = (dest / "home/user/pipe").lstat()
    assert (pipe.st_uid, pipe.st_gid) == (7, 8)


def test_mtimes_kept_files_and_directories(tmp_path):
    dest = unpack(tmp_path, [
        directory("data/", mtime=1_000_000_000),
        entry("data/a", data=b"a", mtime=1_100_000_000),
        symlink("data/link", "a", mtime=1_200_000_000),
        directory("data/sub/", mtime=1_300_000_000),
        entry("data/sub/b", data=b"b", mtime=1_400_000_000),
    ])
    # Directories get their times after their children are written.
    assert (dest / "data").stat().st_mtime == 1_000_000_000
    assert (dest / "data/sub").stat().st_mtime == 1_300_000_000
    assert (dest / "data/a").stat().st_mtime == 1_100_000_000
    assert (dest / "data/link").lstat().st_mtime == 1_200_000_000
    assert (dest / "data/sub/b").stat().st_mtime == 1_400_000_000


def test_pax_mtime_nanoseconds_exact(tmp_path):
    dest = unpack(tmp_path, [
        entry("f", data=b"x", pax={"mtime": "1650811740.123456789"}),
    ])
    assert (dest / "f").stat().st_mtime_ns == 1_650_811_740_123_456_789


def test_hardlinks_share_inode(tmp_path):
    dest = unpack(tmp_path, [
        entry("bin/busybox", data=b"bb", mode=0o755),
        hardlink("bin/sh", "bin/busybox"),
        hardlink("usr/bin/env", "bin/busybox"),
    ])
    inode = (dest / "bin/busybox").stat().st_ino
    assert (dest / "bin/sh").stat().st_ino == inode
    assert (dest / "usr/bin/env").stat().st_ino == inode
    assert (dest / "bin/busybox").stat().st_nlink == 3


def test_hardlink_to_symlink_links_symlink(tmp_path):
    dest = unpack(tmp_path, [
        symlink("lib64", "/lib"),
        hardlink("lib64-again", "lib64"),
    ])
    assert os.readlink(dest / "lib64-again") == "/lib"
    assert (dest / "lib64-again").lstat().st_ino == (dest / "lib64").lstat().st_ino


def test_symlinks_stored_verbatim(tmp_path):
    dest = unpack(tmp_path, [
        symlink("abs", "/etc/passwd"),
        symlink("rel", "../../outside"),
        symlink("dangling", "no/such/file"),
        symlink("dir/self", "."),
    ])
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.readlink(dest / "rel") == "../../outside"
    assert os.readlink(dest / "dangling") == "no/such/file"
    assert os.readlink(dest / "dir/self") == "."


def test_fifo_created(tmp_path):
    dest = unpack(tmp_path, [entry("run/initctl", tarfile.FIFOTYPE, mode=0o600)])
    assert tree(dest)["run/initctl"] == "fifo 0o600"


@pytest.mark.root
def test_device_nodes_created(tmp_path):
    dest = unpack(tmp_path, [
        entry("dev/null", tarfile.CHRTYPE, device=(1, 3), mode=0o666),
        entry("dev/loop0", tarfile.BLKTYPE, device=(7, 0), mode=0o660, gid=6),
    ])
    assert tree(dest)["dev/loop0"] == "block 7:0 0o660"
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert (dest / "dev/loop0").lstat().st_gid == 6


def test_user_xattrs_exact_bytes(tmp_path):
    value = b"\x00\xffbinary\x80"
    pax = {"SCHILY.xattr.user.note": value.decode("utf-8", "surrogateescape")}
    try:
        dest = unpack(tmp_path, [entry("f", data=b"x", pax=pax)])
    except LayerError as err:
        if "Operation not supported" in str(err):
            pytest.skip("the temp filesystem has no user xattrs")
        raise
    assert os.getxattr(dest / "f", "user.note") == value


@pytest.mark.root
def test_file_capability_set_after_chown(tmp_path):
    # struct vfs_cap_data revision 2 with cap_net_bind_service (bit 10)
    # permitted and effective, as `setcap cap_net_bind_service+ep` writes.
    capability = bytes.fromhex("0100000200040000000000000000000000000000")
    pax = {"SCHILY.xattr.security.capability": capability.decode("utf-8", "surrogateescape")}
    dest = unpack(tmp_path, [entry("bin/httpd", data=b"x", uid=33, gid=33, mode=0o755, pax=pax)])
    assert os.getxattr(dest / "bin/httpd", "security.capability") == capability
    assert (dest / "bin/httpd").stat().st_uid == 33


@pytest.mark.root
def test_overlay_xattrs_from_tar_ignored(tmp_path):
    pax = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    dest = unpack(tmp_path, [directory("d/", pax=pax)])
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "d")


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_come_out_whole(tmp_path, tar_format):
    # ustar stores up to 255 characters by splitting a name into its prefix
    # and name fields. PAX and GNU LongLink records have no such limit.
    if tar_format == tarfile.USTAR_FORMAT:
        long_name = "/".join(["d" * 40] * 3) + "/" + "f" * 90
    else:
        long_name = "/".join(["d" * 40] * 5) + "/" + "f" * 150
    entries = [entry(long_name, data=b"long")]
    if tar_format != tarfile.USTAR_FORMAT:
        entries.append(symlink("link", "t" * 300))
    blob = write_blob(tmp_path, tar_bytes(entries, tar_format))
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(blob, dest, digest=DIGEST)
    assert (dest / long_name).read_bytes() == b"long"
    if tar_format != tarfile.USTAR_FORMAT:
        assert os.readlink(dest / "link") == "t" * 300


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_sparse_file_right_size(tmp_path, tar_format):
    # GNU tar writes old GNU sparse headers for --format=gnu and PAX
    # GNU.sparse 1.0 records for --format=posix.
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "sparse", "wb") as handle:
        handle.seek(5 << 20)
        handle.write(b"middle")
        handle.truncate(12 << 20)
    blob = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", f"--format={tar_format}", "-cf", str(blob), "-C", str(source), "sparse"],
                   check=True)
    dest = tmp_path / "layer"
    dest.mkdir()

    unpack_layer(blob, dest, digest=DIGEST)

    data = (dest / "sparse").read_bytes()
    assert len(data) == 12 << 20
    assert data[5 << 20:(5 << 20) + 6] == b"middle"
    assert data.count(0) == len(data) - 6
    # The holes stay holes: far fewer 512-byte blocks than 12 MiB needs.
    assert (dest / "sparse").stat().st_blocks * 512 < 2 << 20


# -- Duplicate entries ---------------------------------------------------------------


def test_duplicate_file_last_wins(tmp_path):
    dest = unpack(tmp_path, [
        entry("f", data=b"first", mode=0o600),
        entry("f", data=b"second", mode=0o644),
    ])
    assert tree(dest) == {"f": "file 0o644 b'second'"}


def test_directory_over_directory_updates_attributes(tmp_path):
    dest = unpack(tmp_path, [
        directory("d/", mode=0o700),
        entry("d/child", data=b"kept"),
        directory("d/", mode=0o750, mtime=1_000_000_000),
    ])
    assert tree(dest) == {"d": "dir 0o750", "d/child": "file 0o644 b'kept'"}
    assert (dest / "d").stat().st_mtime == 1_000_000_000


def test_file_replaces_directory_tree(tmp_path):
    dest = unpack(tmp_path, [
        directory("x/"),
        entry("x/inner", data=b"gone"),
        entry("x", data=b"file now"),
    ])
    assert tree(dest) == {"x": "file 0o644 b'file now'"}


def test_directory_replaces_file_and_symlink(tmp_path):
    dest = unpack(tmp_path, [
        entry("a", data=b"file"),
        symlink("b", "/somewhere"),
        directory("a/", mode=0o755),
        directory("b/", mode=0o700),
    ])
    assert tree(dest) == {"a": "dir 0o755", "b": "dir 0o700"}


def test_symlink_parent_in_same_layer_followed(tmp_path):
    dest = unpack(tmp_path, [
        directory("usr/lib/"),
        symlink("lib", "usr/lib"),
        entry("lib/libc.so", data=b"c"),
    ])
    assert (dest / "usr/lib/libc.so").read_bytes() == b"c"
    assert os.readlink(dest / "lib") == "usr/lib"


def test_missing_parents_created_0755(tmp_path):
    dest = unpack(tmp_path, [entry("a/b/c", data=b"x")])
    assert tree(dest) == {"a": "dir 0o755", "a/b": "dir 0o755", "a/b/c": "file 0o644 b'x'"}


def test_root_entry_skipped(tmp_path):
    dest = unpack(tmp_path, [directory("./", mode=0o700), entry("./f", data=b"x")])
    assert tree(dest) == {"f": "file 0o644 b'x'"}
    assert stat.S_IMODE(dest.stat().st_mode) != 0o700


def test_diff_id_is_digest_of_uncompressed_tar(tmp_path):
    data = tar_bytes([entry("f", data=b"x")]) + b"\0" * 4096
    blob = write_blob(tmp_path, gzip.compress(data))
    dest = tmp_path / "layer"
    dest.mkdir()
    diff_id = unpack_layer(blob, dest, digest=DIGEST)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


# -- Whiteouts -----------------------------------------------------------------------


@pytest.mark.root
def test_whiteout_becomes_overlay_whiteout(tmp_path):
    dest = unpack(tmp_path, [
        directory("etc/"),
        entry("etc/.wh.motd"),
        entry(".wh.opt"),
    ])
    assert tree(dest) == {"etc": "dir 0o755", "etc/motd": "char 0:0", "opt": "char 0:0"}


@pytest.mark.root
@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_marker_keeps_own_siblings(tmp_path, marker_first):
    marker = entry("app/.wh..wh..opq")
    files = [entry("app/one", data=b"1"), directory("app/sub/"), entry("app/sub/two", data=b"2")]
    entries = [directory("app/")] + ([marker] + files if marker_first else files + [marker])
    dest = unpack(tmp_path, entries)
    assert tree(dest) == {
        "app": "dir 0o755",
        "app/one": "file 0o644 b'1'",
        "app/sub": "dir 0o755",
        "app/sub/two": "file 0o644 b'2'",
    }
    assert os.getxattr(dest / "app", "trusted.overlay.opaque") == b"y"


@pytest.mark.root
def test_opaque_marker_at_root(tmp_path):
    dest = unpack(tmp_path, [entry(".wh..wh..opq"), entry("f", data=b"x")])
    assert os.getxattr(dest, "trusted.overlay.opaque") == b"y"
    assert tree(dest) == {"f": "file 0o644 b'x'"}


@pytest.mark.root
def test_whited_out_directory_recreated_is_opaque(tmp_path):
    dest = unpack(tmp_path, [
        entry(".wh.cache"),
        directory("cache/", mode=0o700),
        entry("cache/new", data=b"n"),
    ])
    assert tree(dest) == {"cache": "dir 0o700", "cache/new": "file 0o644 b'n'"}
    assert os.getxattr(dest / "cache", "trusted.overlay.opaque") == b"y"


@pytest.mark.root
def test_whiteout_after_own_directory_makes_it_opaque(tmp_path):
    dest = unpack(tmp_path, [
        directory("cache/"),
        entry("cache/own", data=b"o"),
        entry(".wh.cache"),
    ])
    assert tree(dest) == {"cache": "dir 0o755", "cache/own": "file 0o644 b'o'"}
    assert os.getxattr(dest / "cache", "trusted.overlay.opaque") == b"y"


def test_aufs_metadata_skipped(tmp_path):
    dest = unpack(tmp_path, [
        directory(".wh..wh.plnk/"),
        entry(".wh..wh.plnk/123.456", data=b"x"),
        entry("kept", data=b"k"),
    ])
    assert tree(dest) == {"kept": "file 0o644 b'k'"}


# -- Lower layers --------------------------------------------------------------------


@pytest.mark.root
def test_missing_parent_copies_lower_directory(tmp_path):
    lower = unpack(tmp_path, [directory("srv/", mode=0o750, uid=5, gid=6, mtime=1_000_000_000)], name="lower")
    dest = unpack(tmp_path, [entry("srv/new", data=b"n")], lowers=[lower], name="upper")
    srv = (dest / "srv").stat()
    assert stat.S_IMODE(srv.st_mode) == 0o750
    assert (srv.st_uid, srv.st_gid) == (5, 6)
    assert srv.st_mtime == 1_000_000_000


def test_lower_symlink_parent_becomes_directory(tmp_path):
    # Docker and containerd create a real directory here; in the merged
    # overlayfs tree it replaces the lower layer's symlink.
    lower = unpack(tmp_path, [directory("usr/lib/"), symlink("lib", "usr/lib")], name="lower")
    dest = unpack(tmp_path, [entry("lib/extra.so", data=b"e")], lowers=[lower], name="upper")
    assert tree(dest) == {"lib": "dir 0o755", "lib/extra.so": "file 0o644 b'e'"}
    assert not (lower / "usr/lib/extra.so").exists()


def test_hardlink_to_lower_file_copied_up(tmp_path):
    lower = unpack(tmp_path, [entry("bin/busybox", data=b"bb", mode=0o755)], name="lower")
    dest = unpack(tmp_path, [hardlink("bin/ls", "bin/busybox")], lowers=[lower], name="upper")
    assert tree(dest) == {
        "bin": "dir 0o755",
        "bin/busybox": "file 0o755 b'bb'",
        "bin/ls": "file 0o755 b'bb'",
    }
    assert (dest / "bin/ls").stat().st_ino == (dest / "bin/busybox").stat().st_ino
    assert (lower / "bin/busybox").stat().st_nlink == 1


def test_hardlink_target_missing_everywhere_rejected(tmp_path):
    lower = unpack(tmp_path, [entry("other", data=b"o")], name="lower")
    with pytest.raises(LayerError) as failure:
        unpack(tmp_path, [hardlink("ls", "bin/busybox")], lowers=[lower], name="upper")
    assert "'ls'" in str(failure.value)
    assert DIGEST in str(failure.value)
    assert "bin/busybox" in str(failure.value)
    assert not (tmp_path / "upper").exists()


@pytest.mark.root
def test_hardlink_to_whited_out_rejected(tmp_path):
    bottom = unpack(tmp_path, [entry("f", data=b"x")], name="bottom")
    middle = unpack(tmp_path, [entry(".wh.f")], name="middle")
    with pytest.raises(LayerError):
        unpack(tmp_path, [hardlink("g", "f")], lowers=[bottom, middle], name="top")


def test_hardlink_to_lower_symlink_copied_up(tmp_path):
    lower = unpack(tmp_path, [symlink("lib64", "usr/lib")], name="lower")
    dest = unpack(tmp_path, [hardlink("lib64-alias", "lib64")], lowers=[lower], name="upper")
    assert tree(dest) == {"lib64": "symlink -> usr/lib", "lib64-alias": "symlink -> usr/lib"}
    assert (dest / "lib64-alias").lstat().st_ino == (dest / "lib64").lstat().st_ino


def test_missing_parent_uses_topmost_lower(tmp_path):
    bottom = unpack(tmp_path, [directory("srv/", mode=0o750)], name="bottom")
    middle = unpack(tmp_path, [directory("srv/", mode=0o711)], name="middle")
    dest = unpack(tmp_path, [entry("srv/new", data=b"n")], lowers=[bottom, middle], name="top")
    assert stat.S_IMODE((dest / "srv").stat().st_mode) == 0o711


@pytest.mark.root
def test_parent_below_opaque_lower_defaults(tmp_path):
    bottom = unpack(tmp_path, [directory("app/"), directory("app/data/", mode=0o700)], name="bottom")
    middle = unpack(tmp_path, [directory("app/"), entry("app/.wh..wh..opq")], name="middle")
    dest = unpack(tmp_path, [entry("app/data/new", data=b"n")], lowers=[bottom, middle], name="top")
    # The opaque app/ in the middle layer hides the bottom layer's app/data.
    assert stat.S_IMODE((dest / "app/data").stat().st_mode) == 0o755


@pytest.mark.root
def test_parent_whited_out_below_defaults(tmp_path):
    bottom = unpack(tmp_path, [directory("srv/", mode=0o700)], name="bottom")
    middle = unpack(tmp_path, [entry(".wh.srv")], name="middle")
    dest = unpack(tmp_path, [entry("srv/new", data=b"n")], lowers=[bottom, middle], name="top")
    assert stat.S_IMODE((dest / "srv").stat().st_mode) == 0o755


def test_unsupported_xattr_warns_and_keeps_file(tmp_path, caplog):
    pax = {"SCHILY.xattr.pyrunbogus.name": "value"}
    with caplog.at_level("WARNING"):
        dest = unpack(tmp_path, [entry("f", data=b"x", pax=pax), symlink("link", "f", pax=pax)])
    assert tree(dest) == {"f": "file 0o644 b'x'", "link": "symlink -> f"}
    assert sum("pyrunbogus.name" in record.getMessage() for record in caplog.records) == 2


def test_non_utf8_names_kept_as_bytes(tmp_path):
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    blob = write_blob(tmp_path, tar_bytes([entry(name, data=b"latin-1")], tarfile.GNU_FORMAT))
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(blob, dest, digest=DIGEST)
    assert os.listdir(os.fsencode(dest)) == [b"caf\xe9"]


def test_recording_backend_rejected(tmp_path, monkeypatch):
    from runtime import syscalls

    monkeypatch.chdir(tmp_path)
    blob = write_blob(tmp_path, tar_bytes([entry("deep/file", data=b"x")]))
    dest = tmp_path / "layer"
    dest.mkdir()
    before = sorted(os.listdir(tmp_path))
    with syscalls.recording(), pytest.raises(RuntimeError, match="recording"):
        unpack_layer(blob, dest, digest=DIGEST)
    # Nothing lands in the current directory, and the failed layer is gone.
    assert sorted(os.listdir(tmp_path)) == [name for name in before if name != "layer"]


def test_libarchive_xattr_records_decoded(tmp_path):
    pax = {
        "LIBARCHIVE.xattr.user.with%20space": "AP9iaW4",  # b"\x00\xffbin", unpadded base64
        "LIBARCHIVE.xattr.user.both": "bGlidg==",
        "SCHILY.xattr.user.both": "schily",
    }
    try:
        dest = unpack(tmp_path, [entry("f", data=b"x", pax=pax)])
    except LayerError as err:
        if "Operation not supported" in str(err):
            pytest.skip("the temp filesystem has no user xattrs")
        raise
    assert os.getxattr(dest / "f", "user.with space") == b"\x00\xffbin"
    assert os.getxattr(dest / "f", "user.both") == b"schily"


def test_invalid_libarchive_base64_rejected(tmp_path):
    with pytest.raises(LayerError, match="base64"):
        unpack(tmp_path, [entry("f", data=b"x", pax={"LIBARCHIVE.xattr.user.x": "not base64!"})])
