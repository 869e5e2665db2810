"""Layer blobs: compression found by magic bytes, diff IDs, empty layers, streams."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import logging
import threading

import pytest
import zstandard

from runtime.unpack import LayerError, unpack_layer, unpack_stream
from tests.unit.test_unpack import DIGEST, directory, entry, tar_bytes, tree, write_blob

GZIP_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD_TYPE = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR_TYPE = "application/vnd.oci.image.layer.v1.tar"
DOCKER_GZIP_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"

LAYER = [directory("etc/"), entry("etc/os-release", data=b"ID=test\n")]
EXPECTED_TREE = {"etc": "dir 0o755", "etc/os-release": "file 0o644 b'ID=test\\n'"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unpack_blob(tmp_path, blob: bytes, media_type: str = ""):
    path = write_blob(tmp_path, blob)
    dest = tmp_path / "layer"
    dest.mkdir()
    diff_id = unpack_layer(path, dest, media_type=media_type, digest=DIGEST)
    return dest, diff_id


@pytest.mark.parametrize(
    "compress, media_type",
    [
        (lambda data: data, TAR_TYPE),
        (gzip.compress, GZIP_TYPE),
        (gzip.compress, DOCKER_GZIP_TYPE),
        (lambda data: zstandard.ZstdCompressor().compress(data), ZSTD_TYPE),
    ],
    ids=["none", "gzip", "docker-gzip", "zstd"],
)
def test_each_compression_gives_same_tree(tmp_path, caplog, compress, media_type):
    data = tar_bytes(LAYER)
    with caplog.at_level(logging.WARNING):
        dest, diff_id = unpack_blob(tmp_path, compress(data), media_type)
    assert tree(dest) == EXPECTED_TREE
    assert diff_id == sha256(data)
    assert caplog.records == []


def test_mislabelled_media_type_warns(tmp_path, caplog):
    data = tar_bytes(LAYER)
    with caplog.at_level(logging.WARNING):
        dest, diff_id = unpack_blob(tmp_path, gzip.compress(data), ZSTD_TYPE)
    assert tree(dest) == EXPECTED_TREE
    assert diff_id == sha256(data)
    assert any("gzip" in record.getMessage() and ZSTD_TYPE in record.getMessage() for record in caplog.records)


def test_uncompressed_blob_labelled_gzip_warns(tmp_path, caplog):
    data = tar_bytes(LAYER)
    with caplog.at_level(logging.WARNING):
        dest, _ = unpack_blob(tmp_path, data, GZIP_TYPE)
    assert tree(dest) == EXPECTED_TREE
    assert len(caplog.records) == 1


def test_multi_member_gzip(tmp_path):
    data = tar_bytes(LAYER)
    blob = gzip.compress(data[:700]) + gzip.compress(data[700:])
    dest, diff_id = unpack_blob(tmp_path, blob, GZIP_TYPE)
    assert tree(dest) == EXPECTED_TREE
    assert diff_id == sha256(data)


def test_zstd_multiple_frames(tmp_path):
    data = tar_bytes(LAYER)
    compressor = zstandard.ZstdCompressor()
    blob = compressor.compress(data[:700]) + compressor.compress(data[700:])
    dest, diff_id = unpack_blob(tmp_path, blob, ZSTD_TYPE)
    assert tree(dest) == EXPECTED_TREE
    assert diff_id == sha256(data)


@pytest.mark.parametrize(
    "blob, uncompressed",
    [
        (b"", b""),
        (b"\0" * 1024, b"\0" * 1024),
        (b"\0" * 10240, b"\0" * 10240),
        (gzip.compress(tar_bytes([])), tar_bytes([])),
        (gzip.compress(b""), b""),
    ],
    ids=["zero-bytes", "two-zero-blocks", "zero-record", "gzip-empty-tar", "gzip-nothing"],
)
def test_empty_layers_valid(tmp_path, blob, uncompressed):
    dest, diff_id = unpack_blob(tmp_path, blob, GZIP_TYPE)
    assert list(dest.iterdir()) == []
    assert diff_id == sha256(uncompressed)


def test_corrupt_gzip_rejected_and_removed(tmp_path):
    blob = bytearray(gzip.compress(tar_bytes(LAYER) * 20))
    blob[40:60] = b"\xff" * 20
    path = write_blob(tmp_path, bytes(blob))
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(LayerError) as failure:
        unpack_layer(path, dest, media_type=GZIP_TYPE, digest=DIGEST)
    assert DIGEST in str(failure.value)
    assert not dest.exists()


def test_truncated_gzip_rejected(tmp_path):
    blob = gzip.compress(tar_bytes(LAYER))[:-20]
    path = write_blob(tmp_path, blob)
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(LayerError, match="gzip"):
        unpack_layer(path, dest, media_type=GZIP_TYPE, digest=DIGEST)
    assert not dest.exists()


def test_bzip2_rejected_with_reason(tmp_path):
    path = write_blob(tmp_path, bz2.compress(tar_bytes(LAYER)))
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(LayerError, match="bzip2"):
        unpack_layer(path, dest, digest=DIGEST)


def test_not_a_tar_rejected(tmp_path):
    path = write_blob(tmp_path, b"this is not a tar archive, only text" * 40)
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(LayerError, match="invalid tar"):
        unpack_layer(path, dest, digest=DIGEST)
    assert not dest.exists()


class TrickleReader:
    """A non-seekable source that returns at most 1000 bytes per read, like a socket."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(min(size, 1000) if size >= 0 else 1000)
        self.total += len(chunk)
        return chunk


def test_stream_unpacks_while_reading(tmp_path):
    data = tar_bytes(LAYER + [entry("big", data=bytes(range(256)) * 4000)]) + b"\0" * 8192
    blob = gzip.compress(data)
    source = TrickleReader(blob)
    dest = tmp_path / "layer"
    dest.mkdir()
    diff_id = unpack_stream(source, dest, media_type=GZIP_TYPE, digest=DIGEST)
    assert diff_id == sha256(data)
    assert (dest / "big").read_bytes() == bytes(range(256)) * 4000
    assert source.total == len(blob)


class InterruptedReader(TrickleReader):
    """A source that raises KeyboardInterrupt part way, as Ctrl-C during a download would."""

    def __init__(self, data: bytes, interrupt_at: int) -> None:
        super().__init__(data)
        self._interrupt_at = interrupt_at

    def read(self, size: int = -1) -> bytes:
        if self.total >= self._interrupt_at:
            raise KeyboardInterrupt
        return super().read(size)


def test_interrupted_stream_leaves_nothing(tmp_path):
    files = [entry(f"dir/file{number}", data=bytes(range(256)) * 40) for number in range(50)]
    blob = gzip.compress(tar_bytes([directory("dir/")] + files), compresslevel=0)
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(KeyboardInterrupt):
        unpack_stream(InterruptedReader(blob, len(blob) // 2), dest, media_type=GZIP_TYPE, digest=DIGEST)
    assert not dest.exists()
    assert [thread.name for thread in threading.enumerate() if thread.name == "layer-inflate"] == []
