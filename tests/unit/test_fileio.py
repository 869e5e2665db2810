"""runtime.fileio: whole-file reads and writes without file objects."""

from __future__ import annotations

import os
import stat

import pytest

from runtime import fileio


def test_write_then_read_round_trip(tmp_path):
    path = str(tmp_path / "hosts")
    fileio.write_text(path, "127.0.0.1\tlocalhost\nünïcode\n")
    assert fileio.read_text(path) == "127.0.0.1\tlocalhost\nünïcode\n"
    assert fileio.read_bytes(path) == "127.0.0.1\tlocalhost\nünïcode\n".encode()


def test_write_truncates_in_place(tmp_path):
    # A bind mount refers to the inode: rewriting must keep it.
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.1\nsearch example\n")
    inode = path.stat().st_ino
    fileio.write_text(str(path), "nameserver 10.0.0.2\n")
    assert path.read_text() == "nameserver 10.0.0.2\n"
    assert path.stat().st_ino == inode


def test_new_file_mode_less_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        fileio.write_text(str(tmp_path / "a"), "x", mode=0o666)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644


def test_file_larger_than_one_read_is_read_whole(tmp_path):
    data = os.urandom(fileio.READ_SIZE * 2 + 17)
    (tmp_path / "big").write_bytes(data)
    assert fileio.read_bytes(str(tmp_path / "big")) == data


def test_missing_file_raises_like_open(tmp_path):
    with pytest.raises(FileNotFoundError):
        fileio.read_bytes(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError):
        fileio.write_text(str(tmp_path / "no-dir" / "file"), "x")
