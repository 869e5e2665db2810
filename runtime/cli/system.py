"""System commands: `pyrun version`, `pyrun info` and `pyrun help`, shaped like Docker's.

`info` is also a short lesson on the host: it shows what pyrun found
there (the cgroup layout and driver, the kernel, the store) rather than a
daemon's settings, since pyrun has no daemon.
"""

from __future__ import annotations

import os
import platform
import sys

from runtime.cli.parser import Namespace



def register(subparsers) -> None:
    version = subparsers.add_parser("version", help="show pyrun's version and the host it runs on")
    version.set_defaults(handler=version_command)
    info = subparsers.add_parser("info", help="show the host's container facilities and pyrun's store")
    info.set_defaults(handler=info_command)
    help_parser = subparsers.add_parser("help", help="show the help of pyrun or of one of its commands")
    help_parser.add_argument("words", nargs="*", metavar="COMMAND", help="a command, such as run or image ls")
    help_parser.set_defaults(handler=help_command)


def pyrun_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pyrun")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def os_arch() -> str:
    machine = platform.machine()
    return f"linux/{ {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(machine, machine) }"


def version_command(args: Namespace) -> int:
    print("Client: pyrun")
    print(f" Version:        {pyrun_version()}")
    print(f" Python version: {platform.python_version()} ({sys.executable})")
    print(f" OS/Arch:        {os_arch()}")
    print(f" Kernel:         {platform.release()}")
    print("Server: none (pyrun has no daemon: each container has its own monitor process)")
    return 0


# The commands whose first argument is a verb (`pyrun image ls`).
GROUPS = ("container", "image")


def help_command(args: Namespace) -> int:
    """Print the help of the command that `args.words` name, as `pyrun WORDS --help` does (`docker help run`).

    Words after the command (`help run busybox`) are left out, so the
    command's own arguments cannot take the --help flag as a value.
    """
    from runtime.cli import parse_command_line

    words = args.words[:2] if args.words[:1] and args.words[0] in GROUPS else args.words[:1]
    try:
        parse_command_line([*words, "--help"])
    except SystemExit as done:
        return done.code or 0
    return 0


def count_containers(root: str) -> dict[str, int]:
    """Count the containers in `root` that are running and those that are not."""
    from runtime import lifecycle, state

    counts = {"running": 0, "stopped": 0}
    for record in lifecycle.list_containers(root):
        if record.get("status") == state.STATUS_RUNNING:
            counts["running"] += 1
        else:
            counts["stopped"] += 1
    return counts


def cgroup_facts() -> tuple[str, str]:
    """Return the cgroup version as Docker names it ("1" or "2") and a description of the layout."""
    from runtime.cgroups.detect import detect_layout

    layout = detect_layout()
    if layout.kind == "v2":
        return "2", f"unified hierarchy at {layout.unified}"
    text = f"{len(set(layout.v1_mounts.values()))} v1 hierarchies under /sys/fs/cgroup"
    if layout.kind == "hybrid":
        text += f", and a cgroup2 hierarchy at {layout.unified} (hybrid)"
    return "1", text


def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as file:
            for line in file:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def total_memory() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.2f}GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def info_command(args: Namespace) -> int:
    from registry_client.config import load_config
    from runtime.store import ImageStore

    counts = count_containers(args.root)
    images = ImageStore(args.root).list_images()
    cgroup_version, cgroup_layout = cgroup_facts()
    config = load_config()
    print(f"Client: pyrun {pyrun_version()}")
    print("Server: none (pyrun has no daemon: each container has its own monitor process)")
    print(f" Containers: {sum(counts.values())}")
    print(f"  Running: {counts['running']}")
    print("  Paused: 0")  # pyrun has no pause command
    print(f"  Stopped: {counts['stopped']}")
    print(f" Images: {len(images)}")
    print(" Storage Driver: overlay (one read-only layer directory per image layer)")
    print(" Logging Driver: json-file")
    print(" Cgroup Driver: cgroupfs")
    print(f" Cgroup Version: {cgroup_version} ({cgroup_layout})")
    print(f" Kernel Version: {platform.release()}")
    print(f" Operating System: {os_name()}")
    print(" OSType: linux")
    print(f" Architecture: {platform.machine()}")
    print(f" CPUs: {os.cpu_count()}")
    print(f" Total Memory: {total_memory()}")
    print(f" Pyrun Root Dir: {os.path.abspath(args.root)}")
    print(f" Config File: {config.path}")
    print(f" Docker Hub Endpoint: {config.docker_hub_endpoint}")
    print(" Registry Mirrors:" + ("" if config.registry_mirrors else " none"))
    for mirror in config.registry_mirrors:
        print(f"  {mirror}")
    print(" Insecure Registries:" + ("" if config.insecure_registries else " none (loopback hosts always)"))
    for registry in config.insecure_registries:
        print(f"  {registry}")
    return 0
