"""Build the container's filesystem view inside its new mount namespace.

The steps, run by the container's first process before it executes the
command (runc's libcontainer/rootfs_linux.go takes the same order):

1. make every mount private, so nothing below propagates back to the host;
2. bind the root filesystem onto itself: pivot_root(2) needs a mount point;
3. mount each entry of the spec's "mounts": /proc, /dev, /dev/pts, /sys,
   /dev/mqueue, /dev/shm, the generated /etc files, then -v and --tmpfs;
4. create the device nodes and the /dev symlinks in the new /dev
   (runtime.devices);
5. pivot_root into the root filesystem and detach the old root;
6. hide the masked paths and make the read-only paths read-only.

Mount targets are resolved with openat2(2) and RESOLVE_IN_ROOT, so a
symlink in the image (`/proc -> /host/proc`, `/etc/hosts -> ../../x`)
cannot point a mount outside the root filesystem. Below /proc, /sys and
/dev, symlinks are rejected outright. The resolved directory is then mounted
through its /proc/self/fd/N path, which names exactly the opened directory.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime import devices, syscalls
from runtime.errors import PyrunError
from runtime.mounts import parse_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

O_PATH = 0o10000000

# Destinations below these directories may not contain symlinks at all.
NO_SYMLINK_TREES = ("/proc", "/sys", "/dev")

# statvfs(3) f_flag bits that match the MS_* mount flags of the same name.
KEPT_STATVFS_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC


class RootfsError(PyrunError):
    """A mount destination in the image that cannot be used safely."""


def make_mounts_private() -> None:
    # Without this, mounts below would propagate into the host's shared
    # mounts (systemd makes / shared), and the host would see them.
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)


def bind_rootfs(rootfs: str) -> int:
    """Bind `rootfs` onto itself and return an O_PATH descriptor of the new mount."""
    syscalls.mount(rootfs, rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)
    return os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


# The kernel's limit on symlinks followed in one lookup (MAXSYMLINKS).
MAX_SYMLINKS = 40


def open_in_root(root_fd: int, destination: str, *, is_dir: bool = True, _links: int = 0,
                 _requested: str = "") -> int:
    """Open `destination` inside the root, creating what is missing; return an O_PATH fd.

    Symlinks are followed inside the root (RESOLVE_IN_ROOT), dangling ones
    too: the missing target is created inside the root, as runc does. Under
    /proc, /sys and /dev symlinks are rejected (RESOLVE_NO_SYMLINKS).

    Most destinations exist already, and one lookup of the whole path finds
    them. When the lookup fails, the parent is opened the same way (and
    created if missing), then the last component is created or followed.
    Errors name the destination the caller asked for (`_requested` in the
    recursion), and the symlink where the lookup stopped.
    """
    requested = _requested or destination
    # normpath keeps a leading "//" (POSIX allows it a meaning), so strip first.
    normalized = os.path.normpath("/" + destination.lstrip("/"))
    if normalized == "/":
        return os.dup(root_fd)
    resolve = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
    if any(normalized == tree or normalized.startswith(tree + "/") for tree in NO_SYMLINK_TREES):
        resolve |= syscalls.RESOLVE_NO_SYMLINKS
    try:
        return syscalls.openat2(root_fd, normalized[1:], O_PATH | os.O_CLOEXEC, resolve)
    except OSError as err:
        symlink_rejected = err.errno == errno.ELOOP and resolve & syscalls.RESOLVE_NO_SYMLINKS
        if err.errno != errno.ENOENT and not symlink_rejected:
            raise
        failure = err

    # The parent first: its own lookup names a symlink or failure higher up.
    parent, name = os.path.split(normalized)
    parent_fd = open_in_root(root_fd, parent, _links=_links, _requested=requested)
    try:
        if symlink_rejected:
            raise RootfsError(
                f"mount destination {requested!r}: the image has a symlink at {normalized}",
                hint="images may not redirect /proc, /sys or /dev with symlinks",
            ) from failure
        target = _dangling_symlink(parent_fd, name)
        if target is None:
            _create(parent_fd, name, directory=is_dir)
            return syscalls.openat2(root_fd, normalized[1:], O_PATH | os.O_CLOEXEC, resolve)
    finally:
        os.close(parent_fd)

    # A dangling symlink: follow it by hand to the path it names inside the root.
    if _links >= MAX_SYMLINKS:
        raise RootfsError(f"mount destination {requested!r}: too many levels of symlinks")
    return open_in_root(root_fd, os.path.join(parent, target), is_dir=is_dir, _links=_links + 1,
                        _requested=requested)


def _dangling_symlink(parent_fd: int, name: str) -> str | None:
    """Return the target of `name` in `parent_fd` if it is a symlink, else None."""
    try:
        return os.readlink(name, dir_fd=parent_fd)
    except OSError:
        return None


def read_file_in_root(rootfs: str, path: str) -> str:
    """Return the text of `path` inside `rootfs`, or "" when it is missing.

    Symlinks resolve inside the root, so an image's /etc/passwd that links
    to /host/etc/passwd reads the image's file, never the host's.
    """
    root_fd = os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = syscalls.openat2(root_fd, path.lstrip("/"), os.O_RDONLY | os.O_CLOEXEC, syscalls.RESOLVE_IN_ROOT)
    except FileNotFoundError:
        return ""
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return ""
        raise
    finally:
        os.close(root_fd)
    with open(fd, encoding="utf-8", errors="replace") as file:
        return file.read()


def _create(parent_fd: int, name: str, *, directory: bool) -> None:
    if directory:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    else:
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=parent_fd))


def fd_path(fd: int) -> str:
    """Return the magic link that names exactly what `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def mount_entry(root_fd: int, entry: dict[str, Any]) -> None:
    """Mount one OCI "mounts" entry inside the root."""
    kind = entry.get("type") or "none"
    if kind == "cgroup":
        mount_cgroup_filesystem(root_fd, entry)
        return
    options = entry.get("options") or []
    flags, propagation, data = parse_options(options)
    is_bind = kind == "bind" or flags & syscalls.MS_BIND
    source = entry.get("source") or kind
    is_dir = True
    if is_bind:
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as err:
            raise PyrunError(f"bind mount source {source!r}: {err.strerror}") from err

    target_fd = open_in_root(root_fd, entry["destination"], is_dir=is_dir)
    try:
        if is_bind:
            syscalls.mount(source, fd_path(target_fd), None, syscalls.MS_BIND | (flags & syscalls.MS_REC))
        else:
            syscalls.mount(source, fd_path(target_fd), kind, flags, data or None)
    finally:
        os.close(target_fd)

    # A bind mount takes its flags only from a second, remounting call. That
    # call and a propagation change act on the new mount, which the old fd
    # (the directory underneath) does not name, so the path is opened again.
    extra = flags & ~(syscalls.MS_BIND | syscalls.MS_REC) if is_bind else 0
    if not extra and not propagation:
        return
    mounted_fd = open_in_root(root_fd, entry["destination"], is_dir=is_dir)
    try:
        if extra:
            syscalls.mount(None, fd_path(mounted_fd), None, syscalls.MS_BIND | syscalls.MS_REMOUNT | extra)
        if propagation:
            syscalls.mount(None, fd_path(mounted_fd), None, propagation)
    finally:
        os.close(mounted_fd)


def mount_cgroup_filesystem(root_fd: int, entry: dict[str, Any]) -> None:
    """Mount the container's view of the cgroup hierarchies, as runc does for type "cgroup".

    In its cgroup namespace, the container's own cgroup is the root of each hierarchy.
    On cgroup v2 that is one cgroup2 mount. On v1 and hybrid hosts it is a
    tmpfs with one cgroup mount per hierarchy (controllers mounted together
    on the host, such as cpu,cpuacct, must be mounted together here too),
    plus cgroup2 at "unified" on a hybrid host.
    """
    from runtime.cgroups import detect_layout

    flags, _, _ = parse_options(entry.get("options") or [])
    layout = detect_layout()
    if layout.kind == "v2":
        mount_entry(root_fd, {**entry, "type": "cgroup2", "source": "cgroup2"})
        return

    destination = entry["destination"].rstrip("/")
    mount_entry(root_fd, {"destination": destination, "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "noexec", "mode=755"]})
    hierarchies: dict[str, list[str]] = {}
    for controller, mount_point in sorted(layout.v1_mounts.items()):
        hierarchies.setdefault(mount_point, []).append(controller)
    mounts = [(os.path.basename(point), "cgroup", ",".join(controllers))
              for point, controllers in hierarchies.items()]
    if layout.unified:
        mounts.append(("unified", "cgroup2", None))

    # The tmpfs was mounted just now and is empty, so its directories are
    # made and reached by name: no symlink of the image can be in the way.
    tmpfs_fd = open_in_root(root_fd, destination)
    try:
        for name, fstype, data in mounts:
            os.mkdir(name, 0o755, dir_fd=tmpfs_fd)
            syscalls.mount(fstype, f"{fd_path(tmpfs_fd)}/{name}", fstype, flags, data)
    finally:
        os.close(tmpfs_fd)


def pivot_into(rootfs: str) -> None:
    """Make `rootfs` the root and detach the old one (pivot_root(".", ".")).

    With both arguments ".", the old root ends up stacked on top of the new
    one at "/", and umount2(".", MNT_DETACH) removes it. No directory for
    the old root is needed, and no path to the host remains.
    """
    syscalls.chdir(rootfs)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    syscalls.chdir("/")


def mask_paths(paths: list[str]) -> None:
    """Hide each path: /dev/null over a file, an empty read-only tmpfs over a directory."""
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except FileNotFoundError:
            continue
        if is_dir:
            syscalls.mount("tmpfs", path, "tmpfs", syscalls.MS_RDONLY, None)
        else:
            syscalls.mount("/dev/null", path, None, syscalls.MS_BIND)


def make_readonly(paths: list[str]) -> None:
    """Bind each path onto itself, then remount that bind read-only."""
    for path in paths:
        try:
            inherited = os.statvfs(path).f_flag & KEPT_STATVFS_FLAGS
        except FileNotFoundError:
            continue
        syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
        syscalls.mount(None, path, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY | inherited)


def make_root_readonly() -> None:
    """Remount / read-only for `--read-only`; the mounts on top stay writable."""
    syscalls.mount(None, "/", None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)


def mount_filesystems(spec: dict[str, Any], bundle: str,
                      before_cgroup: Callable[[], None] | None = None) -> str:
    """Run steps 1 to 4 above for the config.json dict `spec`; return the rootfs path.

    `before_cgroup()` runs before the first cgroup filesystem is mounted, or
    after the last mount when there is none: a cgroup mount shows the
    cgroups of the process that mounts it, which must be the container's.
    """
    rootfs = os.path.join(bundle, spec["root"]["path"])
    make_mounts_private()
    root_fd = bind_rootfs(rootfs)
    try:
        for entry in spec.get("mounts", []):
            if before_cgroup and entry.get("type") in ("cgroup", "cgroup2"):
                before_cgroup()
                before_cgroup = None
            mount_entry(root_fd, entry)
        if before_cgroup:
            before_cgroup()
        # The working directory is created when the image lacks it, as Docker does.
        os.close(open_in_root(root_fd, spec["process"].get("cwd") or "/"))
    finally:
        os.close(root_fd)
    devices.create_devices(rootfs, spec.get("linux", {}).get("devices", []))
    return rootfs


def finish_rootfs(spec: dict[str, Any], rootfs: str) -> None:
    """Run steps 5 and 6: pivot_root, masked and read-only paths, --read-only."""
    pivot_into(rootfs)
    linux = spec.get("linux", {})
    mask_paths(linux.get("maskedPaths", []))
    make_readonly(linux.get("readonlyPaths", []))
    if spec["root"].get("readonly"):
        make_root_readonly()
