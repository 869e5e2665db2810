"""The layers below the one being unpacked, as overlayfs will merge them.

Each layer is unpacked into its own directory, so a layer cannot see what
the layers under it hold. Two kinds of entry need that view, and this
module provides it (read-only: nothing here writes to a lower layer):

- a file whose parent directory is missing from this layer's tar: the
  parent is created with the attributes of the same directory below, as
  containerd's overlay applier does;
- a hard link whose target lives in a lower layer: the target is copied up
  into this layer first, as overlayfs itself copies a file up when a
  container links to it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from runtime.layers.whiteouts import OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, is_overlay_whiteout


@dataclass(frozen=True)
class LowerEntry:
    """A file or directory found in a lower layer, with its lstat result."""

    path: str
    stat: os.stat_result


class LowerLayers:
    """The unpacked directories of the lower layers, lowest first.

    The directories are pyrun's own earlier output and do not change while
    a layer is unpacked on top of them. Lookups still check every path
    component with lstat, so no symlink inside a lower layer is followed.
    """

    def __init__(self, dirs: list[str] | tuple[str, ...] = ()) -> None:
        self.dirs = [os.fspath(d) for d in dirs]

    def find(self, parts: tuple[str, ...]) -> LowerEntry | None:
        """Return what the merged lower layers show at `parts`, or None.

        Layers are searched from the top. A whiteout hides the path, a
        non-directory where a parent should be hides it, and an opaque
        directory stops the search from going into the layers below.
        """
        for layer in reversed(self.dirs):
            path = layer
            stop_below = False
            for index, part in enumerate(parts):
                path = os.path.join(path, part)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    break
                if is_overlay_whiteout(st):
                    return None
                if index == len(parts) - 1:
                    return LowerEntry(path, st)
                if not stat.S_ISDIR(st.st_mode):
                    return None
                if _is_opaque(path):
                    stop_below = True
            if stop_below:
                return None
        return None


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        # ENODATA when the xattr is absent, EPERM or ENOTSUP without
        # CAP_SYS_ADMIN: in both cases overlayfs would not see it either.
        return False


def copyable_xattrs(path: str) -> dict[str, bytes]:
    """Return the extended attributes of `path` that may be copied up.

    overlayfs's own attributes (trusted.overlay.*) describe the lower
    layer's place in a stack, not the file, so they stay behind.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    values = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        try:
            values[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return values
