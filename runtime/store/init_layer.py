"""The init layer: the mountpoints that an image lacks, as one read-only layer.

Every container gets files mounted over /etc/hostname, /etc/hosts and
/etc/resolv.conf, and filesystems over /proc, /sys and /dev. A mount needs
a file or directory to cover. Many images lack some of them: an image that
`docker build` made never contains /etc/hosts. The container's first
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
(runtime.container). In the merged view, a directory takes its mode, owner
and times from the topmost layer that has it. So a directory that the image
has, such as /etc, is made here with the image's mode, owner and
modification time. A mountpoint below a symbolic link, or one that the
image has as another kind of file, is left to the container's first
process, which resolves it inside the root filesystem (runtime.rootfs).
`rmi` and `image prune` delete the init layer with its image.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.log import get_logger
from runtime.store.layout import StoreLayout, hex_of, remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.layers.lowers import LowerLayers
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

DIRECTORY_MODE = 0o755  # for a directory that the image lacks
FILE_MODE = 0o644


def init_layers_dir(root: str) -> str:
    return os.path.join(root, "init-layers")


def init_layer_path(root: str, image_id: str) -> str:
    return os.path.join(init_layers_dir(root), hex_of(image_id))


def rootfs_layers(root: str, image: Image) -> list[str]:
    """Return the lower layers of a container of `image`, lowest first: the image's, then its init layer.

    The init layer is made when it does not exist yet. When that fails, the
    container runs on the image's layers alone, as it would without an init
    layer, and the failure is logged.
    """
    directory = init_layer_path(root, image.id)
    if not os.path.isdir(directory):
        try:
            _make_init_layer(root, image, directory)
        except OSError as err:
            log.warning("could not make the init layer of image %s at %s: %s", image.id, directory, err)
            return list(image.layer_dirs)
    return [*image.layer_dirs, directory]


def _make_init_layer(root: str, image: Image, directory: str) -> None:
    # Imported here because it imports dataclasses, and only the first container of an image gets here.
    from runtime.layers.lowers import LowerLayers

    layout = StoreLayout(root)
    os.makedirs(layout.tmp, exist_ok=True)
    building = os.path.join(layout.tmp, f"init-{hex_of(image.id)}-{os.getpid()}")
    if os.path.lexists(building):
        remove_tree(building)  # left by a killed pyrun that had the same pid
    os.mkdir(building, DIRECTORY_MODE)
    try:
        lowers = LowerLayers(image.layer_dirs)
        copied_directories: list[tuple[str, os.stat_result]] = []
        for path, is_directory in MOUNTPOINTS:
            _add_mountpoint(building, lowers, tuple(path.split("/")), is_directory, copied_directories)
        # Last, because making an entry in a directory changes its modification time.
        for target, attributes in copied_directories:
            _copy_attributes(target, attributes)
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        try:
            os.rename(building, directory)
        except OSError as err:
            # Another container of this image made it first: rename(2) does
            # not replace a directory that has entries.
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        if os.path.lexists(building):
            remove_tree(building)


def _add_mountpoint(building: str, lowers: LowerLayers, parts: tuple[str, ...], is_directory: bool,
                    copied_directories: list[tuple[str, os.stat_result]]) -> None:
    """Make `parts` in the layer being built when the image lacks it, with the parent directories."""
    existing = []  # the image's directories above the mountpoint
    for depth in range(1, len(parts) + 1):
        found = lowers.find(parts[:depth])
        if found is None:
            break
        if depth == len(parts):
            return  # the image has the mountpoint
        if not stat.S_ISDIR(found.stat.st_mode):
            return  # a symlink or a file where a directory should be: left to the container
        existing.append(found.stat)
    current = building
    for depth, part in enumerate(parts, start=1):
        current = os.path.join(current, part)
        if os.path.lexists(current):
            continue  # made for an earlier mountpoint
        if depth <= len(existing):
            os.mkdir(current, DIRECTORY_MODE)
            copied_directories.append((current, existing[depth - 1]))
        elif depth < len(parts) or is_directory:
            os.mkdir(current, DIRECTORY_MODE)
        else:
            os.close(os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, FILE_MODE))


def _copy_attributes(path: str, attributes: os.stat_result) -> None:
    """Give the directory `path` the mode, owner and times of the image's directory."""
    os.chown(path, attributes.st_uid, attributes.st_gid)
    os.chmod(path, stat.S_IMODE(attributes.st_mode))
    os.utime(path, ns=(attributes.st_atime_ns, attributes.st_mtime_ns))


def remove_unused_init_layers(root: str, image_ids: set[str]) -> None:
    """Delete the init layers of images that are no longer in the store (`image_ids` are those left)."""
    keep = {hex_of(image_id) for image_id in image_ids}
    directory = init_layers_dir(root)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name not in keep:
            remove_tree(os.path.join(directory, name))
