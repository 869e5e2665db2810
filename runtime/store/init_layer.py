"""The init layer: the mountpoints that an image lacks, as one read-only layer.

Every container gets files mounted over /etc/hostname, /etc/hosts and
/etc/resolv.conf, and filesystems over /proc, /sys and /dev. A mount needs
a file or directory to cover. Many images lack some of them: busybox's
has no /etc/hosts and no /etc/resolv.conf. The container's first
process would then create them in the container's root filesystem, so
overlayfs would copy /etc up into the container's upper directory, and the
clean-up would delete it again, for every container.

Docker gives each container an init layer for this, the topmost of its
read-only layers, with the mountpoints in it (moby's daemon/initlayer
package). pyrun makes one per image, shared by all containers of that
image, because it contains only what the image lacks:

    <root>/init-layers/<image id hex>/

The first container of an image makes it in the store's tmp/ directory
and renames it into place. It is the topmost lower layer of the overlay
(runtime.container). In the merged view, a directory takes its mode,
owner, times and extended attributes from the topmost layer that has it.
So a directory that the image has, such as /etc, is made here with the
image's mode, owner, modification time and extended attributes (ACLs
among them). Only what the image lacks is made. A mountpoint that the
image has, of any kind, is left as it is. So is one whose parent in the
image is a symbolic link or a file: the container's first process resolves
it inside the root filesystem, or reports the error (runtime.rootfs).

An init layer with nothing in it is not stacked, and neither is one for an
image at overlayfs's limit on lower layers. The garbage collector of `rmi`
and `image prune` deletes the init layers of the images it deletes.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.log import get_logger
from runtime.overlay import MAX_LAYERS
from runtime.store.layout import StoreLayout, hex_of, remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.layers.lowers import LowerEntry, LowerLayers
    from runtime.store.images import Image

# The mountpoints of the mounts every container gets (runtime.spec), each a
# path below the root and whether it is a directory. The mounts below /dev
# and /sys land inside the filesystems mounted there, not in a layer.
MOUNTPOINTS = (
    ("proc", True),
    ("sys", True),
    ("dev", True),
    ("etc/hostname", False),
    ("etc/hosts", False),
    ("etc/resolv.conf", False),
)

log = get_logger(__name__)

# The modes of what the image lacks, set with chmod(2) so the umask of
# the pyrun that made the layer cannot narrow them for later containers.
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644


def init_layers_dir(root: str) -> str:
    return os.path.join(root, "init-layers")


def init_layer_path(root: str, image_id: str) -> str:
    return os.path.join(init_layers_dir(root), hex_of(image_id))


def rootfs_layers(root: str, image: Image) -> list[str]:
    """Make the image's init layer if it does not exist yet; return a container's lower layers, lowest first.

    Those are the image's layers, then its init layer unless it is empty or
    the image is at the limit. When making the init layer fails, the
    container runs on the image's layers alone, as it would without an init
    layer, and the failure is logged.
    """
    if not image.layer_dirs or len(image.layer_dirs) >= MAX_LAYERS:
        # mount_overlay reports an image without layers, and one at the limit has no room for more.
        return list(image.layer_dirs)
    directory = init_layer_path(root, image.id)
    try:
        status = os.stat(directory)
    except OSError:
        try:
            _make_init_layer(root, image, directory)
            status = os.stat(directory)
        except OSError as err:
            log.warning("failed to make the init layer of image %s at %s: %s; its containers copy "
                        "/etc up into their upper directories instead", image.id, directory, err)
            return list(image.layer_dirs)
    # The layer's top level contains only directories (etc, proc, sys, dev),
    # and a directory's link count is 2 plus its number of subdirectories:
    # 2 means an empty layer. On a file system that does not count
    # subdirectories this way, an init layer may be left out, which only
    # gives up what it saves.
    if not stat.S_ISDIR(status.st_mode) or status.st_nlink <= 2:
        return list(image.layer_dirs)
    return [*image.layer_dirs, directory]


def _make_init_layer(root: str, image: Image, directory: str) -> None:
    # Imported here because they import dataclasses, and only the first container of an image gets here.
    from runtime.layers.files import Attributes, apply_to_fd
    from runtime.layers.lowers import LowerLayers, copyable_xattrs

    layout = StoreLayout(root)
    os.makedirs(layout.tmp, exist_ok=True)
    building = os.path.join(layout.tmp, f"init-{hex_of(image.id)}-{os.getpid()}")
    if os.path.lexists(building):
        remove_tree(building)  # left by a killed pyrun that had the same pid
    os.mkdir(building)
    os.chmod(building, DIRECTORY_MODE)
    try:
        lowers = LowerLayers(image.layer_dirs)
        copied_directories: list[tuple[str, LowerEntry]] = []
        for path, is_directory in MOUNTPOINTS:
            _add_mountpoint(building, lowers, tuple(path.split("/")), is_directory, copied_directories)
        # Last, because making an entry in a directory changes its modification time.
        # The unpacker gives a directory missing from a layer's tar the same attributes.
        for target, image_directory in copied_directories:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                attributes = Attributes.from_stat(image_directory.stat, copyable_xattrs(image_directory.path))
                apply_to_fd(fd, attributes, same_owner=True)
            finally:
                os.close(fd)
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        try:
            os.rename(building, directory)
        except OSError as err:
            # Another container of this image made it first. rename(2) does
            # not replace a directory that has entries. It does replace an
            # empty one, whose content is the same: nothing.
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        log.debug("made the init layer of image %s at %s", image.id, directory)
    finally:
        if os.path.lexists(building):
            remove_tree(building)


def _add_mountpoint(building: str, lowers: LowerLayers, parts: tuple[str, ...], is_directory: bool,
                    copied_directories: list[tuple[str, LowerEntry]]) -> None:
    """Make `parts` in the layer being built when the image lacks it, with its parent directories."""
    parents_in_image = []  # the mountpoint's parent directories that the image has, outermost first
    for depth in range(1, len(parts) + 1):
        found = lowers.find(parts[:depth])
        if found is None:
            break
        if depth == len(parts):
            return  # the image has the mountpoint
        if not stat.S_ISDIR(found.stat.st_mode):
            return  # a symlink or a file where a directory should be: left to the container
        parents_in_image.append(found)
    current = building
    for depth, part in enumerate(parts, start=1):
        current = os.path.join(current, part)
        if os.path.lexists(current):
            continue  # made for an earlier mountpoint
        if depth < len(parts) or is_directory:
            os.mkdir(current)
            os.chmod(current, DIRECTORY_MODE)
            if depth <= len(parents_in_image):
                copied_directories.append((current, parents_in_image[depth - 1]))
        else:
            os.close(os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC))
            os.chmod(current, FILE_MODE)


def remove_unused_init_layers(root: str, image_ids: set[str]) -> None:
    """Delete the init layers of images that are no longer in the store (`image_ids` are those left)."""
    keep = {hex_of(image_id) for image_id in image_ids}
    directory = init_layers_dir(root)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    tmp = StoreLayout(root).tmp
    os.makedirs(tmp, exist_ok=True)
    for name in names:
        if name not in keep:
            # Renamed first, as the collector does with layers, so that a
            # half-deleted init layer never sits at its path.
            trash = os.path.join(tmp, f"trash-init-{name}-{os.getpid()}")
            os.rename(os.path.join(directory, name), trash)
            remove_tree(trash)
