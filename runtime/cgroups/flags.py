"""Docker's resource flags, turned into an OCI "linux.resources" dict.

The flags are spelled as `docker run` spells them (--memory 512m, --cpus 1.5,
...). The result follows the OCI runtime spec (config-linux.md, "Control
groups"). Memory sizes are in bytes, CPU bandwidth is a CFS quota and period
in microseconds, and "swap" is the limit of memory plus swap.
"""

from __future__ import annotations

import os

from runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cli.parser import CommandParser, Namespace
    from typing import Any

# The CFS period that `--cpus` uses, in microseconds (Docker's default).
CPU_PERIOD_US = 100_000

# Docker rejects memory limits below 6 MiB, because the container runtime
# itself needs that much to start a process.
MIN_MEMORY_BYTES = 6 * 1024 * 1024

# The flag behind each OCI resource, so a value the kernel rejects can be
# reported in the user's own terms. Keys are (section, field) in
# "linux.resources".
FLAG_NAMES = {
    ("memory", "limit"): "--memory",
    ("memory", "swap"): "--memory-swap",
    ("memory", "reservation"): "--memory-reservation",
    ("memory", "disableOOMKiller"): "--oom-kill-disable",
    ("memory", "swappiness"): "--memory-swappiness",
    ("cpu", "shares"): "--cpu-shares",
    ("cpu", "quota"): "--cpus or --cpu-quota",
    ("cpu", "period"): "--cpus or --cpu-period",
    ("cpu", "cpus"): "--cpuset-cpus",
    ("cpu", "mems"): "--cpuset-mems",
    ("pids", "limit"): "--pids-limit",
}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# The endings allowed after a size's unit letter, or after the number when
# there is none: "512m", "512mi", "512mb" and "512mib" all mean 512 MiB.
_UNIT_TAILS = ("", "i", "b", "ib")


def parse_size(text: str, flag: str) -> int:
    """Parse a size such as 512m, 1.5g, 64MiB or 1024 (bytes) into bytes.

    Units are binary (k = 1024), as in Docker's RAMInBytes. The grammar is
    DIGITS [ "." DIGITS ] [ " " ] [ k|m|g|t|p ] [ "i" ] [ "b" ], with letters
    in either case. Spaces before and after the value are ignored.
    """
    number, suffix = _split_number(text.strip())
    suffix = suffix.removeprefix(" ")
    unit = suffix[:1].lower() if suffix[:1].lower() in ("k", "m", "g", "t", "p") else ""
    tail = suffix[len(unit):]
    if not number or not tail.isascii() or tail.lower() not in _UNIT_TAILS:
        raise UsageError(
            f"invalid value for {flag}: {text!r}",
            hint="use a number of bytes with an optional unit b, k, m or g, e.g. 512m",
        )
    return int(float(number) * _UNITS[unit])


def _split_number(text: str) -> tuple[str, str]:
    """Split `text` after a leading DIGITS [ "." DIGITS ]; return ("", text) when it has none.

    Digits are Unicode decimal digits (str.isdecimal), which float() reads.
    """
    end = _decimal_run_end(text, 0)
    if end == 0:
        return "", text
    if text[end : end + 1] == ".":
        fraction_end = _decimal_run_end(text, end + 1)
        if fraction_end > end + 1:
            end = fraction_end
    return text[:end], text[end:]


def _decimal_run_end(text: str, start: int) -> int:
    """Return the index after the run of decimal digits that starts at `start`."""
    end = start
    while end < len(text) and text[end].isdecimal():
        end += 1
    return end


def parse_cpu_list(text: str, flag: str) -> str:
    """Check a CPU or memory-node list such as 0-3 or 0,2 and return it."""
    if not _is_cpu_list(text):
        raise UsageError(f"invalid value for {flag}: {text!r}", hint="use a list such as 0-3 or 0,2")
    for part in text.split(","):
        first, _, last = part.partition("-")
        if last and int(last) < int(first):
            raise UsageError(f"invalid value for {flag}: range {part!r} runs backwards")
    return text


def _is_cpu_list(text: str) -> bool:
    """Tell whether `text` is NUMBER or NUMBER-NUMBER, several joined by ","."""
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not first.isdecimal() or (dash and not last.isdecimal()):
            return False
    return True


def cpu_list_ranges(text: str) -> list[tuple[int, int]]:
    """Return the (first, last) ranges of a list such as 0-3,8 (the kernel's format for CPU and node lists)."""
    ranges = []
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            ranges.append((int(first), int(last or first)))
    return ranges


def covers(available: list[tuple[int, int]], first: int, last: int) -> bool:
    """Return True when the ranges in `available` contain every number from `first` to `last`.

    Walks the range without listing its numbers, so 0-4000000000 costs no memory.
    """
    number = first
    while number <= last:
        holder = next((end for start, end in available if start <= number <= end), None)
        if holder is None:
            return False
        number = holder + 1
    return True


# The CPUs and memory nodes the host has online, as the kernel lists them.
ONLINE_LISTS = {"--cpuset-cpus": ("/sys/devices/system/cpu/online", "CPUs"),
                "--cpuset-mems": ("/sys/devices/system/node/online", "memory nodes")}


def check_available(text: str, flag: str) -> None:
    """Raise UsageError when the list `text` names a CPU or memory node the host does not have online.

    Docker checks this when it creates the container; the kernel would
    only reject the value when the container starts.
    """
    path, kind = ONLINE_LISTS[flag]
    try:
        with open(path) as file:
            online = file.read().strip()
    except OSError:
        online = "0" if flag == "--cpuset-mems" else ""  # a kernel without NUMA has node 0 alone
    if not online:
        return
    available = cpu_list_ranges(online)
    if not all(covers(available, first, last) for first, last in cpu_list_ranges(text)):
        raise UsageError(f"invalid value for {flag}: {kind} {text} are not available",
                         hint=f"this host has {kind} {online}")


def add_resource_flags(parser: CommandParser) -> None:
    """Add Docker's cgroup flags (--memory, --cpus, ...) to a run/create parser."""
    group = parser.add_argument_group("resource limits (cgroups)")
    group.add_argument("-m", "--memory", metavar="BYTES",
                       help="memory limit, with unit b, k, m or g (e.g. 512m)")
    group.add_argument("--memory-swap", metavar="BYTES",
                       help="limit of memory plus swap, with unit; -1 for unlimited swap")
    group.add_argument("--memory-reservation", metavar="BYTES",
                       help="memory soft limit, with unit; must be below --memory")
    group.add_argument("--memory-swappiness", metavar="0-100", type=int,
                       help="how eagerly the kernel swaps this container's pages (cgroup v1 only)")
    group.add_argument("--oom-kill-disable", action="store_true",
                       help="do not OOM-kill processes at the memory limit (cgroup v1 only)")
    group.add_argument("--cpus", metavar="NUMBER",
                       help="CPU limit in cores, e.g. 0.5 (a CFS quota per 100 ms period)")
    group.add_argument("--cpu-period", metavar="MICROSECONDS", type=int,
                       help="CFS period in microseconds, 1000 to 1000000 (use with --cpu-quota)")
    group.add_argument("--cpu-quota", metavar="MICROSECONDS", type=int,
                       help="CPU time allowed per CFS period in microseconds; -1 for no limit")
    group.add_argument("-c", "--cpu-shares", metavar="SHARES", type=int,
                       help="relative CPU weight (default 1024; cpu.weight on cgroup v2)")
    group.add_argument("--cpuset-cpus", metavar="LIST",
                       help="CPUs the container may run on, e.g. 0-3 or 0,2")
    group.add_argument("--cpuset-mems", metavar="LIST",
                       help="memory nodes the container may allocate from, e.g. 0")
    group.add_argument("--pids-limit", metavar="NUMBER", type=int,
                       help="maximum number of processes; 0 or -1 for unlimited")
    group.add_argument("--cgroup-parent", metavar="PATH", default="",
                       help="parent cgroup of the container's cgroup (default: pyrun)")


def resources_from_args(args: Namespace) -> dict[str, Any]:
    """Build the OCI "linux.resources" dict from the parsed resource flags.

    Raises UsageError naming the flag for a value that is invalid on any
    kernel. The cgroup driver reports values that the kernel itself rejects
    when it writes them.
    """
    resources: dict[str, Any] = {}
    memory = _memory_from_args(args)
    if memory:
        resources["memory"] = memory
    cpu = _cpu_from_args(args)
    if cpu:
        resources["cpu"] = cpu
    pids_limit = getattr(args, "pids_limit", None)
    if pids_limit is not None:
        # Docker treats 0 and -1 as "no limit", which the OCI spec spells -1.
        resources["pids"] = {"limit": -1 if pids_limit <= 0 else pids_limit}
    return resources


def _memory_from_args(args: Namespace) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    if getattr(args, "memory", None) is not None:
        limit = parse_size(args.memory, "--memory")
        # 0 means no limit, as in Docker.
        if 0 < limit < MIN_MEMORY_BYTES:
            raise UsageError(f"invalid value for --memory: {args.memory!r} is below the minimum of 6m")
        if limit:
            memory["limit"] = limit

    swap = getattr(args, "memory_swap", None)
    if swap is not None and swap.strip() == "-1" and "limit" not in memory:
        swap = None  # unlimited swap without a memory limit sets nothing, as in Docker
    if swap is not None:
        if "limit" not in memory:
            raise UsageError("--memory-swap needs --memory: it limits memory plus swap together")
        if swap.strip() == "-1":
            memory["swap"] = -1
        else:
            memory["swap"] = parse_size(args.memory_swap, "--memory-swap")
            if memory["swap"] < memory["limit"]:
                raise UsageError(
                    f"invalid value for --memory-swap: {args.memory_swap!r} is below --memory "
                    f"{args.memory!r}; it limits memory plus swap, so it must be at least --memory"
                )

    elif "limit" in memory:
        # Docker's default: without --memory-swap, the container may use as
        # much swap as memory, so memory plus swap is twice the limit.
        memory["swap"] = 2 * memory["limit"]

    if getattr(args, "memory_reservation", None) is not None:
        memory["reservation"] = parse_size(args.memory_reservation, "--memory-reservation")
        if "limit" in memory and memory["reservation"] > memory["limit"]:
            raise UsageError(
                f"invalid value for --memory-reservation: {args.memory_reservation!r} "
                f"is above --memory {args.memory!r}"
            )

    swappiness = getattr(args, "memory_swappiness", None)
    if swappiness is not None:
        if not 0 <= swappiness <= 100:
            raise UsageError(f"invalid value for --memory-swappiness: {swappiness} is not in 0-100")
        memory["swappiness"] = swappiness

    if getattr(args, "oom_kill_disable", False):
        memory["disableOOMKiller"] = True
    return memory


def _cpu_from_args(args: Namespace) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if getattr(args, "cpus", None) is not None:
        try:
            cores = float(args.cpus)
        except ValueError:
            raise UsageError(f"invalid value for --cpus: {args.cpus!r}", hint="use a number of cores, e.g. 0.5") from None
        host_cpus = os.cpu_count() or 1
        if not 0.01 <= cores <= host_cpus:
            raise UsageError(
                f"invalid value for --cpus: {args.cpus!r}",
                hint=f"the range is 0.01 to {host_cpus}.00, as this host has {host_cpus} CPUs",
            )
        if getattr(args, "cpu_period", None) or getattr(args, "cpu_quota", None):
            raise UsageError("--cpus cannot be combined with --cpu-period or --cpu-quota",
                             hint="use either --cpus or the pair --cpu-period and --cpu-quota")
        cpu["period"] = CPU_PERIOD_US
        cpu["quota"] = round(cores * CPU_PERIOD_US)

    period = getattr(args, "cpu_period", None)
    if period:
        if not 1000 <= period <= 1_000_000:
            raise UsageError(f"invalid value for --cpu-period: {period} is not in 1000-1000000 microseconds")
        cpu["period"] = period
    quota = getattr(args, "cpu_quota", None)
    if quota:
        if 0 < quota < 1000 or quota < -1:
            raise UsageError(f"invalid value for --cpu-quota: {quota} is below 1000 microseconds",
                             hint="use at least 1000, or -1 for no limit")
        cpu["quota"] = quota

    shares = getattr(args, "cpu_shares", None)
    if shares is not None:
        if shares < 0:
            raise UsageError(f"invalid value for --cpu-shares: {shares} is negative")
        # Docker passes 0 on as "not set", so the kernel default applies.
        if shares > 0:
            cpu["shares"] = shares

    cpusets = (("cpus", "cpuset_cpus", "--cpuset-cpus"), ("mems", "cpuset_mems", "--cpuset-mems"))
    for key, attribute, flag in cpusets:
        value = getattr(args, attribute, None)
        if value:
            cpu[key] = parse_cpu_list(value, flag)
            check_available(cpu[key], flag)
    return cpu


def cgroup_path(container_id: str, cgroup_parent: str = "") -> str:
    """Return the container's cgroup path ("/pyrun/<id>") for linux.cgroupsPath.

    The path is absolute, so it is relative to the root of each hierarchy, as
    the OCI spec reads an absolute cgroupsPath. The default parent is "pyrun",
    so containers never land inside a cgroup that systemd or another manager
    owns (system.slice, user.slice).
    """
    parent = (cgroup_parent or "pyrun").strip("/")
    parts = parent.split("/")
    if not parent or any(part in ("", ".", "..") for part in parts):
        raise UsageError(f"invalid value for --cgroup-parent: {cgroup_parent!r}",
                         hint="use a path such as pyrun or mygroup/containers, without . or ..")
    return f"/{parent}/{container_id}"
