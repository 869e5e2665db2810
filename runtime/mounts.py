"""Mounts: the -v, --mount and --tmpfs flags, and OCI mount options as mount(2) flags.

An OCI mount entry is a dict with "destination", "type", "source" and
"options" (runtime-spec config.md). The options mix mount(2) flags ("ro",
"nosuid"), propagation ("rprivate") and filesystem data ("mode=755"), so
`parse_options` splits them into the three arguments the kernel expects.
"""

from __future__ import annotations

import os

from runtime import syscalls
from runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# option -> (flags to set, flags to clear)
FLAG_OPTIONS = {
    "ro": (syscalls.MS_RDONLY, 0),
    "rw": (0, syscalls.MS_RDONLY),
    "nosuid": (syscalls.MS_NOSUID, 0),
    "suid": (0, syscalls.MS_NOSUID),
    "nodev": (syscalls.MS_NODEV, 0),
    "dev": (0, syscalls.MS_NODEV),
    "noexec": (syscalls.MS_NOEXEC, 0),
    "exec": (0, syscalls.MS_NOEXEC),
    "sync": (syscalls.MS_SYNCHRONOUS, 0),
    "async": (0, syscalls.MS_SYNCHRONOUS),
    "noatime": (syscalls.MS_NOATIME, 0),
    "nodiratime": (syscalls.MS_NODIRATIME, 0),
    "relatime": (syscalls.MS_RELATIME, 0),
    "strictatime": (syscalls.MS_STRICTATIME, 0),
    "bind": (syscalls.MS_BIND, 0),
    "rbind": (syscalls.MS_BIND | syscalls.MS_REC, 0),
    "defaults": (0, 0),
}

PROPAGATION_OPTIONS = {
    "private": syscalls.MS_PRIVATE,
    "rprivate": syscalls.MS_PRIVATE | syscalls.MS_REC,
    "shared": syscalls.MS_SHARED,
    "rshared": syscalls.MS_SHARED | syscalls.MS_REC,
    "slave": syscalls.MS_SLAVE,
    "rslave": syscalls.MS_SLAVE | syscalls.MS_REC,
    "unbindable": syscalls.MS_UNBINDABLE,
    "runbindable": syscalls.MS_UNBINDABLE | syscalls.MS_REC,
}

# Docker's options for --tmpfs when none are given.
DEFAULT_TMPFS_OPTIONS = ["nosuid", "nodev", "noexec"]


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Split OCI mount options into (mount flags, propagation flags, data string)."""
    flags = 0
    propagation = 0
    data = []
    for option in options:
        if option in FLAG_OPTIONS:
            set_bits, clear_bits = FLAG_OPTIONS[option]
            flags = (flags | set_bits) & ~clear_bits
        elif option in PROPAGATION_OPTIONS:
            propagation = PROPAGATION_OPTIONS[option]
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


# -- Command-line flags --------------------------------------------------------


def parse_volume(value: str) -> dict[str, Any]:
    """Parse `-v /host/path:/container/path[:ro|rw]` into a bind mount entry.

    Parsing creates nothing on the host: `create_missing_sources` creates a
    missing source later, when the container is created.
    """
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(
            f"invalid volume specification {value!r}",
            hint="use -v /host/path:/container/path[:ro]",
        )
    source, destination = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not source.startswith("/"):
        raise UsageError(
            f"invalid volume {value!r}: named volumes are not supported",
            hint="give an absolute host path, or use --mount type=tmpfs",
        )
    _check_destination(destination, value)
    options = ["rbind"]
    for word in mode.split(","):
        if word in ("ro", "rw"):
            options.append(word)
        elif word in PROPAGATION_OPTIONS:
            options.append(word)
        else:
            raise UsageError(f"invalid mode {word!r} in volume {value!r}", hint="use ro or rw")
    if not any(option in PROPAGATION_OPTIONS for option in options):
        options.append("rprivate")
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def create_missing_sources(entries: list[dict[str, Any]]) -> None:
    """Create each missing bind mount source as a host directory, as Docker does for -v.

    An existing file stays a file and is bound as one. `parse_mount` has
    already rejected a missing --mount source, so only -v sources are created.
    """
    for entry in entries:
        if entry.get("type") == "bind" and not os.path.exists(entry["source"]):
            os.makedirs(entry["source"])


def parse_mount(value: str) -> dict[str, Any]:
    """Parse `--mount type=bind|tmpfs,source=...,target=...[,readonly]`."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, field_value = item.partition("=")
        if key in ("readonly", "ro") and not sep:
            field_value = "true"
        fields[key] = field_value
    kind = fields.pop("type", "volume")
    target = fields.pop("target", "") or fields.pop("destination", "") or fields.pop("dst", "")
    source = fields.pop("source", "") or fields.pop("src", "")
    readonly = fields.pop("readonly", fields.pop("ro", "false")) in ("true", "1", "")
    if not target:
        raise UsageError(f"invalid --mount {value!r}: target is missing", hint="add target=/path")
    _check_destination(target, value)

    if kind == "bind":
        if not source.startswith("/") or not os.path.exists(source):
            raise UsageError(
                f"invalid --mount {value!r}: bind source path {source!r} does not exist",
                hint="create it first; --mount does not create host paths, -v does",
            )
        options = ["rbind", "ro" if readonly else "rw", fields.pop("bind-propagation", "rprivate")]
        mount = {"destination": target, "type": "bind", "source": source, "options": options}
    elif kind == "tmpfs":
        options = list(DEFAULT_TMPFS_OPTIONS) + (["ro"] if readonly else [])
        if "tmpfs-size" in fields:
            options.append(f"size={fields.pop('tmpfs-size')}")
        if "tmpfs-mode" in fields:
            mode = fields.pop("tmpfs-mode")
            if not mode or any(digit not in "01234567" for digit in mode):
                raise UsageError(f"invalid tmpfs-mode {mode!r} in {value!r}: use octal, such as 1777")
            options.append(f"mode={mode}")
        mount = {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options}
    else:
        raise UsageError(
            f"unsupported --mount type {kind!r} in {value!r}",
            hint="pyrun supports type=bind and type=tmpfs",
        )
    if fields:
        raise UsageError(f"unsupported --mount option {sorted(fields)[0]!r} in {value!r}")
    return mount


def parse_tmpfs(value: str) -> dict[str, Any]:
    """Parse `--tmpfs /path[:options]`, options as for mount -o (size=64m,mode=1777)."""
    destination, _, extra = value.partition(":")
    _check_destination(destination, value)
    options = list(DEFAULT_TMPFS_OPTIONS) + [word for word in extra.split(",") if word]
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options}


def _check_destination(destination: str, value: str) -> None:
    if not destination.startswith("/"):
        raise UsageError(
            f"invalid mount destination {destination!r} in {value!r}: it must be an absolute path"
        )
    if os.path.normpath("/" + destination.lstrip("/")) == "/":
        raise UsageError(f"invalid mount destination in {value!r}: cannot mount over /")
