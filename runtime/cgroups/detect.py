"""Find the cgroup hierarchies this host has mounted: v1, hybrid or v2.

There are three layouts in use (cgroups(7)):

- v2 ("unified"): one cgroup2 mount, usually at /sys/fs/cgroup, that carries
  every controller.
- v1: one cgroup mount per controller, or per group of co-mounted
  controllers (/sys/fs/cgroup/memory, /sys/fs/cgroup/cpu,cpuacct, ...).
- hybrid: the v1 mounts carry the controllers, and a cgroup2 mount at
  /sys/fs/cgroup/unified carries none of them (or only the few that no v1
  mount claims, such as hugetlb).

The layout is read from /proc/self/mountinfo (what is mounted where) and
/proc/filesystems (whether the kernel supports cgroup2 at all).
"""

from __future__ import annotations


from runtime.errors import PyrunError
from runtime.log import get_logger
from runtime.records import factory, record

log = get_logger(__name__)

MOUNTINFO = "/proc/self/mountinfo"
FILESYSTEMS = "/proc/filesystems"

# Mount options of a v1 cgroup mount that are not controller names
# (see "Mounting v1 controllers" in cgroups(7) and the kernel's
# Documentation/admin-guide/cgroup-v1/cgroups.rst).
V1_MOUNT_OPTIONS = {
    "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
    "favordynmods", "nofavordynmods", "nosuid", "nodev", "noexec", "relatime",
}


class CgroupError(PyrunError):
    """A cgroup could not be found, created, configured, read or removed."""


@record(frozen=True)
class Layout:
    """The cgroup hierarchies of one host, as mounted."""

    kind: str  # "v1", "hybrid" or "v2"
    # v1 controller name -> mount point; co-mounted controllers share one.
    v1_mounts: dict[str, str] = factory(dict)
    # Mount point of the cgroup2 hierarchy, or None when there is none.
    unified: str | None = None


@record(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, reduced to what cgroups need."""

    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def unescape_mountinfo(field_text: str) -> str:
    """Decode the octal escapes (\\040 for a space) that mountinfo uses in paths."""
    if "\\" not in field_text:
        return field_text
    raw = field_text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b"\\" and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo (proc_pid_mountinfo(5)).

    A line reads: ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...]
    - FSTYPE SOURCE SUPER-OPTIONS. The optional fields end at the lone "-".
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        if separator < 6 or len(fields) < separator + 4:
            continue
        mounts.append(
            Mount(
                root=unescape_mountinfo(fields[3]),
                mount_point=unescape_mountinfo(fields[4]),
                fstype=fields[separator + 1],
                super_options=tuple(fields[separator + 3].split(",")),
            )
        )
    return mounts


def v1_controllers(mount: Mount) -> list[str]:
    """List the controllers of a v1 mount; named hierarchies (name=systemd) have none."""
    return [
        option
        for option in mount.super_options
        if option not in V1_MOUNT_OPTIONS and "=" not in option
    ]


def layout_from_text(mountinfo_text: str, filesystems_text: str) -> Layout:
    """Work out the layout from the text of mountinfo and /proc/filesystems."""
    layout = mounted_layout(mountinfo_text)
    if layout is None:
        raise no_hierarchy_error(filesystems_text)
    return layout


def mounted_layout(mountinfo_text: str) -> Layout | None:
    """Return the layout that the mountinfo text shows, or None when no cgroup hierarchy is mounted."""
    v1_mounts: dict[str, str] = {}
    unified = None
    for mount in parse_mountinfo(mountinfo_text):
        if mount.fstype == "cgroup2" and unified is None:
            unified = mount.mount_point
        elif mount.fstype == "cgroup":
            for controller in v1_controllers(mount):
                # A controller mounted twice (a bind mount) keeps its first mount.
                v1_mounts.setdefault(controller, mount.mount_point)

    if v1_mounts and unified:
        return Layout("hybrid", v1_mounts, unified)
    if v1_mounts:
        return Layout("v1", v1_mounts, None)
    if unified:
        return Layout("v2", {}, unified)
    return None


def no_hierarchy_error(filesystems_text: str) -> CgroupError:
    """Return the error for a host with no cgroup hierarchy mounted, with a hint based on /proc/filesystems."""
    kernel_has_v2 = any(line.split()[-1:] == ["cgroup2"] for line in filesystems_text.splitlines())
    hint = "mount one, e.g. mount -t cgroup2 none /sys/fs/cgroup"
    if not kernel_has_v2:
        hint = "this kernel has no cgroup2 support; mount the v1 controllers under /sys/fs/cgroup"
    return CgroupError("no cgroup hierarchy is mounted (checked /proc/self/mountinfo)", hint=hint)


# Layouts already detected, by (mountinfo, filesystems) path. A dict, not
# functools.lru_cache: see "Start-up cost" in docs/architecture.md.
_detected: dict[tuple[str, str], Layout] = {}


def detect_layout(mountinfo: str = MOUNTINFO, filesystems: str = FILESYSTEMS) -> Layout:
    """Detect the host's cgroup layout once per process (per pair of paths)."""
    key = (mountinfo, filesystems)
    if key not in _detected:
        _detected[key] = _read_layout(mountinfo, filesystems)
    return _detected[key]


def forget_layouts() -> None:
    """Forget the layouts detected so far, so that the next detect_layout reads the files again."""
    _detected.clear()


def _read_layout(mountinfo: str, filesystems: str) -> Layout:
    try:
        with open(mountinfo) as file:
            layout = mounted_layout(file.read())
        if layout is None:
            # Read only in this case, because only the error's hint uses it.
            with open(filesystems) as file:
                raise no_hierarchy_error(file.read())
    except OSError as err:
        raise CgroupError(f"read the mount table {mountinfo}") from err
    log.debug("cgroup layout is %s (v1 controllers: %s, cgroup2 at %s)",
              layout.kind, ", ".join(sorted(layout.v1_mounts)) or "none", layout.unified)
    return layout
