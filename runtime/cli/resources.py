"""Resource commands: `stats` and `top`, read from each container's cgroup.

    pyrun stats [-a] [--no-stream] [--no-trunc] [CONTAINER...]
    pyrun top CONTAINER [ps OPTIONS]

Both print what `docker stats` and `docker top` print, except that stats
has no NET I/O and BLOCK I/O columns yet. A container is named
by its name, its full ID or a unique ID prefix; its cgroup path is
linux.cgroupsPath in <root>/containers/<id>/config.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from runtime.cli.parser import Namespace, REMAINDER, Subcommands
from runtime.errors import PyrunError
from runtime.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Seconds between the two samples that a CPU percentage compares.
SAMPLE_SECONDS = 1.0

STATS_HEADER = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS")

# Binary units as Docker prints sizes ("1.953MiB"), from go-units' BytesSize.
BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

CLEAR_SCREEN = "\033[2J\033[H"


def register(subparsers: Subcommands) -> None:
    add_stats(subparsers, "stats")
    add_top(subparsers, "top")

    # `pyrun container stats|top`, when a module registered before this one
    # has made the `container` group.
    group = subparsers.choices.get("container")
    if group is not None and group.subcommands is not None:
        add_stats(group.subcommands, "stats")
        add_top(group.subcommands, "top")


def add_stats(subparsers: Subcommands, name: str) -> None:
    parser = subparsers.add_parser(name, help="show containers' CPU, memory and process use")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER",
                        help="containers to show (default: all running containers)")
    parser.add_argument("-a", "--all", action="store_true",
                        help="show all containers, not only running ones")
    parser.add_argument("--no-stream", action="store_true",
                        help="print one sample and exit, instead of refreshing every second")
    parser.add_argument("--no-trunc", action="store_true", help="print full container IDs")
    parser.set_defaults(handler=stats_command)


def add_top(subparsers: Subcommands, name: str) -> None:
    parser = subparsers.add_parser(name, help="list the processes running in a container")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_options", nargs=REMAINDER, metavar="ps OPTIONS",
                        help="options for ps(1) (default: -ef)")
    parser.set_defaults(handler=top_command)


# -- Finding containers and their cgroups -----------------------------------------


@record
class Target:
    """A container that `stats` or `top` reads, with its cgroup manager."""

    id: str
    name: str
    status: str
    cgroup: Any  # a runtime.cgroups.Cgroup, or None when the container has no cgroup path


def load_target(root: str, container_id: str) -> Target:
    from runtime import cgroups, state

    record = state.load_record(root, container_id)
    cgroup = None
    config_path = os.path.join(state.container_dir(root, container_id), "config.json")
    try:
        with open(config_path, encoding="utf-8") as file:
            cgroups_path = json.load(file).get("linux", {}).get("cgroupsPath", "")
    except (OSError, ValueError):
        cgroups_path = ""
    if cgroups_path:
        cgroup = cgroups.open_cgroup(cgroups_path)
    return Target(container_id, record.get("name", ""), record.get("status", ""), cgroup)


def find_targets(root: str, references: list[str], include_stopped: bool) -> list[Target]:
    """Resolve each reference to a container, or list the running ones without any."""
    from runtime import state

    if references:
        return [load_target(root, state.find_container(root, reference)) for reference in references]
    records = state.list_records(root)
    return [
        load_target(root, record["id"])
        for record in records
        if include_stopped or record.get("status") == state.STATUS_RUNNING
    ]


# -- stats ------------------------------------------------------------------------


def format_bytes(size: float) -> str:
    """Format a size as Docker does: four significant digits and a binary unit."""
    unit = 0
    while size >= 1024 and unit < len(BINARY_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g}{BINARY_UNITS[unit]}"


def sample(targets: list[Target]) -> tuple[dict[str, Any], int]:
    """Read every target's cgroup counters once, and the host's CPU time."""
    from runtime.cgroups import CgroupError
    from runtime.cgroups.stats import system_cpu_ns

    readings = {}
    for target in targets:
        if target.cgroup is None or not target.cgroup.exists():
            continue
        try:
            readings[target.id] = target.cgroup.stats()
        except CgroupError:
            # The container stopped between exists() and the read.
            continue
    return readings, system_cpu_ns()


def stats_rows(targets: list[Target], before, after, no_trunc: bool) -> list[tuple[str, ...]]:
    """Build one `docker stats` row per target from two samples."""
    from runtime.cgroups.stats import cpu_percent, host_memory_bytes, memory_percent

    host_memory = host_memory_bytes()
    online_cpus = os.cpu_count() or 1
    readings_before, system_before = before
    readings_after, system_after = after
    rows = []
    for target in targets:
        shown_id = target.id if no_trunc else target.id[:12]
        now = readings_after.get(target.id)
        if now is None:
            rows.append((shown_id, target.name, "0.00%", "0B / 0B", "0.00%", "0"))
            continue
        then = readings_before.get(target.id, now)
        cpu = cpu_percent(then, now, system_before, system_after, online_cpus)
        limit = now.memory_limit or host_memory
        rows.append((
            shown_id,
            target.name,
            f"{cpu:.2f}%",
            f"{format_bytes(now.memory_usage)} / {format_bytes(limit)}",
            f"{memory_percent(now, host_memory):.2f}%",
            str(now.pids_current),
        ))
    return rows


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Align columns with three spaces between them, like Docker's tabwriter."""
    widths = [len(title) for title in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def stats_command(args: Namespace) -> int:
    targets = find_targets(args.root, args.containers, args.all)
    stream = not args.no_stream
    clear = stream and sys.stdout.isatty()
    before = sample(targets)
    try:
        while True:
            time.sleep(SAMPLE_SECONDS)
            after = sample(targets)
            table = format_table(STATS_HEADER, stats_rows(targets, before, after, args.no_trunc))
            print((CLEAR_SCREEN if clear else "") + table, flush=True)
            if not stream:
                return 0
            before = after
            if not args.containers:
                # Without named containers the list follows what runs now.
                targets = find_targets(args.root, [], args.all)
    except KeyboardInterrupt:
        return 0


# -- top --------------------------------------------------------------------------


def filter_ps_output(output: str, pids: set[int]) -> list[str]:
    """Keep the header and the lines of ps output whose PID is in `pids`.

    ps puts the PID column before the command, so splitting on whitespace
    finds it even when the command contains spaces.
    """
    lines = output.splitlines()
    if not lines:
        raise PyrunError("ps produced no output")
    header = lines[0].split()
    if "PID" not in header:
        raise PyrunError(f"ps output has no PID column: {lines[0]!r}",
                         hint="keep the pid field in the ps options, e.g. -o pid,comm")
    column = header.index("PID")
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            kept.append(line)
    return kept


def top_command(args: Namespace) -> int:
    from runtime import state

    target = load_target(args.root, state.find_container(args.root, args.container))
    if target.status != state.STATUS_RUNNING or target.cgroup is None or not target.cgroup.exists():
        raise PyrunError(f"container {args.container} is not running",
                         hint=f"start it first, then run pyrun top {args.container}")
    pids = set(target.cgroup.pids())

    options = args.ps_options or ["-ef"]
    try:
        completed = subprocess.run(["ps", *options], capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise PyrunError("ps is not installed", hint="install procps") from err
    if completed.returncode != 0:
        raise PyrunError(f"ps {' '.join(options)} failed: {completed.stderr.strip()}")
    print("\n".join(filter_ps_output(completed.stdout, pids)))
    return 0
