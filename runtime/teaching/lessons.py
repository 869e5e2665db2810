"""Short lessons for `pyrun explain TOPIC`, each shown on the live host.

Each lesson returns its text; only the CLI prints it. A lesson reads what
this machine has right now (/proc, /sys, the image store) and never changes
anything, so a student can run it at any time, as any user: what needs root
to read is skipped with a note.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from runtime.cgroups.detect import parse_mountinfo
from runtime.teaching.steps import NAMESPACES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PROC = Path("/proc")
SYS_CLASS_NET = Path("/sys/class/net")

# The file name in /proc/<pid>/ns of each namespace, with the flag that
# creates it, so a lesson can reuse the purposes in steps.NAMESPACES.
NAMESPACE_FILES = {
    "mnt": "CLONE_NEWNS",
    "uts": "CLONE_NEWUTS",
    "ipc": "CLONE_NEWIPC",
    "pid": "CLONE_NEWPID",
    "net": "CLONE_NEWNET",
    "cgroup": "CLONE_NEWCGROUP",
    "user": "CLONE_NEWUSER",
    "time": "CLONE_NEWTIME",
}

# -- Reading the live host -----------------------------------------------------


def read_namespaces(pid: str = "self") -> dict[str, str]:
    """Return each namespace of a process as ``{"mnt": "mnt:[4026531832]", ...}``."""
    found = {}
    for name in NAMESPACE_FILES:
        try:
            found[name] = os.readlink(PROC / pid / "ns" / name)
        except OSError:
            continue
    return found


def decode_capabilities(mask: int) -> list[str]:
    """Return the capability names whose bits are set in `mask`."""
    from runtime.capabilities import ALL_CAPABILITIES

    names = []
    for bit in range(mask.bit_length()):
        if mask & (1 << bit):
            names.append(ALL_CAPABILITIES[bit] if bit < len(ALL_CAPABILITIES) else f"CAP_{bit}")
    return names


def read_capability_sets(status_text: str) -> dict[str, int]:
    """Return the CapInh, CapPrm, CapEff, CapBnd and CapAmb masks of /proc/<pid>/status."""
    sets = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            sets[key] = int(value.strip(), 16)
    return sets


def cgroup_layout() -> str:
    """Return "v1", "hybrid" or "v2" as runtime.cgroups detects it, or "none"."""
    from runtime.cgroups.detect import CgroupError, detect_layout

    try:
        return detect_layout().kind
    except CgroupError:
        return "none"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _run_quietly(command: list[str]) -> str:
    """Return the output of a read-only tool, or "" when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return ""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


# -- The lessons ---------------------------------------------------------------


def namespaces_lesson() -> str:
    lines = [
        "A namespace gives a group of processes their own copy of one kind of system",
        "resource. A container is a process started in new namespaces of every kind.",
        "",
        "The namespaces of this shell, from /proc/self/ns (the number is the",
        "namespace's inode: two processes share a namespace when the numbers match):",
        "",
    ]
    own = read_namespaces("self")
    init = read_namespaces("1")
    for name, flag in NAMESPACE_FILES.items():
        if name not in own:
            continue
        kind, purpose = NAMESPACES[flag]
        if name not in init:
            where = "not compared: /proc/1/ns is not readable (try as root)"
        elif init[name] == own[name]:
            where = "same as pid 1, the host's"
        else:
            where = "not the host's: this shell runs inside a namespace"
        lines.append(f"  {own[name]:<22} {where}")
        lines.append(f"  {'':<22} {kind}: {purpose}")
    lines += [
        "",
        "Try:",
        "  sudo unshare --uts sh -c 'hostname lab; hostname'; hostname",
        "  sudo pyrun run --rm busybox ls -l /proc/self/ns",
        "  sudo pyrun --explain run --rm busybox true   (each unshare(2) and why)",
    ]
    return "\n".join(lines) + "\n"


def overlay_lesson(store_root: str) -> str:
    mounts = parse_mountinfo(_read(PROC / "self" / "mountinfo"))
    overlays = [m for m in mounts if m.fstype == "overlay"]
    supported = "overlay" in _read(PROC / "filesystems").split()
    lines = [
        "overlayfs stacks directories into one filesystem. An image's layers are the",
        "read-only lower directories (the last one listed in lowerdir is the lowest);",
        "the container writes into its own upper directory, and workdir is scratch",
        "space for the kernel. The merged view is mounted as the container's root.",
        "",
        "Copy-up: the first write to a file of a lower layer copies the whole file to",
        "the upper directory. Deleting a lower file leaves a whiteout there: a",
        "character device 0/0 with the same name, which hides the file below.",
        "",
        f"This kernel {'supports' if supported else 'does not list'} overlay in /proc/filesystems.",
        f"Overlay mounts visible now: {len(overlays)}",
    ]
    for mount in overlays:
        options = dict(option.partition("=")[::2] for option in mount.super_options if "=" in option)
        lowers = [d for d in options.get("lowerdir", "").split(":") if d]
        lines.append(f"  {mount.mount_point}")
        lines.append(f"    {len(lowers)} lower layer(s), upperdir={options.get('upperdir', '(none: read-only)')}")
    lines += [
        "",
        f"pyrun keeps one directory per layer in {store_root}/layers/ and one",
        f"upper/ and work/ per container in {store_root}/containers/<ID>/. Above an",
        f"image's layers sits its init layer ({store_root}/init-layers/<ID hex>/),",
        "with the mountpoints the image lacks, such as an empty /etc/hosts: mounting",
        "over them then copies nothing up into the container's upper/.",
        "",
        "Try: sudo pyrun run --name lab busybox sh -c 'echo hi > /new-file', then",
        f"  sudo ls {store_root}/containers/*/upper",
    ]
    return "\n".join(lines) + "\n"


def cgroups_lesson() -> str:
    mounts = parse_mountinfo(_read(PROC / "self" / "mountinfo"))
    layout = cgroup_layout()
    lines = [
        "A control group (cgroup) puts processes under limits and accounting: memory,",
        "CPU time, number of processes, I/O. A cgroup is a directory in the cgroup",
        "filesystem; you set a limit by writing a file and move a process into the",
        "cgroup by writing its pid to cgroup.procs. pyrun starts the container's first",
        "process inside its cgroup instead (clone3 with CLONE_INTO_CGROUP on cgroup2), and",
        "on v1 that process moves itself by writing 0 to each hierarchy's tasks file.",
        "",
        f"This host's layout: {layout}",
    ]
    if layout == "v2":
        lines.append("  cgroup v2: one tree at /sys/fs/cgroup for every controller.")
    elif layout == "hybrid":
        lines.append("  hybrid: a v1 tree per controller under /sys/fs/cgroup/<controller>, plus a")
        lines.append("  cgroup v2 tree with the controllers v1 does not use (often none).")
    elif layout == "v1":
        lines.append("  cgroup v1: a separate tree per controller under /sys/fs/cgroup/<controller>.")
    for mount in mounts:
        if mount.fstype in ("cgroup", "cgroup2"):
            controllers = [o for o in mount.super_options if o not in ("rw", "ro")]
            lines.append(f"  {mount.mount_point:<32} {mount.fstype:<8} {','.join(controllers)}")
    lines += [
        "",
        "The cgroups of this shell, from /proc/self/cgroup (hierarchy:controllers:path):",
    ]
    for line in _read(PROC / "self" / "cgroup").splitlines():
        lines.append(f"  {line}")
    lines += [
        "",
        "The same limit is a different file in each version:",
        "  --memory 64m     v2: memory.max = 67108864      v1: memory/memory.limit_in_bytes",
        "  --cpus 0.5       v2: cpu.max = \"50000 100000\"   v1: cpu/cpu.cfs_quota_us and cpu.cfs_period_us",
        "  --pids-limit 50  v2: pids.max = 50              v1: pids/pids.max",
        "",
        "Try: sudo pyrun --explain run --rm --memory 64m busybox true   (each cgroup file written)",
    ]
    return "\n".join(lines) + "\n"


def network_lesson() -> str:
    lines = [
        "A container starts with a network namespace of its own, with only a loopback.",
        "pyrun connects it with a veth pair: one end becomes the container's eth0, the",
        "other is plugged into a bridge on the host. The bridge has the gateway",
        "address; nftables rules masquerade the containers' outgoing traffic and",
        "forward published ports (-p) to the container (destination NAT).",
        "",
        "The interfaces of this network namespace, from /sys/class/net:",
    ]
    interfaces = sorted(SYS_CLASS_NET.iterdir()) if SYS_CLASS_NET.is_dir() else []
    for path in interfaces:
        lines.append(f"  {path.name:<16} {describe_interface(path)}")

    forwarding = _read(PROC / "sys/net/ipv4/ip_forward").strip() or "?"
    lines += [
        "",
        f"IPv4 forwarding (/proc/sys/net/ipv4/ip_forward): {forwarding}"
        + ("   (on: the host routes packets between interfaces)" if forwarding == "1" else ""),
    ]

    addresses = _run_quietly(["ip", "-brief", "address"])
    if addresses:
        lines += ["", "Addresses, as `ip -brief address` shows them:"]
        lines += [f"  {line}" for line in addresses.splitlines()]

    lines.append("")
    tables = _run_quietly(["nft", "list", "tables"]) if os.geteuid() == 0 else ""
    pyrun_tables = [line for line in tables.splitlines() if "pyrun" in line]
    if os.geteuid() != 0:
        lines.append("nftables: run as root to see pyrun's rules (sudo nft list ruleset).")
    elif pyrun_tables:
        lines.append("pyrun's nftables tables (sudo nft list table <family> <name> shows the rules):")
        lines += [f"  {line}" for line in pyrun_tables]
    else:
        lines.append("No pyrun nftables table: no container has needed NAT since boot.")
    lines += ["", "Try: sudo pyrun --explain run --rm -p 8080:80 busybox true   (each link, address, rule)"]
    return "\n".join(lines) + "\n"


def describe_interface(path: Path) -> str:
    """Return a short description of one interface under /sys/class/net."""
    if (path / "bridge").is_dir():
        ports = sorted(p.name for p in (path / "brif").iterdir()) if (path / "brif").is_dir() else []
        return f"bridge, ports: {', '.join(ports) or 'none'}"
    if _read(path / "type").strip() == "772":
        return "loopback"
    master = path / "master"
    plugged = f", plugged into {os.path.basename(os.readlink(master))}" if master.is_symlink() else ""
    index = _read(path / "ifindex").strip()
    peer = _read(path / "iflink").strip()
    if index and peer and index != peer:
        return f"linked to interface {peer} (e.g. the other end of a veth pair){plugged}"
    return f"ethernet{plugged}" if _read(path / "type").strip() == "1" else "other"


def capabilities_lesson() -> str:
    sets = read_capability_sets(_read(PROC / "self" / "status"))
    lines = [
        "Root's power is split into capabilities, e.g. CAP_NET_ADMIN to configure the",
        "network or CAP_SYS_ADMIN for mount(2). A process has several sets: effective",
        "(checked now), permitted (may be made effective), bounding (the most it can",
        "ever gain through execve), inheritable and ambient (kept across execve).",
        "",
        "The sets of this shell, from /proc/self/status:",
    ]
    from runtime.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

    total = len(ALL_CAPABILITIES)
    for key, label in (("CapEff", "effective"), ("CapPrm", "permitted"), ("CapBnd", "bounding"),
                       ("CapAmb", "ambient")):
        if key not in sets:
            continue
        names = decode_capabilities(sets[key])
        summary = f"{len(names)} of {total}"
        missing = [n for n in ALL_CAPABILITIES if n not in names]
        if names and len(missing) <= 4:
            summary += ", without " + ", ".join(missing)
        lines.append(f"  {label:<10} {sets[key]:016x}  {summary}")
    lines += [
        "",
        f"A container keeps only these {len(DEFAULT_CAPABILITIES)}, Docker's default set, unless",
        "--cap-add or --cap-drop changes it:",
    ]
    for start in range(0, len(DEFAULT_CAPABILITIES), 5):
        lines.append("  " + " ".join(DEFAULT_CAPABILITIES[start:start + 5]))
    lines += [
        "pyrun drops the others from the bounding set before execve, so root in the",
        "container cannot, for example, load a kernel module (CAP_SYS_MODULE) or set",
        "the host's clock (CAP_SYS_TIME).",
        "",
        "Try:",
        "  sudo pyrun run --rm busybox grep Cap /proc/self/status",
        "  sudo pyrun --explain run --rm busybox true   (each capability dropped)",
    ]
    return "\n".join(lines) + "\n"


def image_lesson(store_root: str, name: str | None) -> str:
    lines = [
        "An OCI image is three kinds of file, each named by the sha256 digest of its bytes:",
        "  manifest  lists the config and the layers, by digest, media type and size",
        "  config    the command, environment, working directory and user to start",
        "            with, and the diff_ids: the digests of the uncompressed layers",
        "  layer     a tar archive (usually gzip) of the files added, changed or",
        "            deleted (as .wh. whiteout files) compared with the layer below",
        "An index (multi-platform image) lists one manifest per platform.",
        "",
    ]
    from runtime.store import ImageStore

    store = ImageStore(store_root)
    if name is None:
        references = sorted(tag for image in store.list_images() for tag in image.repo_tags)
        if not references:
            lines.append(f"No image in {store_root} yet. Try: sudo pyrun pull busybox")
        else:
            lines.append(f"Images in {store_root}; `pyrun explain image NAME` shows one:")
            lines += [f"  {reference}" for reference in references]
        return "\n".join(lines) + "\n"

    image = store.lookup(name)
    if image is None:
        lines.append(f"Image {name!r} is not in {store_root}. Try: sudo pyrun pull {name}")
    else:
        lines += describe_image(image)
    return "\n".join(lines) + "\n"


def describe_image(image: Any) -> list[str]:
    """Return lines describing a stored image (a runtime.store Image): manifest, config, layers."""
    record = image.record
    config = image.config
    run_config = config.get("config") or {}
    command = (run_config.get("Entrypoint") or []) + (run_config.get("Cmd") or [])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids", [])
    layers = record.get("layers") or []

    lines = [image.reference]
    if record.get("from_index"):
        index_digest = image.repo_digests[0].partition("@")[2] if image.repo_digests else "?"
        lines.append(f"  index     {index_digest}")
        lines.append(f"            one manifest per platform; pyrun chose {record.get('platform', '?')}")
    lines.append(f"  manifest  {record.get('manifest_digest', '?')}")
    lines.append(f"  config    {image.id} (the image ID is the config's digest)")
    lines.append(f"            {config.get('os')}/{config.get('architecture')}, command {command}, "
                 f"working directory {run_config.get('WorkingDir') or '/'}, "
                 f"{len(run_config.get('Env') or [])} environment variables")
    lines.append(f"  layers, lowest first: {len(image.layer_dirs)}")
    for number, directory in enumerate(image.layer_dirs, start=1):
        layer = layers[number - 1] if number <= len(layers) else {}
        diff_id = layer.get("diff_id") or (diff_ids[number - 1] if number <= len(diff_ids) else "?")
        files, size = _count_files(directory)
        lines.append(f"  {number:>3}. {layer.get('digest', '?')}")
        lines.append(f"       {layer.get('media_type', '?')}, {layer.get('size', '?')} bytes as stored")
        lines.append(f"       diff_id {diff_id} (the digest of the uncompressed tar)")
        lines.append(f"       unpacked in {directory}: {files} files, {size} bytes")
    return lines


def _count_files(directory: str) -> tuple[int, int]:
    files = size = 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            files += 1
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return files, size


TOPICS: dict[str, Callable[..., str]] = {
    "namespaces": namespaces_lesson,
    "overlay": overlay_lesson,
    "cgroups": cgroups_lesson,
    "network": network_lesson,
    "capabilities": capabilities_lesson,
    "image": image_lesson,
}


def lesson(topic: str, *, store_root: str, image: str | None = None) -> str:
    """Return the lesson on `topic`, one of TOPICS."""
    if topic == "overlay":
        return overlay_lesson(store_root)
    if topic == "image":
        return image_lesson(store_root, image)
    return TOPICS[topic]()
