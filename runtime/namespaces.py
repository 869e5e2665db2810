"""Linux namespaces (namespaces(7)): what a container gets its own copy of.

The OCI spec lists namespaces by type ("pid", "mount", ...); unshare(2)
takes CLONE_NEW* flags. Two of them take effect in a special way:

- CLONE_NEWPID moves only the caller's future children into the new pid
  namespace, so the process that unshares forks once more, and that child
  is pid 1 (clone3(2) with the flag makes the new child pid 1 at once);
- CLONE_NEWCGROUP makes the caller's current cgroup the root of its view,
  so it is unshared only after the process has joined the container's
  cgroup.
"""

from __future__ import annotations

import _socket  # not socket, which imports enum and selectors: see runtime.launch
import os
import struct

from runtime import syscalls

NAMESPACE_FLAGS = {
    "pid": syscalls.CLONE_NEWPID,
    "network": syscalls.CLONE_NEWNET,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
    "mount": syscalls.CLONE_NEWNS,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "user": syscalls.CLONE_NEWUSER,
}

# /proc/<pid>/ns/<name> for each spec type, for setns(2) and for tests.
PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "cgroup": "cgroup",
    "user": "user",
}

IFF_UP = 0x1
# struct ifreq: the name, the flags, and padding to its 40 bytes.
IFREQ_FORMAT = "16sh22x"


def clone_flags(spec: dict) -> int:
    """Return the CLONE_NEW* flags for the spec's namespaces that have no "path"."""
    flags = 0
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if not namespace.get("path"):
            flags |= NAMESPACE_FLAGS[namespace["type"]]
    return flags


def join_namespaces(spec: dict) -> None:
    """setns(2) into each spec namespace that has a "path", such as another container's network."""
    for namespace in spec.get("linux", {}).get("namespaces", []):
        path = namespace.get("path")
        if not path:
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, NAMESPACE_FLAGS[namespace["type"]], path=path)
        finally:
            os.close(fd)


def unshare_namespaces(flags: int) -> None:
    """Move the calling process into new namespaces of the given kinds."""
    syscalls.unshare(flags)


def set_hostname(name: str) -> None:
    """Set the hostname in the new UTS namespace; the host's hostname stays as it is."""
    syscalls.sethostname(name)


def bring_up_loopback() -> None:
    """Set the IFF_UP flag on `lo`: a new network namespace starts with it down.

    The flags travel in a `struct ifreq` (netdevice(7)).
    """
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack(IFREQ_FORMAT, b"lo", 0)
        reply = syscalls.ioctl(sock.fileno(), syscalls.SIOCGIFFLAGS, request)
        flags = struct.unpack(IFREQ_FORMAT, reply)[1] if isinstance(reply, bytes) else 0
        syscalls.ioctl(sock.fileno(), syscalls.SIOCSIFFLAGS, struct.pack(IFREQ_FORMAT, b"lo", flags | IFF_UP))
    finally:
        sock.close()
