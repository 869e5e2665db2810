"""Linux capabilities (capabilities(7)): Docker's default set and how to apply it.

Root inside a container is not root on the host because the container's
process keeps only a few capabilities. `compute_capabilities` applies
`--cap-add`, `--cap-drop` and `--privileged` to Docker's default set, and
`apply_capabilities` sets the capability sets of the calling process
through python-prctl's C module, just before it executes the container's command.
"""

from __future__ import annotations

# Imported here, not in the functions: they run after pivot_root(2), when
# the host's Python packages are no longer reachable by path. This is
# python-prctl's C module. Its Python front, prctl, builds tables of every
# capability on import (about 1.5 ms of each start), and pyrun has its own.
import _prctl

from runtime import fileio, syscalls
from runtime.errors import UsageError

# Docker's default set: the 14 capabilities `docker run` grants without flags.
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9), by number.
ALL_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


def normalize_capability(name: str) -> str:
    """Return the canonical name: upper case with the CAP_ prefix, as Docker accepts both."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPABILITIES:
        raise UsageError(
            f"unknown capability {name!r}",
            hint="use a name from capabilities(7), such as NET_ADMIN or CAP_SYS_TIME",
        )
    return upper


def compute_capabilities(
    add: list[str], drop: list[str], privileged: bool = False, available: list[str] | None = None
) -> list[str]:
    """Apply --cap-add and --cap-drop to Docker's default set, with Docker's rules.

    `--privileged` grants every capability in `available` (by default, the
    bounding set pyrun itself runs with, as Docker limits it to its
    daemon's). ALL in --cap-add grants those except the ones dropped; ALL
    in --cap-drop keeps only those added. Otherwise the drops are removed
    from the defaults and the adds appended, so a capability both added and
    dropped is kept.
    """
    if available is None:
        available = current_bounding_set()
    if privileged:
        return list(available)
    adds = _unique(normalize_capability(name) for name in add)
    drops = _unique(normalize_capability(name) for name in drop)
    if "ALL" in adds:
        return [cap for cap in available if cap not in drops]
    if "ALL" in drops:
        return [cap for cap in adds if cap != "ALL"]
    remaining = [cap for cap in DEFAULT_CAPABILITIES if cap not in drops]
    return remaining + [cap for cap in adds if cap not in remaining]


def current_bounding_set() -> list[str]:
    """Return the names in this process's bounding set (CapBnd in /proc/self/status)."""
    try:
        for line in fileio.read_text("/proc/self/status").splitlines():
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return [name for number, name in enumerate(ALL_CAPABILITIES) if mask >> number & 1]
    except OSError:
        pass
    return list(ALL_CAPABILITIES)


def _unique(names) -> list[str]:
    result: list[str] = []
    for name in names:
        if name not in result:
            result.append(name)
    return result


def drop_bounding_set(keep: list[str]) -> None:
    """Remove every capability not in `keep` from the bounding set (PR_CAPBSET_DROP).

    The bounding set limits what any later execve(2) can grant, even to a
    setuid-root binary, so it is trimmed while the process still has
    CAP_SETPCAP. Capabilities newer than this table (numbers up to
    /proc/sys/kernel/cap_last_cap) are always dropped.
    """
    for number in range(_last_capability() + 1):
        name = ALL_CAPABILITIES[number] if number < len(ALL_CAPABILITIES) else f"capability {number}"
        if name in keep:
            continue
        if hasattr(_prctl, name):
            syscalls.record(
                "capbset_drop",
                "prctl(2) PR_CAPBSET_DROP",
                lambda n=number: _prctl.prctl(_prctl.PR_CAPBSET_DROP, n),
                capability=name,
            )
        else:
            # python-prctl 1.8 has no name for CAP_CHECKPOINT_RESTORE or later ones.
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)


def _last_capability() -> int:
    try:
        return int(fileio.read_bytes("/proc/sys/kernel/cap_last_cap"))
    except OSError:
        return len(ALL_CAPABILITIES) - 1


def apply_capabilities(sets: dict[str, list[str]]) -> None:
    """Set the effective, permitted and inheritable sets and clear the ambient set.

    `sets` is the OCI "process.capabilities" object. Call it after the
    switch to the container's user: setresuid(2) away from uid 0 clears the
    permitted set unless PR_SET_KEEPCAPS is on.
    """
    known = [name for name in ALL_CAPABILITIES if hasattr(_prctl, name)]
    raised = []
    cleared = []
    for key in ("effective", "permitted", "inheritable"):
        granted = sets.get(key, [])
        raised.append([getattr(_prctl, name) for name in known if name in granted])
        cleared.append([getattr(_prctl, name) for name in known if name not in granted])
    syscalls.record(
        "capset",
        "capset(2)",
        # The C function reads the current sets (capget(2)), raises the
        # first three lists and clears the last three, in the order
        # effective, permitted, inheritable, then writes them (capset(2)).
        lambda: _prctl.set_caps(*raised, *cleared),
        effective=",".join(sets.get("effective", [])) or "none",
        permitted=",".join(sets.get("permitted", [])) or "none",
        inheritable=",".join(sets.get("inheritable", [])) or "none",
    )

    # python-prctl has no call for the ambient set, so libc's prctl(2) clears it.
    # NOTE: ambient capabilities from the spec are not raised; Docker never sets any.
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
