"""Device nodes in the container's /dev: the defaults, --privileged's, the console.

A container's /dev is a fresh tmpfs, so its device nodes are made with
mknod(2): the six every container gets (runtime-spec config-linux.md,
"Default Devices"), plus the "linux.devices" of the spec, which for
--privileged are the host's. The devices cgroup, not the node, decides
whether the container may open a device.
"""

from __future__ import annotations

import os
import stat

from runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The device nodes every container gets: name, major, minor.
DEFAULT_DEVICES = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
]

DEV_SYMLINKS = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
]


def create_devices(rootfs: str, devices: list[dict[str, Any]] = ()) -> None:
    """Create the default device nodes, the spec's "linux.devices" and the /dev symlinks.

    The targets lie in the /dev tmpfs mounted just before, which the image
    cannot have filled with symlinks.
    """
    dev = os.path.join(rootfs, "dev")
    for name, major, minor in DEFAULT_DEVICES:
        path = os.path.join(dev, name)
        syscalls.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        # mknod(2) applies the umask; the nodes must be usable by every user.
        os.chmod(path, 0o666)
    defaults = {f"/dev/{name}" for name, _, _ in DEFAULT_DEVICES}
    for device in devices:
        if device["path"] in defaults or not device["path"].startswith("/dev/"):
            continue
        path = os.path.join(rootfs, device["path"].lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kind = stat.S_IFBLK if device["type"] == "b" else stat.S_IFCHR
        mode = device.get("fileMode", 0o666) & 0o7777
        syscalls.mknod(path, kind | mode, os.makedev(device["major"], device["minor"]))
        os.chmod(path, mode)
        os.chown(path, device.get("uid", 0), device.get("gid", 0))
    for target, name in DEV_SYMLINKS:
        syscalls.symlink(target, os.path.join(dev, name))


# Entries of the host's /dev that --privileged does not copy: other mounts,
# and nodes the container gets its own of.
HOST_DEV_SKIPPED = {"pts", "shm", "mqueue", "fd", "console", "ptmx", "core"}


def host_devices() -> list[dict[str, Any]]:
    """List the host's device nodes as OCI "linux.devices" entries, for --privileged."""
    devices = []
    for directory, subdirectories, files in os.walk("/dev"):
        if directory == "/dev":
            subdirectories[:] = [name for name in subdirectories if name not in HOST_DEV_SKIPPED]
        for name in files:
            path = os.path.join(directory, name)
            if directory == "/dev" and name in HOST_DEV_SKIPPED:
                continue
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
                continue
            devices.append({
                "path": path,
                "type": "b" if stat.S_ISBLK(info.st_mode) else "c",
                "major": os.major(info.st_rdev),
                "minor": os.minor(info.st_rdev),
                "fileMode": stat.S_IMODE(info.st_mode),
                "uid": info.st_uid,
                "gid": info.st_gid,
            })
    return devices


def bind_console(rootfs: str, console_fd: int) -> None:
    """Bind the container's terminal over /dev/console, as runc does for `-t`."""
    path = os.path.join(rootfs, "dev", "console")
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
    syscalls.mount(f"/proc/self/fd/{console_fd}", path, None, syscalls.MS_BIND)
