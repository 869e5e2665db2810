"""Unpack one image layer into a directory that overlayfs can stack.

    diff_id = unpack_layer(blob_path, dest, media_type=..., digest=..., lowers=[...])

The blob is decompressed by its magic bytes (runtime.layers.compression).
Each tar entry is written inside `dest` and nowhere else
(runtime.layers.tree), and OCI whiteouts become overlayfs whiteouts
(runtime.layers.whiteouts). The return value is the ``sha256:`` digest of
the uncompressed tar, which the caller compares with the image config's
``rootfs.diff_ids``.

Everything the tar records is kept: owners (when running as root), exact
modes including setuid, setgid and sticky bits, mtimes, hard links,
symlinks as written (absolute ones too), device nodes, FIFOs, and the
SCHILY.xattr.* PAX records as exact bytes. tarfile only parses the
stream. Its extraction code is not used, because its ``tar`` and ``data``
filters strip setuid bits and reject the devices and absolute symlinks
that real images contain.

Duplicate entries: the last one wins, except that a directory over a
directory only updates the attributes, as in Docker and containerd.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import stat
import tarfile
import urllib.parse
from decimal import Decimal, InvalidOperation

from runtime.errors import PyrunError
from runtime.layers.compression import CompressionError, LayerReader
from runtime.layers.lowers import LowerLayers
from runtime.layers.tree import Attributes, LayerTree
from runtime.layers.whiteouts import (
    OVERLAY_XATTR_PREFIX,
    InvalidEntry,
    entry_path,
    is_aufs_metadata,
    is_opaque_marker,
    whiteout_target,
)
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable

log = get_logger(__name__)

XATTR_PAX_PREFIX = "SCHILY.xattr."
LIBARCHIVE_XATTR_PAX_PREFIX = "LIBARCHIVE.xattr."
NODE_KINDS = {
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


class LayerError(PyrunError):
    """A layer that cannot be unpacked: corrupt, unsupported or hostile."""


def unpack_layer(
    blob_path: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    media_type: str = "",
    digest: str = "",
    lowers: Iterable[str | os.PathLike] = (),
) -> str:
    """Unpack the layer blob at `blob_path` into the empty directory `dest`.

    `digest` names the layer in errors. `lowers` lists the unpacked
    directories of the layers below, lowest first. They are only read, to
    give missing parent directories their attributes and to copy up
    hard-link targets. Returns the layer's diff ID.

    On failure, including KeyboardInterrupt, `dest` is deleted before the
    error propagates, so the caller has nothing to clean up.

    The root entry of the tar is skipped, so `dest` keeps its own mode.
    Create it with mode 0700 (tempfile.mkdtemp does), so that users of the
    host cannot reach the layer's setuid files and device nodes.
    """
    with open(blob_path, "rb") as blob:
        return unpack_stream(blob, dest, media_type=media_type, digest=digest, lowers=lowers)


def unpack_stream(
    fileobj: BinaryIO,
    dest: str | os.PathLike,
    *,
    media_type: str = "",
    digest: str = "",
    lowers: Iterable[str | os.PathLike] = (),
) -> str:
    """Unpack a layer while it is read from `fileobj`, such as a download.

    Reads `fileobj` to its end, so the diff ID covers every byte. The
    caller verifies the compressed digest of what it fed in.
    Otherwise the same as `unpack_layer`.
    """
    dest = os.fspath(dest)
    label = digest or "(no digest given)"
    try:
        reader = LayerReader(fileobj, media_type)
        try:
            tree = LayerTree(dest, LowerLayers([os.fspath(d) for d in lowers]))
            try:
                _extract(reader, tree, label)
                tree.finish()
            finally:
                tree.close()
            reader.drain()
        finally:
            reader.close()
    except CompressionError as err:
        _remove_partial(dest)
        raise LayerError(f"unpack layer {label}: {err}") from err
    except tarfile.TarError as err:
        _remove_partial(dest)
        raise LayerError(
            f"unpack layer {label}: invalid tar stream: {err}",
            hint="the blob is corrupt or not a layer: remove it from the store and pull again",
        ) from err
    except OSError as err:
        # Per-entry failures are LayerErrors already, so this one comes from
        # the layer directory itself or the attributes applied at the end.
        _remove_partial(dest)
        raise LayerError(f"unpack layer {label} into {dest}: {err}") from err
    except BaseException:
        _remove_partial(dest)
        raise

    log.debug("unpacked layer %s: %d bytes of tar, diff ID %s", label, reader.size, reader.diff_id)
    return reader.diff_id


def _extract(reader: LayerReader, tree: LayerTree, label: str) -> None:
    try:
        archive = tarfile.open(fileobj=reader, mode="r:")
    except tarfile.ReadError:
        # An empty blob, or nothing but zero blocks, is a valid empty layer.
        if reader.only_zeros:
            log.debug("layer %s is empty", label)
            return
        raise

    for member in archive:
        tree.begin_entry()
        try:
            _apply(tree, archive, member)
        except InvalidEntry as err:
            raise LayerError(
                f"unpack layer {label}: entry {member.name!r}: {err}",
                hint="the image is malformed or hostile: rebuild it or ask its publisher",
            ) from None
        except OSError as err:
            raise LayerError(f"unpack layer {label}: entry {member.name!r}: {err}") from err
        except (OverflowError, ValueError) as err:
            # A header value the system cannot represent, such as an mtime
            # beyond the range of a 64-bit time_t.
            raise LayerError(f"unpack layer {label}: entry {member.name!r}: invalid header value: {err}") from err
        # tarfile keeps every member in archive.members, which nothing here
        # reads again, so the list is emptied to keep memory flat.
        archive.members.clear()


def _apply(tree: LayerTree, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    """Write one tar member into the layer tree."""
    path = entry_path(member.name)
    if path.is_root:
        if not member.isdir():
            raise InvalidEntry("a non-directory entry would replace the layer root")
        # containerd skips the root entry too: the merged root's attributes
        # come from the container's own upper directory.
        log.debug("skipping the layer root entry %r", member.name)
        return

    if is_opaque_marker(path):
        tree.make_opaque(tree.directory(path.parent))
        return
    if is_aufs_metadata(path):
        log.debug("skipping AUFS metadata entry %s", path)
        return
    target = whiteout_target(path)
    if target is not None:
        tree.add_whiteout(target)
        return

    if member.islnk():
        try:
            target = entry_path(member.linkname)
        except InvalidEntry as err:
            raise InvalidEntry(f"hard link target {member.linkname!r}: {err}") from None
        tree.add_hardlink(path, target)
        return

    attributes = _attributes(member)
    if member.isdir():
        tree.add_directory(path, attributes)
    elif member.isreg() and member.issparse():
        tree.add_file(path, attributes, archive.extractfile(member), sparse=True)
    elif member.isreg():
        tree.add_file(path, attributes, _MemberData(archive.fileobj, member))
    elif member.issym():
        tree.add_symlink(path, member.linkname, attributes)
    elif member.type in NODE_KINDS:
        device = 0 if member.isfifo() else os.makedev(member.devmajor, member.devminor)
        tree.add_node(path, NODE_KINDS[member.type], device, attributes)
    else:
        raise InvalidEntry(f"unsupported tar entry type {member.type!r}")


class _MemberData:
    """The data of one regular tar member, read straight from the layer stream.

    tarfile's extractfile() wraps each member in two more file objects.
    Reading directly saves that work for the thousands of small files of a
    typical layer. Sparse members still go through extractfile().
    """

    def __init__(self, stream: LayerReader, member: tarfile.TarInfo) -> None:
        stream.seek(member.offset_data)
        self._stream = stream
        self._remaining = member.size

    def read(self, size: int) -> bytes:
        if self._remaining <= 0:
            return b""
        requested = min(size, self._remaining)
        data = self._stream.read(requested)
        if len(data) != requested:
            raise tarfile.ReadError("unexpected end of data")
        self._remaining -= requested
        return data


def _attributes(member: tarfile.TarInfo) -> Attributes:
    """Read mode, owner, times and xattrs from a tar header."""
    return Attributes(
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        mtime_ns=_timestamp_ns(member, "mtime", member.mtime),
        atime_ns=_timestamp_ns(member, "atime", None),
        xattrs=_xattrs(member),
    )


def _timestamp_ns(member: tarfile.TarInfo, key: str, fallback: float | None) -> int | None:
    """Return a PAX time in nanoseconds, exact to its last digit.

    tarfile converts PAX times to float, which loses the nanoseconds, so
    the decimal string is parsed here when the header has one.
    """
    text = member.pax_headers.get(key)
    if text is not None:
        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            raise InvalidEntry(f"PAX {key} {text!r} is not a number") from None
    if fallback is None:
        return None
    return int(fallback) * 1_000_000_000


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Return the xattrs of an entry from its PAX records.

    Go's archive/tar, and so Docker and BuildKit, write SCHILY.xattr.NAME
    records. tarfile decodes their values with surrogateescape, so encoding
    them back the same way gives the exact bytes, binary ones such as
    security.capability included. bsdtar also writes LIBARCHIVE.xattr.NAME
    records, with the name percent-encoded and the value in base64, which
    are used for names that have no SCHILY record.
    """
    xattrs = {}
    for key, value in member.pax_headers.items():
        if key.startswith(XATTR_PAX_PREFIX):
            xattrs[key[len(XATTR_PAX_PREFIX):]] = value.encode("utf-8", "surrogateescape")
    for key, value in member.pax_headers.items():
        if key.startswith(LIBARCHIVE_XATTR_PAX_PREFIX):
            name = urllib.parse.unquote(key[len(LIBARCHIVE_XATTR_PAX_PREFIX):], errors="surrogateescape")
            if name not in xattrs:
                xattrs[name] = _decode_base64(value, key)

    for name in [name for name in xattrs if name.startswith(OVERLAY_XATTR_PREFIX)]:
        log.warning("ignoring xattr %s on %s: overlayfs reserves it", name, member.name)
        del xattrs[name]
    return xattrs


def _decode_base64(value: str, key: str) -> bytes:
    # The "=" padding is added back when missing, so values decode with or without it.
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except binascii.Error:
        raise InvalidEntry(f"PAX record {key} is not valid base64") from None


def _remove_partial(dest: str) -> None:
    """Delete a layer directory that failed to unpack, without following symlinks."""
    def report(function, path, excinfo):
        log.warning("cannot remove %s after a failed unpack: %s", path, excinfo[1])

    if os.path.lexists(dest):
        shutil.rmtree(dest, onerror=report)
