"""Resource usage of one cgroup, and the arithmetic `docker stats` does on it."""

from __future__ import annotations

import os

from runtime.records import record

PROC_STAT = "/proc/stat"
PROC_MEMINFO = "/proc/meminfo"


@record
class CgroupStats:
    """One sample of a cgroup's counters, the same fields on v1 and v2."""

    cpu_usage_ns: int  # CPU time used by all processes, user plus system
    memory_usage: int  # bytes in use, without the inactive file cache
    memory_limit: int | None  # bytes, or None when there is no limit
    pids_current: int
    pids_limit: int | None  # None when there is no limit
    oom_kills: int = 0


def system_cpu_ns(path: str = PROC_STAT) -> int:
    """Return the CPU time of the whole host since boot, in nanoseconds.

    Sums the first "cpu" line of /proc/stat (proc_stat(5)), which is in
    USER_HZ ticks, as Docker does to get the denominator of CPU %.
    """
    with open(path) as file:
        for line in file:
            if line.startswith("cpu "):
                ticks = sum(int(value) for value in line.split()[1:8])
                return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    raise ValueError(f"{path} has no 'cpu' line")


def host_memory_bytes(path: str = PROC_MEMINFO) -> int:
    """Return MemTotal from /proc/meminfo in bytes: the limit of an unlimited cgroup."""
    with open(path) as file:
        for line in file:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"{path} has no MemTotal line")


def cpu_percent(before: CgroupStats, after: CgroupStats, system_before: int, system_after: int,
                online_cpus: int) -> float:
    """Return CPU use between two samples as `docker stats` shows it.

    100% is one full core, so a container busy on two cores shows 200%.
    """
    cpu_delta = after.cpu_usage_ns - before.cpu_usage_ns
    system_delta = system_after - system_before
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * online_cpus * 100.0


def memory_percent(stats: CgroupStats, host_memory: int) -> float:
    """Return memory use as a share of the limit, or of host memory without one."""
    limit = stats.memory_limit or host_memory
    if limit <= 0:
        return 0.0
    return stats.memory_usage / limit * 100.0
