"""Control groups: one interface over cgroup v1, hybrid and v2 hosts.

    manager = cgroups.open_cgroup("/pyrun/<container id>")
    manager.exists()                # True once created, until removed
    manager.create()
    manager.apply(resources)        # the OCI config.json "linux.resources" dict
    manager.add_process(pid)
    manager.pids(); manager.stats(); manager.freeze(); manager.thaw()
    manager.oom_killed()            # True after the kernel's OOM killer struck
    manager.remove()                # kill what is left, wait until empty, rmdir

Only this package deals with which layout the host has. The layout is
detected once per process from /proc/self/mountinfo and /proc/filesystems. Tests pass
their own `mountinfo` and `filesystems` files to point a manager at a
temporary directory laid out like a hierarchy.
"""

from __future__ import annotations

from runtime.cgroups.base import Cgroup
from runtime.cgroups.detect import FILESYSTEMS, MOUNTINFO, CgroupError, Layout, detect_layout
from runtime.cgroups.flags import add_resource_flags, cgroup_path, resources_from_args
from runtime.cgroups.stats import CgroupStats

__all__ = [
    "Cgroup",
    "CgroupError",
    "CgroupStats",
    "Layout",
    "add_resource_flags",
    "cgroup_path",
    "detect_layout",
    "open_cgroup",
    "resources_from_args",
]


def open_cgroup(path: str, *, mountinfo: str = MOUNTINFO, filesystems: str = FILESYSTEMS) -> Cgroup:
    """Return the manager for the cgroup at `path` ("pyrun/<id>" or "/pyrun/<id>").

    The path is relative to the root of each hierarchy, as an absolute OCI
    linux.cgroupsPath is. Nothing is created until `create()`.
    """
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(part in ("", ".", "..") for part in parts) or ":" in path:
        raise CgroupError(
            f"invalid cgroup path {path!r}",
            hint="use a path such as /pyrun/<id>; systemd's slice:prefix:name form is not supported",
        )
    layout = detect_layout(mountinfo, filesystems)
    if layout.kind == "v2":
        from runtime.cgroups.v2 import V2Cgroup

        return V2Cgroup(path, layout)
    from runtime.cgroups.v1 import V1Cgroup

    return V1Cgroup(path, layout)
