"""File metadata and data: what a tar header sets, and how it is applied.

Every call here works on an open descriptor, or on one name under a
directory descriptor without following a symlink at that name, so the
callers in `tree` keep their confinement guarantee.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

log = get_logger(__name__)

COPY_SIZE = 1 << 20


@dataclass
class Attributes:
    """File metadata from a tar header or a lower layer: mode, owner, times, xattrs."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int | None = None
    atime_ns: int | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_stat(cls, st: os.stat_result, xattrs: dict[str, bytes]) -> "Attributes":
        return cls(
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            atime_ns=st.st_atime_ns,
            xattrs=xattrs,
        )


def apply_to_fd(fd: int, attributes: Attributes, *, same_owner: bool) -> None:
    """Apply owner, mode, xattrs and times to an open file or directory."""
    # chown clears the setuid and setgid bits and security.capability,
    # so the mode and the xattrs come after it.
    if same_owner:
        os.fchown(fd, attributes.uid, attributes.gid)
    os.fchmod(fd, attributes.mode)
    for name, value in attributes.xattrs.items():
        set_xattr(fd, name, value)
    if attributes.mtime_ns is not None:
        os.utime(fd, ns=_times(attributes))


def apply_to_name(parent_fd: int, name: str, attributes: Attributes, *, same_owner: bool, symlink: bool) -> None:
    """Apply owner, mode, xattrs and times to `name` under `parent_fd` without following it.

    This is for symlinks and device nodes, which pyrun does not open.
    """
    if same_owner:
        os.chown(name, attributes.uid, attributes.gid, dir_fd=parent_fd, follow_symlinks=False)
    if not symlink:
        # Linux ignores a symlink's mode and has no call to change it.
        os.chmod(name, attributes.mode, dir_fd=parent_fd, follow_symlinks=False)
    # setxattr has no *at form. The kernel resolves the parent's
    # /proc/self/fd link, and lsetxattr does not follow the last name.
    for xattr, value in attributes.xattrs.items():
        set_xattr(f"/proc/self/fd/{parent_fd}/{name}", xattr, value)
    if attributes.mtime_ns is not None:
        os.utime(name, ns=_times(attributes), dir_fd=parent_fd, follow_symlinks=False)


def set_xattr(target: int | str, name: str, value: bytes) -> None:
    """Set one xattr on a descriptor, or on a path without following it.

    A filesystem that does not support the attribute's namespace (ENOTSUP,
    such as security.selinux without SELinux) gets a warning and the entry
    is kept, as containerd does. Other failures, such as EPERM, raise.
    """
    try:
        os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
    except OSError as err:
        if err.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        log.warning("xattr %s not set: the filesystem does not support it (%s)", name, err.strerror)


def _times(attributes: Attributes) -> tuple[int, int]:
    mtime = attributes.mtime_ns or 0
    atime = attributes.atime_ns if attributes.atime_ns is not None else mtime
    return atime, mtime


def copy_data(source: BinaryIO, fd: int, *, sparse: bool = False) -> None:
    """Copy `source` into `fd`. For a sparse entry, zero blocks become holes."""
    written = 0
    while True:
        chunk = source.read(COPY_SIZE)
        if not chunk:
            break
        if sparse and chunk.count(0) == len(chunk):
            os.lseek(fd, len(chunk), os.SEEK_CUR)
        else:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        written += len(chunk)
    if sparse:
        # A hole at the end leaves the size short until the file is extended.
        os.ftruncate(fd, written)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove the directory `name` under `parent_fd` without following symlinks."""
    for root, dirs, files, root_fd in os.fwalk(name, topdown=False, follow_symlinks=False, dir_fd=parent_fd):
        for entry in files:
            os.unlink(entry, dir_fd=root_fd)
        for entry in dirs:
            st = os.stat(entry, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(entry, dir_fd=root_fd)
            else:
                os.unlink(entry, dir_fd=root_fd)
    os.rmdir(name, dir_fd=parent_fd)
