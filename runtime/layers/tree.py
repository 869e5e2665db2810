"""Write the entries of one layer into its directory, and nowhere else.

Safety comes from how paths are resolved, not from checking names:

- A parent directory is opened one name at a time with O_NOFOLLOW from a
  directory already open inside the layer. When a symlink is on the way,
  openat2(2) with RESOLVE_IN_ROOT opens it instead, with the layer
  directory as the root: ``..`` stops at the root and absolute symlinks
  resolve from it. Either way a parent always lies inside the layer,
  whatever symlinks earlier entries planted.
- Everything else is done relative to that parent's file descriptor, on a
  single name that is never ``.`` or ``..`` (see `entry_path`). No call
  follows a symlink at that name. Files are created with O_EXCL and
  O_NOFOLLOW after any old entry is removed, and chown, chmod, utime and
  xattr calls use the no-follow forms or the new file's own descriptor.

A symlink in a parent position is followed inside the layer, as
containerd does. A symlink or directory that only a lower layer has is
not visible here: a missing parent directory is created as a real
directory with the attributes of the same directory below (or 0755 root
when there is none). In the merged overlayfs tree that directory then
replaces a lower symlink, which is the tree Docker and containerd give.
NOTE: `umoci unpack` extracts all layers into one directory and so writes
through such a lower symlink instead, which gives a different tree.

Directory modes, owners, xattrs and times are applied at the end, deepest
first, so creating children neither fails in a read-only directory nor
changes a directory's mtime after it was set.
"""

from __future__ import annotations

import collections
import errno
import os
import stat
from typing import BinaryIO, Callable, TypeVar

from runtime import syscalls
from runtime.layers.files import Attributes, apply_to_fd, apply_to_name, copy_data, remove_tree
from runtime.layers.lowers import LowerEntry, LowerLayers, copyable_xattrs
from runtime.layers.whiteouts import (
    OVERLAY_OPAQUE_XATTR,
    EntryPath,
    InvalidEntry,
    is_overlay_whiteout,
)
from runtime.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
RESOLVE_FLAGS = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Parent directory descriptors kept open. Image builders write entries
# grouped by directory, so a few dozen cover the directories in use.
PARENT_CACHE_SIZE = 32


class LayerTree:
    """The directory one layer is unpacked into, with confined write operations.

    `same_owner` applies the owners from the tar. By default it is on for
    root only, as GNU tar's --same-owner is.
    """

    def __init__(self, root: str, lowers: LowerLayers | None = None, *, same_owner: bool | None = None) -> None:
        self.root_fd = os.open(root, DIRECTORY_FLAGS | os.O_NOFOLLOW)
        self.lowers = lowers or LowerLayers()
        self.same_owner = os.geteuid() == 0 if same_owner is None else same_owner
        self._parents: collections.OrderedDict[tuple[str, ...], int] = collections.OrderedDict()
        self._stale_fds: list[int] = []
        self._directories: dict[tuple[str, ...], Attributes] = {}

    def close(self) -> None:
        self._forget_parents()
        self._close_stale()
        os.close(self.root_fd)

    def begin_entry(self) -> None:
        """Close descriptors that earlier removals made stale."""
        self._close_stale()

    # -- Resolving directories ------------------------------------------------

    def directory(self, parts: tuple[str, ...]) -> int:
        """Return a descriptor of the directory at `parts`, creating missing ones.

        The descriptor stays owned by the cache: callers must not close it.
        """
        if not parts:
            return self.root_fd
        fd = self._parents.get(parts)
        if fd is not None:
            self._parents.move_to_end(parts)
            return fd

        fd = self._open_child(parts)
        if fd is None:
            fd = self._make_directories(parts)
        self._parents[parts] = fd
        if len(self._parents) > PARENT_CACHE_SIZE:
            _, oldest = self._parents.popitem(last=False)
            os.close(oldest)
        return fd

    def _open_child(self, parts: tuple[str, ...]) -> int | None:
        """Open `parts` from its parent's cached descriptor, or return None.

        One name opened with O_NOFOLLOW from a confined directory stays
        confined, so the common case needs no openat2 call. A symlink,
        a missing name or an uncached parent takes the openat2 path.
        """
        parent_fd = self._parents.get(parts[:-1]) if len(parts) > 1 else self.root_fd
        if parent_fd is None:
            return None
        try:
            return os.open(parts[-1], DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError:
            return None

    def _open_directory(self, parts: tuple[str, ...]) -> int:
        fd = syscalls.openat2(self.root_fd, "/".join(parts) or ".", DIRECTORY_FLAGS, RESOLVE_FLAGS)
        if not isinstance(fd, int):
            # syscalls.recording() performs nothing and returns None, and a
            # dir_fd of None would mean the current directory.
            raise RuntimeError("cannot unpack a layer while syscalls.recording() is active")
        return fd

    def _make_directories(self, parts: tuple[str, ...]) -> int:
        try:
            return self._open_directory(parts)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise InvalidEntry(f"{'/'.join(parts)!r} or one of its parents is not a directory") from None

        fd = self.root_fd
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            try:
                next_fd = self._open_directory(prefix)
            except FileNotFoundError:
                self._create_parent(fd, prefix)
                next_fd = self._open_directory(prefix)
            except NotADirectoryError:
                raise InvalidEntry(f"parent {'/'.join(prefix)!r} is not a directory") from None
            if fd != self.root_fd:
                os.close(fd)
            fd = next_fd
        return fd

    def _create_parent(self, parent_fd: int, prefix: tuple[str, ...]) -> None:
        """Create a directory the tar never listed, like the one below it."""
        try:
            os.mkdir(prefix[-1], 0o700, dir_fd=parent_fd)
        except FileExistsError:
            raise InvalidEntry(f"parent {'/'.join(prefix)!r} is a symlink to a missing directory") from None

        lower = self.lowers.find(prefix)
        if lower is not None and stat.S_ISDIR(lower.stat.st_mode):
            attributes = Attributes.from_stat(lower.stat, copyable_xattrs(lower.path))
        else:
            attributes = Attributes(mode=0o755, uid=0, gid=0)
        log.debug("created missing parent directory %s as %o", "/".join(prefix), attributes.mode)
        self._directories[prefix] = attributes

    def _forget_parents(self) -> None:
        self._stale_fds.extend(self._parents.values())
        self._parents.clear()

    def _close_stale(self) -> None:
        for fd in self._stale_fds:
            os.close(fd)
        self._stale_fds.clear()

    # -- Replacing entries ----------------------------------------------------

    def lstat(self, parent_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def remove(self, parent_fd: int, path: EntryPath, st: os.stat_result) -> None:
        """Remove what is at `path` so that a later entry can take its place."""
        if stat.S_ISDIR(st.st_mode):
            remove_tree(parent_fd, path.name)
        else:
            os.unlink(path.name, dir_fd=parent_fd)

        # Cached descriptors may point into what was removed, and pending
        # directory attributes below it no longer apply.
        self._forget_parents()
        prefix = path.parts
        for parts in [p for p in self._directories if p[: len(prefix)] == prefix]:
            del self._directories[parts]

    def _replacing(self, parent_fd: int, path: EntryPath, create: Callable[[], T]) -> T:
        """Run `create`, and if the name is taken, remove what is there and run it again.

        Trying first saves an lstat per entry, because most names are new.
        """
        try:
            return create()
        except FileExistsError:
            st = self.lstat(parent_fd, path.name)
            if st is not None:
                self.remove(parent_fd, path, st)
            return create()

    # -- Creating entries -----------------------------------------------------

    def add_directory(self, path: EntryPath, attributes: Attributes) -> None:
        """Create a directory, or only update the attributes of an existing one."""
        parent_fd = self.directory(path.parent)
        try:
            os.mkdir(path.name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            st = self.lstat(parent_fd, path.name)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(parent_fd, path, st)
                os.mkdir(path.name, 0o700, dir_fd=parent_fd)
                if is_overlay_whiteout(st):
                    # Deleted and recreated in this layer: the lower layers'
                    # contents must stay hidden under the new directory.
                    self.make_opaque(self.directory(path.parts))
        self._directories[path.parts] = attributes

    def add_file(self, path: EntryPath, attributes: Attributes, data: BinaryIO, *, sparse: bool = False) -> None:
        parent_fd = self.directory(path.parent)
        fd = self._replacing(parent_fd, path, lambda: os.open(path.name, NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd))
        try:
            copy_data(data, fd, sparse=sparse)
            apply_to_fd(fd, attributes, same_owner=self.same_owner)
        finally:
            os.close(fd)

    def add_symlink(self, path: EntryPath, target: str, attributes: Attributes) -> None:
        parent_fd = self.directory(path.parent)
        self._replacing(parent_fd, path, lambda: os.symlink(target, path.name, dir_fd=parent_fd))
        apply_to_name(parent_fd, path.name, attributes, same_owner=self.same_owner, symlink=True)

    def add_node(self, path: EntryPath, kind: int, device: int, attributes: Attributes) -> None:
        """Create a device node or FIFO; `kind` is S_IFCHR, S_IFBLK or S_IFIFO."""
        parent_fd = self.directory(path.parent)
        self._replacing(parent_fd, path, lambda: os.mknod(path.name, kind | 0o600, device, dir_fd=parent_fd))
        apply_to_name(parent_fd, path.name, attributes, same_owner=self.same_owner, symlink=False)

    def add_hardlink(self, path: EntryPath, target: EntryPath) -> None:
        """Link `path` to `target`, copying the target up from below if needed.

        The link shares its inode with the target, whose own entry already
        set the attributes, so the link entry's attributes are not applied.
        """
        if target.is_root:
            raise InvalidEntry("hard link to the layer root")
        if target.parts == path.parts:
            log.debug("hard link %s points to itself: nothing to do", path)
            return

        target_fd = self.directory(target.parent)
        st = self.lstat(target_fd, target.name)
        if st is None:
            lower = self.lowers.find(target.parts)
            if lower is None:
                raise InvalidEntry(f"hard link target {str(target)!r} is in neither this layer nor a lower one")
            self._copy_up(target_fd, target, lower)
        elif stat.S_ISDIR(st.st_mode):
            raise InvalidEntry(f"hard link target {str(target)!r} is a directory")
        elif is_overlay_whiteout(st):
            raise InvalidEntry(f"hard link target {str(target)!r} was deleted by this layer")

        parent_fd = self.directory(path.parent)
        self._replacing(
            parent_fd,
            path,
            lambda: os.link(target.name, path.name, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False),
        )

    def _copy_up(self, target_fd: int, target: EntryPath, lower: LowerEntry) -> None:
        """Copy a file or symlink from a lower layer into this one, as overlayfs would."""
        attributes = Attributes.from_stat(lower.stat, copyable_xattrs(lower.path))
        if stat.S_ISLNK(lower.stat.st_mode):
            os.symlink(os.readlink(lower.path), target.name, dir_fd=target_fd)
            apply_to_name(target_fd, target.name, attributes, same_owner=self.same_owner, symlink=True)
            return
        if not stat.S_ISREG(lower.stat.st_mode):
            raise InvalidEntry(f"hard link target {str(target)!r} in a lower layer is not a regular file")

        log.debug("copying %s up from a lower layer for a hard link", target)
        source = os.open(lower.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(target.name, NEW_FILE_FLAGS, 0o600, dir_fd=target_fd)
            try:
                with open(source, "rb", closefd=False) as reader:
                    copy_data(reader, fd)
                apply_to_fd(fd, attributes, same_owner=self.same_owner)
            finally:
                os.close(fd)
        finally:
            os.close(source)

    # -- Whiteouts ------------------------------------------------------------

    def add_whiteout(self, target: EntryPath) -> None:
        """Hide `target` in the lower layers, keeping what this layer put there."""
        parent_fd = self.directory(target.parent)
        st = self.lstat(parent_fd, target.name)
        if st is None:
            os.mknod(target.name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
        elif stat.S_ISDIR(st.st_mode):
            # This layer's own directory stays, and only the lower one goes.
            self.make_opaque(self.directory(target.parts))
        # Any other entry of this layer already hides the lower one.

    def make_opaque(self, directory_fd: int) -> None:
        """Mark a directory so that overlayfs shows nothing of the layers below it."""
        os.setxattr(directory_fd, OVERLAY_OPAQUE_XATTR, b"y")

    def finish(self) -> None:
        """Apply directory attributes, deepest directories first."""
        for parts in sorted(self._directories, key=len, reverse=True):
            try:
                fd = self._walk_to_directory(parts)
            except (FileNotFoundError, NotADirectoryError):
                log.debug("directory %s was replaced later in the layer", "/".join(parts))
                continue
            try:
                apply_to_fd(fd, self._directories[parts], same_owner=self.same_owner)
            finally:
                os.close(fd)
        self._directories.clear()


    def _walk_to_directory(self, parts: tuple[str, ...]) -> int:
        """Open a directory one name at a time without following symlinks.

        This saves an openat2 call per directory. A symlink on the way
        fails with ELOOP or ENOTDIR, and then openat2 repeats the lookup,
        following symlinks inside the root.
        """
        fd = self.root_fd
        try:
            for part in parts:
                next_fd = os.open(part, DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                if fd != self.root_fd:
                    os.close(fd)
                fd = next_fd
        except OSError as err:
            if fd != self.root_fd:
                os.close(fd)
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            return self._open_directory(parts)
        return fd


