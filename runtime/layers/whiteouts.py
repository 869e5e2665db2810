"""Entry names in a layer tar: where they point and which ones are whiteouts.

The OCI image spec ("Representing Changes" in layer.md) marks deletions
with empty files whose names carry a prefix:

- ``DIR/.wh.NAME`` deletes NAME from the lower layers. overlayfs spells the
  same thing as a character device 0:0 named NAME (a "whiteout").
- ``DIR/.wh..wh..opq`` hides everything the lower layers have in DIR, but
  nothing this layer puts there. overlayfs spells it as the extended
  attribute ``trusted.overlay.opaque=y`` on DIR (an "opaque directory").

Other names starting with ``.wh..wh.`` are AUFS bookkeeping, such as the
``.wh..wh.plnk`` hard-link directory. Docker's archive package treats them
as metadata rather than deletions, and pyrun skips them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# overlayfs keeps its own state in trusted.overlay.* (opaque, redirect,
# origin, metacopy). A layer that carries such xattrs could steer overlayfs
# to other files, so they are never taken from a tar entry.
OVERLAY_XATTR_PREFIX = "trusted.overlay."


class InvalidEntry(ValueError):
    """A tar entry that pyrun rejects; the message gives the reason."""


@dataclass(frozen=True)
class EntryPath:
    """Where a tar entry lands: its parent directory and its own name.

    `parent` is a tuple of path components below the layer root. `name` is
    one component, never empty, ``.`` or ``..``, except for an entry that
    names the layer root itself, where both are empty.
    """

    parent: tuple[str, ...]
    name: str

    @property
    def is_root(self) -> bool:
        return not self.name

    @property
    def parts(self) -> tuple[str, ...]:
        return self.parent + (self.name,) if self.name else ()

    def __str__(self) -> str:
        return "/".join(self.parts) or "."


def entry_path(name: str) -> EntryPath:
    """Split a tar member name into its place below the layer root.

    A leading ``/`` is dropped, as GNU tar does, so absolute names land
    inside the layer. ``.`` and empty components are skipped, and ``..``
    removes the component before it. A ``..`` that would climb above the
    root raises `InvalidEntry`, as Docker does: only a hostile or broken
    image has one.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidEntry("name climbs above the layer root with '..'")
            parts.pop()
            continue
        parts.append(part)

    if not parts:
        return EntryPath((), "")
    return EntryPath(tuple(parts[:-1]), parts[-1])


def is_opaque_marker(path: EntryPath) -> bool:
    return path.name == OPAQUE_MARKER


def is_aufs_metadata(path: EntryPath) -> bool:
    """Return True for ``.wh..wh.*`` names other than the opaque marker, and their contents.

    NOTE: AUFS-era layers could hard-link to files kept in
    ``.wh..wh.plnk``; such links fail here as their target is skipped.
    """
    if any(part.startswith(WHITEOUT_META_PREFIX) for part in path.parent):
        return True
    return path.name.startswith(WHITEOUT_META_PREFIX) and path.name != OPAQUE_MARKER


def whiteout_target(path: EntryPath) -> EntryPath | None:
    """Return the path a ``.wh.NAME`` entry deletes, or None for other entries.

    ``.wh.`` alone, ``.wh..`` and ``.wh...`` would delete the directory
    itself or its parent, which no image builder writes, so they raise
    `InvalidEntry`.
    """
    if not path.name.startswith(WHITEOUT_PREFIX) or path.name.startswith(WHITEOUT_META_PREFIX):
        return None
    target = path.name[len(WHITEOUT_PREFIX):]
    if target in ("", ".", ".."):
        raise InvalidEntry(f"whiteout {path.name!r} names no file in its directory")
    return EntryPath(path.parent, target)


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """Return True for overlayfs's whiteout: a character device 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
