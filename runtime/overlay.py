"""The container's root filesystem: an overlay mount of the image's layers.

overlayfs (Documentation/filesystems/overlayfs.rst in the kernel) stacks
read-only lower directories, the image layers with the top layer first, under
one writable upper directory. Writes go to `upper/`; `work/` is overlayfs's
scratch space and must be on the same filesystem as `upper/`.

mount(2) copies its data argument into one page, so the option string must
stay under 4096 bytes. A few layers fit there by their full paths. Forty
layers at /var/lib/pyrun/layers/<64 hex> would not. Then, as in Docker's
overlay2 driver, each layer gets a short symlink in the container directory
(`l/0`, `l/1`, ...). The mount runs with that directory as the working
directory, and the option string names each layer in a few bytes. The links
are made only when they are needed: they cost a directory and a file per
layer to create and to delete, on every `run --rm`.
"""

from __future__ import annotations

import errno
import os

from runtime import syscalls
from runtime.errors import PyrunError
from runtime.log import get_logger

log = get_logger(__name__)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# The kernel's limit on lower layers (OVL_MAX_STACK in fs/overlayfs/params.h).
MAX_LAYERS = 500


def overlay_options(layer_count: int, volatile: bool = False) -> str:
    """Return the mount data for `layer_count` layers linked as l/0 (lowest) and up."""
    lower = ":".join(f"l/{index}" for index in reversed(range(layer_count)))
    data = f"lowerdir={lower},upperdir=upper,workdir=work"
    return data + ",volatile" if volatile else data


def direct_options(container_dir: str, layer_dirs: list[str], volatile: bool = False) -> str:
    """Return the mount data that names every directory by its full path, or "" when it cannot.

    It cannot when the string would not fit in a page, or when a path contains
    a character that the option syntax gives a meaning (`,` `:` `\\` `=`).
    """
    lower = [os.path.abspath(layer_dir) for layer_dir in reversed(layer_dirs)]
    upper = os.path.join(os.path.abspath(container_dir), "upper")
    work = os.path.join(os.path.abspath(container_dir), "work")
    if any(mark in path for path in (*lower, upper, work) for mark in ",:\\="):
        return ""
    data = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if volatile:
        data += ",volatile"
    return data if len(data) < PAGE_SIZE else ""


def mount_overlay(container_dir: str, layer_dirs: list[str], *, volatile: bool = False) -> str:
    """Mount the layers (lowest first) at `container_dir`/rootfs; return that path.

    Creates `upper/`, `work/` and `rootfs/` inside `container_dir`, and `l/`
    when the layers' paths are too long for the options. `volatile` (for
    `--rm` containers, whose upper directory is deleted anyway) skips syncing
    the upper filesystem: without it, the unmount waits for syncfs(2) of the
    whole host filesystem, which took 0.5 s on the development VM. Kernels
    before 5.10 reject the option; the mount is then retried without it.
    """
    if not layer_dirs:
        raise PyrunError("the image has no layers: there is no root filesystem to mount")
    if len(layer_dirs) > MAX_LAYERS:
        raise PyrunError(f"the image has {len(layer_dirs)} layers; overlayfs stacks at most {MAX_LAYERS}")

    # mkdir, not makedirs: a container directory that `rm -f` removed while
    # the container started must not be made again.
    for name in ("upper", "work", "rootfs"):
        try:
            os.mkdir(os.path.join(container_dir, name))
        except FileExistsError:
            pass
    rootfs = os.path.join(container_dir, "rootfs")
    data = direct_options(container_dir, layer_dirs, volatile)
    try:
        if data:
            _mount(rootfs, data, volatile)
        else:
            _mount_linked(container_dir, layer_dirs, volatile)
    except OSError as err:
        raise PyrunError(
            f"mount overlay at {rootfs}: {err.strerror}",
            hint="is the store on a filesystem that overlayfs accepts as upperdir (not overlayfs itself)?",
        ) from err
    log.debug("mounted %d layers at %s", len(layer_dirs), rootfs)
    return rootfs


def linked_layers(container_dir: str) -> list[str]:
    """Return the layer links of a container mounted through l/ (lowest first), or [] without l/."""
    links = os.path.join(container_dir, "l")
    try:
        count = len(os.listdir(links))
    except FileNotFoundError:
        return []
    return [os.path.join(links, str(index)) for index in range(count)]


def _mount_linked(container_dir: str, layer_dirs: list[str], volatile: bool) -> None:
    """Link the layers as l/0, l/1, ... and mount with options relative to `container_dir`."""
    links = os.path.join(container_dir, "l")
    os.makedirs(links, exist_ok=True)
    for index, layer_dir in enumerate(layer_dirs):
        link = os.path.join(links, str(index))
        if not os.path.islink(link):
            os.symlink(os.path.abspath(layer_dir), link)
    data = overlay_options(len(layer_dirs), volatile)
    if len(data) >= PAGE_SIZE:
        raise PyrunError(f"the overlay options for {len(layer_dirs)} layers exceed one page ({PAGE_SIZE} bytes)")
    # The relative paths in `data` are resolved against the working directory
    # at mount time, so the mount runs from inside the container directory.
    previous = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syscalls.chdir(container_dir)
        _mount("rootfs", data, volatile)
    finally:
        syscalls.fchdir(previous, path="the previous working directory")
        os.close(previous)


def _mount(target: str, data: str, volatile: bool) -> None:
    """Mount the overlay at `target`; retry without "volatile" on a kernel that rejects it."""
    try:
        syscalls.mount("overlay", target, "overlay", 0, data)
    except OSError as err:
        if not volatile or err.errno != errno.EINVAL:
            raise
        syscalls.mount("overlay", target, "overlay", 0, data.removesuffix(",volatile"))


def unmount_overlay(rootfs: str) -> None:
    """Detach the overlay mount; a rootfs that is not mounted is left as it is."""
    try:
        syscalls.umount2(rootfs, syscalls.MNT_DETACH)
    except OSError as err:
        # EINVAL: not a mount point (already unmounted); ENOENT: the directory is gone.
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise
