"""Build the OCI runtime-spec config.json from the image config and `run` options.

The result is a plain dict in the layout of the OCI runtime specification
(github.com/opencontainers/runtime-spec, config.md and config-linux.md), so
`runc run` can start the same bundle. The defaults are Docker's: its mounts,
masked paths, read-only paths, capabilities, seccomp profile and environment.

The Docker rules for the command line, in short:

- `--entrypoint` replaces the image's Entrypoint and discards its Cmd;
- command arguments replace the image's Cmd;
- the process runs Entrypoint + Cmd;
- Env is the image's, then each --env-file, then each -e (later wins);
- PATH, HOSTNAME and HOME get defaults when no layer sets them.
"""

from __future__ import annotations

import os

from runtime import seccomp
from runtime.capabilities import compute_capabilities
from runtime.errors import UsageError
from runtime.records import factory, record
from runtime.users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's masked paths (moby oci/defaults.go; powercap since Docker 20.10):
# files get /dev/null bound over them, directories a read-only tmpfs.
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

NAMESPACES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]

# Device cgroup rules: deny every device, then allow Docker's defaults
# (moby oci/defaults.go: null, zero, urandom, random, tty, console) plus
# full and the pty devices (ptmx 5:2, the ptys 136:*), which the container's
# own /dev uses. Without them, root in a container could mknod(2) a host
# disk and open it.
# runtime.cgroups applies them, through devices.allow on cgroup v1 and an
# eBPF program on cgroup v2.
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]

# Files pyrun writes per container into the bundle and binds over the image's.
GENERATED_ETC_FILES = ["hostname", "hosts", "resolv.conf"]


@record
class RunOptions:
    """What `pyrun run` was asked for, before the image config is applied."""

    command: list[str] = factory(list)
    entrypoint: str | None = None
    env: list[str] = factory(list)
    env_files: list[str] = factory(list)
    workdir: str = ""
    user: str | None = None
    hostname: str = ""
    tty: bool = False
    interactive: bool = False
    read_only: bool = False
    volumes: list[str] = factory(list)
    mounts: list[str] = factory(list)
    tmpfs: list[str] = factory(list)
    cap_add: list[str] = factory(list)
    cap_drop: list[str] = factory(list)
    privileged: bool = False
    security_opt: list[str] = factory(list)
    init: bool = False


def process_args(image: dict[str, Any], options: RunOptions) -> list[str]:
    """Combine Entrypoint and Cmd with --entrypoint and the command arguments."""
    entrypoint = list(image.get("Entrypoint") or [])
    cmd = list(image.get("Cmd") or [])
    if options.entrypoint is not None:
        # As in Docker, a new entrypoint also discards the image's Cmd.
        entrypoint = [options.entrypoint] if options.entrypoint else []
        cmd = []
    if options.command:
        cmd = list(options.command)
    args = entrypoint + cmd
    if not args:
        raise UsageError(
            "no command specified: the image has no Entrypoint or Cmd",
            hint="give the command after the image name",
        )
    return args


def parse_env_file(path: str) -> list[str]:
    """Read an --env-file: one KEY=value per line; blank lines and # comments skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as err:
        raise UsageError(f"cannot read env file {path!r}: {err.strerror}") from err
    entries = []
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.split("=", 1)[0].strip() == "" or " " in stripped.split("=", 1)[0]:
            raise UsageError(f"invalid variable name in env file {path!r} line {number}: {line!r}")
        entries.append(stripped)
    return entries


def merge_env(image_env: list[str], overrides: list[str], host_env: dict[str, str] | None = None) -> dict[str, str]:
    """Merge KEY=value lists; a later key wins, and a bare KEY takes the host's value.

    A bare KEY that the host does not define is left out, as Docker does.
    """
    host_env = os.environ if host_env is None else host_env
    merged: dict[str, str] = {}
    for entry in image_env:
        key, _, value = entry.partition("=")
        merged[key] = value
    for entry in overrides:
        key, sep, value = entry.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable {entry!r}: the name is empty")
        if sep:
            merged[key] = value
        elif key in host_env:
            merged[key] = host_env[key]
        else:
            merged.pop(key, None)
    return merged


def process_env(image: dict[str, Any], options: RunOptions, user: User, hostname: str) -> list[str]:
    """Return the container's environment as KEY=value strings."""
    overrides = []
    for path in options.env_files:
        overrides += parse_env_file(path)
    overrides += options.env
    env = merge_env(list(image.get("Env") or []), overrides)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    if options.tty:
        env.setdefault("TERM", "xterm")
    env.setdefault("HOME", user.home or "/")
    return [f"{key}={value}" for key, value in env.items()]


def working_dir(image: dict[str, Any], options: RunOptions) -> str:
    cwd = options.workdir or image.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise UsageError(
            f"invalid working directory {cwd!r}: it must be an absolute path",
            hint="use -w with a path that starts with /",
        )
    return os.path.normpath(cwd)


@record(frozen=True)
class SecurityOptions:
    """The settings of --security-opt: no_new_privs, and whether the seccomp filter is off."""

    no_new_privileges: bool = False
    seccomp_unconfined: bool = False


def security_options(security_opts: list[str]) -> SecurityOptions:
    """Parse --security-opt: no-new-privileges[=true|false] and seccomp=unconfined.

    Docker's older KEY:VALUE spelling is accepted too. A custom seccomp
    profile (seccomp=PATH), apparmor= and label= are rejected.
    """
    enabled = False
    unconfined = False
    for opt in security_opts:
        key, _, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise UsageError(f"invalid --security-opt {opt!r}: the value must be true or false")
            enabled = value != "false"
        elif key == "seccomp":
            if value != "unconfined":
                raise UsageError(
                    f"unsupported --security-opt {opt!r}: pyrun cannot load a custom seccomp profile",
                    hint="leave the option out for Docker's default profile, or use seccomp=unconfined",
                )
            unconfined = True
        else:
            raise UsageError(
                f"unsupported --security-opt {opt!r}",
                hint="pyrun supports only no-new-privileges[=true|false] and seccomp=unconfined",
            )
    return SecurityOptions(enabled, unconfined)


def no_new_privileges(security_opts: list[str]) -> bool:
    """Return whether --security-opt turns no_new_privs on."""
    return security_options(security_opts).no_new_privileges


def seccomp_policy(options: RunOptions, capabilities: list[str]) -> dict[str, Any] | None:
    """Return the `linux.seccomp` object, or None for --privileged and seccomp=unconfined, as in Docker."""
    if options.privileged or security_options(options.security_opt).seccomp_unconfined:
        return None
    return seccomp.default_policy(capabilities)


def default_mounts(privileged: bool) -> list[dict[str, Any]]:
    """Docker's standard mounts: /proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue, /dev/shm."""
    sys_options = ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro" if not privileged else "rw", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
    ]


def etc_mounts(bundle: str) -> list[dict[str, Any]]:
    """Bind mounts of the generated /etc/hostname, /etc/hosts and /etc/resolv.conf."""
    return [
        {
            "destination": f"/etc/{name}",
            "type": "bind",
            "source": os.path.join(bundle, name),
            "options": ["rbind", "rprivate"],
        }
        for name in GENERATED_ETC_FILES
    ]


def build_spec(
    image: dict[str, Any],
    options: RunOptions,
    user: User,
    *,
    bundle: str,
    hostname: str,
    user_mounts: list[dict[str, Any]],
    resources: dict[str, Any] | None = None,
    cgroups_path: str = "",
    devices: list[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Return the config.json dict for one container.

    `image` is the image config's "config" object, `user` the resolved
    identity and `user_mounts` the parsed -v, --mount and --tmpfs entries.
    `devices` are extra device nodes (the host's, for --privileged).
    """
    capabilities = compute_capabilities(options.cap_add, options.cap_drop, options.privileged)
    process = {
        "terminal": options.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": process_args(image, options),
        "env": process_env(image, options, user, hostname),
        "cwd": working_dir(image, options),
        "capabilities": {
            "bounding": capabilities,
            "effective": capabilities,
            "permitted": capabilities,
            "inheritable": [],
            "ambient": [],
        },
        "noNewPrivileges": no_new_privileges(options.security_opt),
    }
    linux: dict[str, Any] = {
        "namespaces": [{"type": kind} for kind in NAMESPACES],
        "maskedPaths": [] if options.privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if options.privileged else list(READONLY_PATHS),
        "resources": {
            "devices": [{"allow": True, "access": "rwm"}] if options.privileged else DEFAULT_DEVICE_RULES,
            **(resources or {}),
        },
        "devices": list(devices),
    }
    policy = seccomp_policy(options, capabilities)
    if policy is not None:
        linux["seccomp"] = policy
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    mounts = default_mounts(options.privileged) + etc_mounts(bundle) + sort_by_depth(user_mounts)
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": options.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }


def sort_by_depth(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order mounts so a parent directory is mounted before what lies inside it."""
    return sorted(mounts, key=lambda mount: len(os.path.normpath(mount["destination"]).split("/")))
